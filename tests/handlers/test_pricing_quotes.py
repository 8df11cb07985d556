"""Pricing's quote handlers, in-process on SQLite: quoted prices, versions, the single use held
and released, refusals, the lifecycle on `pricing.quote_events`, and the expiry clock."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from services.pricing import quote_handlers, quote_ledger
from services.pricing.holds import HoldKind, holds_of_order
from shared.contract import (
    OrderState,
    OrderSubmitted,
    QuoteEvent,
    ReasonCode,
)
from shared.topics import (
    ORDERS_PRICED,
    ORDERS_VALIDATED,
    QUOTE_EVENTS,
    QUOTES,
)
from tests.handlers.conftest import price, pricing_on_sqlite, quote, resent, status_from, validated
from tests.support.bench import ServiceBench
from tools.seed import ACME, GLOBEX, b2b_order


def drills(
    order_id: str, units: int = 2, account_id: str = ACME, quote_id: str = "q-1"
) -> OrderSubmitted:
    return b2b_order(order_id, [("DRILL-18V", units)], account_id=account_id, quote_id=quote_id)


@pytest.fixture
async def pricing(tmp_path: Path) -> AsyncIterator[ServiceBench]:
    async with pricing_on_sqlite(tmp_path) as bench:
        await bench.deliver(QUOTES, quote())
        yield bench


async def rejection(bench: ServiceBench, order: OrderSubmitted) -> tuple[ReasonCode, str]:
    assert await price(bench, order) is None
    [status] = await bench.statuses(order.order_id)
    assert status.status is OrderState.REJECTED and status.reason is not None
    return status.reason.code, status.reason.message


async def lifecycle(bench: ServiceBench) -> list[tuple[str, str | None, int]]:
    events = await bench.published(QUOTE_EVENTS, QuoteEvent)
    return [(e.kind.value, e.order_id, e.version) for e in events]


async def test_an_order_naming_its_quote_is_priced_at_the_quote_and_takes_its_single_use(
    pricing: ServiceBench,
) -> None:
    priced = await price(pricing, drills("o-1", 2))
    assert priced is not None
    [line] = priced.lines
    assert (line.unit_price, line.line_total, line.price_source) == (
        Decimal("89.00"),
        Decimal("178.00"),
        "quote:q-1 v1",
    )
    assert priced.totals.total == Decimal("178.00")
    assert await lifecycle(pricing) == [("used", "o-1", 1)]
    [event] = await pricing.published(QUOTE_EVENTS, QuoteEvent)
    assert event.account_id == ACME and event.quote_id == "q-1"


async def test_a_single_use_quote_serves_one_order_only(pricing: ServiceBench) -> None:
    assert await price(pricing, drills("o-1")) is not None
    code, message = await rejection(pricing, drills("o-2"))
    assert code is ReasonCode.QUOTE_ALREADY_USED and "'q-1'" in message
    assert await lifecycle(pricing) == [("used", "o-1", 1)]


async def test_a_redelivered_order_takes_the_quote_once(pricing: ServiceBench) -> None:
    order = validated(drills("o-1"))
    await pricing.deliver(ORDERS_VALIDATED, order)
    await pricing.deliver(ORDERS_VALIDATED, order)
    await pricing.deliver(ORDERS_VALIDATED, resent(order))
    assert len(await pricing.published(ORDERS_PRICED)) == 1
    assert await lifecycle(pricing) == [("used", "o-1", 1)]


@pytest.mark.parametrize("fate", [OrderState.REJECTED, OrderState.CANCELLED])
async def test_a_rejected_or_cancelled_order_frees_the_quote_for_the_next(
    pricing: ServiceBench, fate: OrderState
) -> None:
    first = drills("o-1")
    assert await price(pricing, first) is not None
    ended = status_from("approvals", first.order(), fate)
    await pricing.hear(ended)
    await pricing.hear(ended)
    await pricing.hear(resent(ended))
    assert await price(pricing, drills("o-2")) is not None
    assert await lifecycle(pricing) == [
        ("used", "o-1", 1),
        ("released", "o-1", 1),
        ("used", "o-2", 1),
    ]


async def test_an_approved_order_keeps_the_quote_and_a_later_cancellation_frees_it(
    pricing: ServiceBench,
) -> None:
    first = drills("o-1")
    await price(pricing, first)
    await pricing.hear(status_from("approvals", first.order(), OrderState.APPROVED))
    async with pricing.db.sessions() as session:
        [hold] = await holds_of_order(session, HoldKind.QUOTE, "o-1")
    assert hold.state == "committed"
    assert (await rejection(pricing, drills("o-2")))[0] is ReasonCode.QUOTE_ALREADY_USED
    await pricing.hear(status_from("shops", first.order(), OrderState.CANCELLED))
    assert await price(pricing, drills("o-3")) is not None
    assert [kind for kind, _, _ in await lifecycle(pricing)] == ["used", "released", "used"]


async def test_a_multi_use_quote_prices_every_order_and_holds_nothing(
    pricing: ServiceBench,
) -> None:
    await pricing.deliver(QUOTES, quote(version=2, use="multiple"))
    for order_id in ("o-1", "o-2"):
        priced = await price(pricing, drills(order_id))
        assert priced is not None and priced.lines[0].price_source == "quote:q-1 v2"
    assert await lifecycle(pricing) == []


async def test_another_accounts_quote_is_rejected_like_an_unknown_one(
    pricing: ServiceBench,
) -> None:
    foreign = await rejection(pricing, drills("g-1", account_id=GLOBEX))
    unknown = await rejection(pricing, drills("o-1", quote_id="no-such-quote"))
    assert foreign[0] is unknown[0] is ReasonCode.UNKNOWN_QUOTE
    assert ACME not in foreign[1]
    assert await lifecycle(pricing) == []


async def test_an_order_that_does_not_fit_says_what(pricing: ServiceBench) -> None:
    code, message = await rejection(pricing, drills("o-1", units=21))
    assert code is ReasonCode.QUOTE_MISMATCH and "at most 20" in message
    other = b2b_order("o-2", [("CEMENT-25", 200)], quote_id="q-1")
    code, message = await rejection(pricing, other)
    assert code is ReasonCode.QUOTE_MISMATCH and "'CEMENT-25' is not in quote" in message


async def test_an_expired_quote_rejects_the_order_saying_when(pricing: ServiceBench) -> None:
    now = datetime.now(UTC)
    gone = now - timedelta(minutes=5)
    await pricing.deliver(
        QUOTES, quote(version=2, issued_at=now - timedelta(days=3), valid_until=gone)
    )
    code, message = await rejection(pricing, drills("o-1"))
    assert code is ReasonCode.QUOTE_EXPIRED and gone.isoformat() in message


async def test_a_late_older_version_changes_nothing(pricing: ServiceBench) -> None:
    await pricing.deliver(
        QUOTES, quote(version=3, lines=[{"sku": "DRILL-18V", "quantity": 5, "unit_price": "80.00"}])
    )
    await pricing.deliver(QUOTES, quote(version=2))
    priced = await price(pricing, drills("o-1"))
    assert priced is not None
    assert (priced.lines[0].unit_price, priced.lines[0].price_source) == (
        Decimal("80.00"),
        "quote:q-1 v3",
    )
    assert await lifecycle(pricing) == [("used", "o-1", 3)]


async def test_a_released_quote_says_the_version_the_order_was_priced_with(
    pricing: ServiceBench,
) -> None:
    first = drills("o-1")
    await price(pricing, first)
    await pricing.deliver(QUOTES, quote(version=2))
    await pricing.hear(status_from("approvals", first.order(), OrderState.REJECTED))
    assert await lifecycle(pricing) == [("used", "o-1", 1), ("released", "o-1", 1)]


async def test_an_unsound_quote_goes_to_the_dlq_and_the_kept_one_stays(
    pricing: ServiceBench,
) -> None:
    broken = quote(version=9).model_dump(mode="json", by_alias=True)
    broken["lines"][0]["unit_price"] = "-1.00"
    await pricing.deliver(QUOTES, json.dumps(broken).encode())
    [letter] = await pricing.dead_letters(QUOTES)
    assert "unit_price" in letter.error
    priced = await price(pricing, drills("o-1"))
    assert priced is not None and priced.lines[0].price_source == "quote:q-1 v1"


async def test_the_clock_announces_expiry_once_even_when_asked_twice(pricing: ServiceBench) -> None:
    valid_until = datetime.now(UTC) + timedelta(hours=1)
    await pricing.deliver(QUOTES, quote(version=2, valid_until=valid_until))
    assert (
        await quote_handlers.announce_expiries(pricing.db, valid_until - timedelta(seconds=1)) == []
    )
    await quote_handlers.announce_expiries(pricing.db, valid_until)
    await quote_handlers.announce_expiries(pricing.db, valid_until + timedelta(seconds=5))
    assert await lifecycle(pricing) == [("expired", None, 2)]
    async with pricing.db.sessions() as session:
        row = await quote_ledger.find_quote(session, "q-1")
    assert row is not None and row.expiry_announced
