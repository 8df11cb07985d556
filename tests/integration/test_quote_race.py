"""A single-use quote under concurrency, on SQLite and PostgreSQL: two pricing workers (two
benches on one database, as during a rebalance) pricing two orders for one quote at once let
exactly one take it; the quote's row lock makes the second see the first's hold. And a
hypothesis property: any interleaving of pricing and fates keeps one live use at most."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.pricing.holds import HoldKind, live_holds
from shared.contract import OrderPriced, OrderState, QuoteEvent, ReasonCode
from shared.topics import (
    ACCOUNTS,
    HOLD_MOVES,
    ORDERS_PRICED,
    ORDERS_VALIDATED,
    QUOTE_EVENTS,
    QUOTES,
)
from tests.handlers.conftest import price_at_once, quote, start_pricing, status_from, validated
from tools.seed import accounts, b2b_order


@pytest.mark.parametrize("attempt", range(3))
async def test_two_workers_racing_for_a_single_use_quote_let_exactly_one_take_it(
    database_url: str, attempt: int
) -> None:
    first, second = await start_pricing(database_url), await start_pricing(database_url)
    try:
        await first.deliver_all(ACCOUNTS, accounts())
        await first.deliver(QUOTES, quote(quote_id="q-race"))
        one, two = (
            b2b_order(f"race-{attempt}-{n}", [("DRILL-18V", 5)], quote_id="q-race") for n in (1, 2)
        )
        priced, rejected = await price_at_once(first, second, one, two)
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


# --- the property: one live use at most, and the CRM's story adds up ------------------------

FATES = (OrderState.APPROVED, OrderState.REJECTED, OrderState.CANCELLED)
STEPS = st.lists(
    st.tuples(st.integers(0, 3), st.sampled_from((None, *FATES))), min_size=1, max_size=12
)
"""(order number, None: price it / a fate: report it on orders.status), in any order."""


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=STEPS)
def test_a_single_use_quote_is_used_at_most_once_at_a_time_after_any_interleaving(
    database_url: str, steps: list[tuple[int, OrderState | None]]
) -> None:
    """Orders priced and ended in any order, each event delivered twice: at most one order
    holds the quote at any time, and `pricing.quote_events` tells the CRM `used` and
    `released` alternately, one `used` per order priced from the quote."""
    asyncio.run(run_example(database_url, steps))


async def run_example(url: str, steps: list[tuple[int, OrderState | None]]) -> None:
    bench = await start_pricing(url)
    the_quote = quote(quote_id=f"q-{uuid.uuid4().hex[:8]}")
    try:
        await bench.deliver_all(ACCOUNTS, accounts())
        await bench.deliver(QUOTES, the_quote)
        orders = [
            b2b_order(f"{the_quote.quote_id}-{n}", [("DRILL-18V", 1)], quote_id=the_quote.quote_id)
            for n in range(4)
        ]
        for number, fate in steps:
            order = orders[number]
            event = (
                validated(order) if fate is None else status_from("approvals", order.order(), fate)
            )
            spec = ORDERS_VALIDATED if fate is None else HOLD_MOVES
            for _ in range(2):
                await bench.deliver(spec, event)
            async with bench.db.sessions() as session:
                assert len(await live_holds(session, HoldKind.QUOTE, the_quote.quote_id)) <= 1
        story = [
            (e.kind.value, e.order_id)
            for e in await bench.published(QUOTE_EVENTS, QuoteEvent)
            if e.quote_id == the_quote.quote_id
        ]
        kinds = [kind for kind, _ in story]
        assert kinds == ["used", "released"] * (len(kinds) // 2) + ["used"] * (len(kinds) % 2)
        priced = {p.order.order_id for p in await bench.published(ORDERS_PRICED, OrderPriced)}
        assert {o for kind, o in story if kind == "used"} == priced & {o.order_id for o in orders}
        assert all(story[i + 1][1] == story[i][1] for i in range(0, len(story) - 1, 2))
    finally:
        await bench.dispose()
