"""The four services in-process, each on a SQLite file of its own, with the demo data loaded:
for tests that carry an order from one step to the next by hand."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from services.approvals import store as approvals_store
from services.approvals.handlers import HANDLERS as APPROVALS
from services.catalog import store as catalog_store
from services.catalog.handlers import HANDLERS as CATALOG
from services.catalog.handlers import refuse_order
from services.fulfillment import store as fulfillment_store
from services.fulfillment.handlers import HANDLERS as FULFILLMENT
from services.pricing import store as pricing_store
from services.pricing.handlers import HANDLERS as PRICING
from shared.topics import (
    ACCOUNTS,
    APPROVAL_POLICIES,
    PRICE_LISTS,
    PRODUCTS,
    STOCK,
    WAREHOUSES,
)
from tests.handlers.conftest import on_sqlite
from tests.support.bench import ServiceBench
from tools.seed import (
    accounts,
    approval_policies,
    price_lists,
    products,
    stock_levels,
    warehouses,
)


@dataclass
class Benches:
    catalog: ServiceBench
    pricing: ServiceBench
    approvals: ServiceBench
    fulfillment: ServiceBench


@asynccontextmanager
async def four_services(directory: Path) -> AsyncIterator[Benches]:
    async with (
        on_sqlite(directory, "catalog", catalog_store.Base.metadata, CATALOG, refuse_order) as c,
        on_sqlite(directory, "pricing", pricing_store.Base.metadata, PRICING) as p,
        on_sqlite(directory, "approvals", approvals_store.Base.metadata, APPROVALS) as a,
        on_sqlite(directory, "fulfillment", fulfillment_store.Base.metadata, FULFILLMENT) as f,
    ):
        await c.deliver_all(WAREHOUSES, warehouses())
        await c.deliver_all(PRODUCTS, products())
        await c.deliver_all(STOCK, stock_levels())
        await c.deliver_all(ACCOUNTS, accounts())
        await p.deliver_all(ACCOUNTS, accounts())
        await p.deliver_all(PRICE_LISTS, price_lists())
        await a.deliver_all(ACCOUNTS, accounts())
        await a.deliver_all(APPROVAL_POLICIES, approval_policies())
        await f.deliver_all(WAREHOUSES, warehouses())
        yield Benches(c, p, a, f)
