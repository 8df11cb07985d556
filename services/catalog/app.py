"""Catalog, wired: its database, a handler for each topic it reads, its read API and its gauge."""

from __future__ import annotations

from functools import partial

from services.catalog import api, handlers, store
from services.catalog import metrics as m
from services.catalog.handlers import HANDLERS
from shared import metrics
from shared.db import ServiceDatabase
from shared.metrics import OrderStage
from shared.service import Service
from shared.settings import Settings

NAME = "catalog"


def create_service(settings: Settings) -> Service:
    service = Service(NAME, store.Base.metadata, settings)
    service.handle_all(HANDLERS)
    metrics.stages_timed(NAME, OrderStage.RECEIVED, OrderStage.VALIDATED, OrderStage.REJECTED)
    service.refuse_orders_with(handlers.refuse_order)
    api.register(service)
    service.refresh_on_scrape(partial(show_available_units, service.db))
    return service


async def show_available_units(db: ServiceDatabase) -> None:
    """Free units per warehouse, read when Prometheus scrapes `/metrics`."""
    async with db.sessions() as session:
        m.show_available(await store.available_by_warehouse(session))
