"""Pricing, wired: its database, a handler for each topic it reads, and the quote expiry clock."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from services.pricing import credit_api, quote_handlers, store
from services.pricing import metrics as pricing_metrics
from services.pricing.handlers import HANDLERS
from shared import metrics
from shared.metrics import OrderStage
from shared.service import Service
from shared.settings import Settings

NAME = "pricing"

log = logging.getLogger(__name__)


def create_service(settings: Settings) -> Service:
    service = Service(NAME, store.Base.metadata, settings)
    service.handle_all(HANDLERS)
    credit_api.register(service)
    pricing_metrics.show_every_outcome()
    pricing_metrics.show_every_promotion_outcome()
    metrics.stages_timed(NAME, OrderStage.PRICED, OrderStage.REJECTED)

    async def announce_expiries() -> None:
        try:
            await quote_handlers.announce_expiries(service.db, datetime.now(UTC))
        except Exception:  # a timer that raises stops for good: log, and try again next tick
            log.exception("pricing: announcing quote expiries failed")

    service.app.timer(settings.quote_timer_seconds)(announce_expiries)
    return service
