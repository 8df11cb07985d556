from services.fulfillment.app import service

service.run()
