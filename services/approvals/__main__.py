from services.approvals.app import service

service.run()
