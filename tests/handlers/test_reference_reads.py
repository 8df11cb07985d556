"""An order after the first reads no reference data: each service answers its accounts,
products, prices, promotions and warehouses from what its earlier transaction read
(`shared.reference_cache`); a change the service applies reaches its very next order."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

import pytest

from shared.contract import (
    OrderApproved,
    OrderPriced,
    OrderSubmitted,
    OrderValidated,
    PriceEntry,
    PriceList,
    PriceTier,
)
from shared.topics import (
    ORDERS_APPROVED,
    ORDERS_PRICED,
    ORDERS_SUBMITTED,
    ORDERS_VALIDATED,
    PRICE_LISTS,
    TopicSpec,
)
from tests.handlers.four_services import Benches, four_services
from tests.support.bench import ServiceBench
from tests.support.statements import reading, statements_sent
from tools.seed import ACME, b2b_order, b2c_order

E = TypeVar("E", OrderValidated, OrderPriced)
REFERENCE_TABLES = (
    "accounts",
    "products",
    "price_lists",
    "price_tiers",
    "promotions",
    "warehouses",
)


@pytest.fixture
async def benches(tmp_path: Path) -> AsyncIterator[Benches]:
    async with four_services(tmp_path) as running:
        yield running


async def carry(benches: Benches, order: OrderSubmitted) -> OrderPriced:
    """The order through every step, one transaction per service; what pricing handed on."""
    await benches.catalog.deliver(ORDERS_SUBMITTED, order)
    validated = await last(benches.catalog, ORDERS_VALIDATED, OrderValidated, order.order_id)
    await benches.pricing.deliver(ORDERS_VALIDATED, validated)
    priced = await last(benches.pricing, ORDERS_PRICED, OrderPriced, order.order_id)
    await benches.approvals.deliver(ORDERS_PRICED, priced)
    approved = await benches.approvals.published(ORDERS_APPROVED, OrderApproved)
    if approved and approved[-1].order.order_id == order.order_id:
        await benches.fulfillment.deliver(ORDERS_APPROVED, approved[-1])
    return priced


async def last(bench: ServiceBench, spec: TopicSpec, model: type[E], order_id: str) -> E:
    published = [e for e in await bench.published(spec, model) if e.order.order_id == order_id]
    assert published, f"{order_id} was handed on"
    return published[-1]


async def test_an_order_after_the_first_reads_no_reference_data_at_any_step(
    benches: Benches,
) -> None:
    services = (benches.catalog, benches.pricing, benches.approvals, benches.fulfillment)
    await carry(benches, b2c_order("first", [("GLOVE-L", 1)], account_id="consumer-first"))
    with statements_sent(*(s.db for s in services), matching=reading(*REFERENCE_TABLES)) as read:
        await carry(benches, b2c_order("second", [("GLOVE-L", 2)], account_id="consumer-first"))
    assert read == []


async def test_a_price_list_change_prices_the_very_next_order(benches: Benches) -> None:
    first = await carry(benches, b2b_order("before", [("BOLT-M8-100", 1)], account_id=ACME))
    assert first.lines[0].unit_price == Decimal("9.80")
    bolts_dearer = PriceList.new(
        price_list_id="contract-acme-2026",
        currency="EUR",
        prices=[
            PriceEntry(
                sku="BOLT-M8-100", tiers=[PriceTier(min_quantity=1, unit_price=Decimal("12.34"))]
            )
        ],
    )
    await benches.pricing.deliver(PRICE_LISTS, bolts_dearer)
    after = await carry(benches, b2b_order("after", [("BOLT-M8-100", 1)], account_id=ACME))
    assert after.lines[0].unit_price == Decimal("12.34")
