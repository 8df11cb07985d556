"""Fulfillment, wired: its database, a handler for each topic it reads, and its read API."""

from __future__ import annotations

from services.fulfillment import http, store
from services.fulfillment.handlers import HANDLERS
from shared.service import Service
from shared.settings import Settings

NAME = "fulfillment"


def create_service(settings: Settings) -> Service:
    service = Service(NAME, store.Base.metadata, settings)
    service.handle_all(HANDLERS)
    http.register(service)
    return service
