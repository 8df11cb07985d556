from services.catalog.app import service

service.run()
