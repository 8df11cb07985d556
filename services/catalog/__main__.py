from services.catalog.app import create_service
from shared.settings import load_settings

create_service(load_settings()).run()
