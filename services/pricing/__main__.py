from services.pricing.app import service

service.run()
