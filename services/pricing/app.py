"""Pricing, wired: its database, and a handler for each topic it reads."""

from __future__ import annotations

from services.pricing import credit_api, store
from services.pricing import metrics as pricing_metrics
from services.pricing.handlers import HANDLERS
from shared import metrics
from shared.metrics import OrderStage
from shared.service import Service
from shared.settings import Settings

NAME = "pricing"


def create_service(settings: Settings) -> Service:
    service = Service(NAME, store.Base.metadata, settings)
    service.handle_all(HANDLERS)
    credit_api.register(service)
    pricing_metrics.show_every_outcome()
    pricing_metrics.show_every_promotion_outcome()
    metrics.stages_timed(NAME, OrderStage.PRICED, OrderStage.REJECTED)
    return service
