"""Fulfillment, wired: its database, a handler for each topic it reads, and its read API."""

from __future__ import annotations

from services.fulfillment import http, store
from services.fulfillment.handlers import HANDLERS
from shared import metrics
from shared.metrics import OrderStage
from shared.service import Service
from shared.settings import Settings

NAME = "fulfillment"


def create_service(settings: Settings) -> Service:
    service = Service(NAME, store.Base.metadata, settings)
    service.handle_all(HANDLERS)
    metrics.stages_timed(NAME, OrderStage.FULFILLMENT_PLANNED, OrderStage.SHIPPED)
    http.register(service)
    return service
