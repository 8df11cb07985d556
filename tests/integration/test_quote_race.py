"""A single-use quote under concurrency, on SQLite and PostgreSQL: two pricing workers (two
benches on one database, as during a rebalance) pricing two orders for one quote at once let
exactly one take it; the quote's row lock makes the second see the first's hold."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from services.pricing import store
from services.pricing.app import NAME
from services.pricing.handlers import HANDLERS
from services.pricing.holds import HoldKind, live_holds
from shared.contract import OrderPriced, Quote, QuoteEvent, ReasonCode
from shared.topics import (
    ACCOUNTS,
    ORDERS_PRICED,
    ORDERS_VALIDATED,
    PRICE_LISTS,
    QUOTE_EVENTS,
    QUOTES,
)
from tests.handlers.conftest import validated
from tests.support.bench import ServiceBench
from tools.seed import ACME, accounts, b2b_order, price_lists

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, new_database_url: Callable[[str], str]) -> str:
    return new_database_url(request.param)


def single_use_quote() -> Quote:
    now = datetime.now(UTC)
    return Quote.new(
        quote_id="q-race",
        account_id=ACME,
        version=1,
        currency="EUR",
        lines=[{"sku": "DRILL-18V", "quantity": 20, "unit_price": "89.00"}],
        issued_at=now - timedelta(days=1),
        valid_until=now + timedelta(days=30),
        use="single",
    )


@pytest.mark.parametrize("attempt", range(3))
async def test_two_workers_racing_for_a_single_use_quote_let_exactly_one_take_it(
    database_url: str, attempt: int
) -> None:
    first = await ServiceBench(NAME, store.Base.metadata, HANDLERS, database_url).start()
    second = await ServiceBench(NAME, store.Base.metadata, HANDLERS, database_url).start()
    try:
        await first.deliver_all(PRICE_LISTS, price_lists())
        await first.deliver_all(ACCOUNTS, accounts())
        await first.deliver(QUOTES, single_use_quote())
        one, two = (
            b2b_order(f"race-{attempt}-{n}", [("DRILL-18V", 5)], quote_id="q-race") for n in (1, 2)
        )
        await asyncio.gather(
            first.deliver(ORDERS_VALIDATED, validated(one)),
            second.deliver(ORDERS_VALIDATED, validated(two)),
        )
        priced = await first.published(ORDERS_PRICED, OrderPriced)
        rejected = [s for o in (one, two) for s in await first.statuses(o.order_id)]
        assert len(priced) == 1 and len(rejected) == 1
        assert rejected[0].reason is not None
        assert rejected[0].reason.code is ReasonCode.QUOTE_ALREADY_USED
        used = await first.published(QUOTE_EVENTS, QuoteEvent)
        assert [(e.kind.value, e.order_id) for e in used] == [("used", priced[0].order.order_id)]
        async with first.db.sessions() as session:
            assert len(await live_holds(session, HoldKind.QUOTE, "q-race")) == 1
    finally:
        await first.dispose()
        await second.dispose()
