"""Approvals, wired: its database, a handler for each topic it reads, the request clock, the
JSON API and the inbox page, and the pending-requests gauge."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from services.approvals import api, clock, store, web
from services.approvals import metrics as m
from services.approvals.handlers import HANDLERS
from shared import metrics
from shared.metrics import OrderStage
from shared.service import Service
from shared.settings import Settings

NAME = "approvals"

log = logging.getLogger(__name__)


def create_service(settings: Settings) -> Service:
    settings.token_secret()  # the development secret on an open port stops us here, before anything
    if settings.uses_dev_token_secret:
        log.warning(
            "APPROVALS_TOKEN_SECRET is the development default (allowed: %s); set your own to "
            "deploy",
            "TRADELANE_DEV_MODE=true" if settings.dev_mode else f"WEB_BIND={settings.web_bind}",
        )
    service = Service(NAME, store.Base.metadata, settings)
    service.handle_all(HANDLERS)
    metrics.stages_timed(
        NAME, OrderStage.AWAITING_APPROVAL, OrderStage.APPROVED, OrderStage.REJECTED
    )

    async def advance_clocks() -> None:
        try:
            await clock.advance_due(service.db, datetime.now(UTC))
        except Exception:  # a timer that raises stops for good: log, and try again next tick
            log.exception("approvals: advancing request clocks failed")

    async def show_pending() -> None:
        async with service.db.sessions() as session:
            m.PENDING.set(await store.count_open(session))

    service.app.timer(settings.approval_timer_seconds)(advance_clocks)
    service.refresh_on_scrape(show_pending)
    api.register(service)
    web.register(service)
    return service
