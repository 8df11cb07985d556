"""Pricing's promotions, in-process on SQLite: applied with reasons, codes refused, uses held
and given back.

The demo seed's promotions: `audio-week` (automatic, 15 % off the
`electronics` category: HEADSET-BT at 59.00) and `welcome10` (code WELCOME10, 10 % off an order
from 50 EUR, once per customer, 1000 uses). DRILL-18V lists at 129.00 EUR.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from services.pricing import promotion_ledger
from shared.contract import Channel, OrderState, OrderSubmitted, Promotion, ReasonCode
from shared.topics import (
    ORDERS_VALIDATED,
    PROMOTIONS,
)
from tests.handlers.conftest import price, pricing_on_sqlite, resent, status_from, validated
from tests.support.bench import ServiceBench
from tools.seed import b2b_order, b2c_order, promotions


@pytest.fixture
async def pricing(tmp_path: Path) -> AsyncIterator[ServiceBench]:
    async with pricing_on_sqlite(tmp_path) as bench:
        await bench.deliver_all(PROMOTIONS, promotions())
        yield bench


async def uses(bench: ServiceBench, promotion_id: str, account_id: str = "") -> tuple[int, int]:
    async with bench.db.sessions() as session:
        usage = await promotion_ledger.usage(session, promotion_id, account_id)
    return usage.total, usage.by_customer


def welcome(
    order_id: str, account_id: str = "consumer-1", code: str = "welcome10"
) -> OrderSubmitted:
    return b2c_order(order_id, [("DRILL-18V", 1)], account_id=account_id, promo_codes=[code])


def a_limited_code(total: int) -> Promotion:
    [_, welcome10] = promotions()
    return welcome10.model_copy(
        update={"promotion_id": "last-one", "code": "LASTONE", "max_uses_total": total}
    )


async def test_a_promo_code_and_an_automatic_promotion_are_applied_and_explained(
    pricing: ServiceBench,
) -> None:
    order = b2c_order(
        "p-1", [("DRILL-18V", 1), ("HEADSET-BT", 1), ("GLOVE-L", 1)], promo_codes=["WELCOME10"]
    )
    priced = await price(pricing, order)
    assert priced is not None
    drill, headset, gloves = priced.lines
    assert (drill.discount, drill.line_total, drill.promotions) == (0, Decimal("129.00"), [])
    assert headset.discount == Decimal("8.85")  # 15 % of 59.00
    assert headset.line_total == Decimal("50.15")
    assert headset.price_source == "list:list-EUR promotion:audio-week"
    assert [(n.promotion_id, n.applied) for n in headset.promotions] == [("audio-week", True)]
    assert (gloves.discount, gloves.line_total) == (0, Decimal("4.99"))
    totals = priced.totals
    assert totals.subtotal == Decimal("184.14")
    assert totals.discount == Decimal("18.41")  # 10 % of 184.14 = 18.414
    assert totals.total == Decimal("165.73")
    assert [(n.promotion_id, n.code, n.discount) for n in totals.promotions] == [
        ("welcome10", "WELCOME10", Decimal("18.41"))
    ]
    assert priced.payment is not None
    assert sum(due.amount for due in priced.payment.schedule) == totals.total


async def test_an_unknown_code_rejects_the_order_naming_it(pricing: ServiceBench) -> None:
    assert await price(pricing, welcome("p-2", code="NOSUCH")) is None
    [rejected] = await pricing.statuses("p-2")
    assert rejected.status is OrderState.REJECTED and rejected.reason is not None
    assert rejected.reason.code is ReasonCode.INVALID_PROMO_CODE
    assert rejected.reason.message.startswith("promo code 'NOSUCH': unknown")


async def test_below_the_minimum_the_code_is_refused_with_the_figure(pricing: ServiceBench) -> None:
    order = b2c_order("p-3", [("GLOVE-L", 1)], promo_codes=["WELCOME10"])
    assert await price(pricing, order) is None
    [rejected] = await pricing.statuses("p-3")
    assert rejected.reason is not None
    assert "minimum_not_met" in rejected.reason.message and "50 EUR" in rejected.reason.message


async def test_a_business_gets_a_promotion_only_where_it_names_b2b(pricing: ServiceBench) -> None:
    [audio_week, _] = promotions()
    bolts = {"promotion_id": "bolts", "categories": ["fasteners"]}
    await pricing.deliver(PROMOTIONS, resent(audio_week, **bolts))
    priced = await price(pricing, b2b_order("p-4", [("BOLT-M8-100", 10)]))
    assert priced is not None
    [note] = priced.lines[0].promotions
    assert (note.applied, note.reason) == (False, "channel_not_allowed")
    for_business = {**bolts, "channels": [Channel.B2B]}
    await pricing.deliver(PROMOTIONS, resent(audio_week, **for_business))
    priced = await price(pricing, b2b_order("p-4b", [("BOLT-M8-100", 10)]))
    assert priced is not None
    assert priced.lines[0].discount == Decimal("14.70")  # 15 % of the contract's 10 x 9.80


async def test_a_use_is_held_then_given_back_when_the_order_is_cancelled(
    pricing: ServiceBench,
) -> None:
    order = welcome("p-5")
    assert await price(pricing, order) is not None
    assert await uses(pricing, "welcome10", "consumer-1") == (1, 1)
    assert await price(pricing, welcome("p-6")) is None  # once per customer
    [rejected] = await pricing.statuses("p-6")
    assert rejected.reason is not None and "customer_limit_reached" in rejected.reason.message
    cancelled = status_from("catalog", order.order(), OrderState.CANCELLED)
    await pricing.hear(cancelled)
    await pricing.hear(resent(cancelled))
    assert await uses(pricing, "welcome10", "consumer-1") == (0, 0)
    assert await price(pricing, welcome("p-7")) is not None


async def test_an_approved_use_counts_and_a_late_rejection_gives_it_back(
    pricing: ServiceBench,
) -> None:
    order = welcome("p-8")
    await price(pricing, order)
    approved = status_from("approvals", order.order(), OrderState.APPROVED)
    await pricing.hear(approved)
    await pricing.hear(approved)
    assert await uses(pricing, "welcome10") == (1, 0)
    reason = {"code": ReasonCode.APPROVAL_EXPIRED, "message": "expired"}
    expired = status_from("approvals", order.order(), OrderState.REJECTED, reason=reason)
    await pricing.hear(expired)
    assert await uses(pricing, "welcome10") == (0, 0)


async def test_the_last_use_goes_to_one_order_and_the_next_is_told_exhausted(
    pricing: ServiceBench,
) -> None:
    await pricing.deliver(PROMOTIONS, a_limited_code(1))
    assert await price(pricing, welcome("p-9", "c-a", "LASTONE")) is not None
    assert await price(pricing, welcome("p-10", "c-b", "LASTONE")) is None
    [rejected] = await pricing.statuses("p-10")
    assert rejected.reason is not None
    assert rejected.reason.message == "promo code 'LASTONE': exhausted: all 1 uses are taken"


async def test_a_redelivered_order_holds_no_second_use(pricing: ServiceBench) -> None:
    event = validated(welcome("p-11"))
    await pricing.deliver(ORDERS_VALIDATED, event)
    await pricing.deliver(ORDERS_VALIDATED, event)
    await pricing.deliver(ORDERS_VALIDATED, resent(event))
    assert await uses(pricing, "welcome10", "consumer-1") == (1, 1)


async def test_a_retired_code_reads_as_unknown(pricing: ServiceBench) -> None:
    [_, welcome10] = promotions()
    await pricing.deliver(PROMOTIONS, resent(welcome10, active=False))
    assert await price(pricing, welcome("p-12")) is None
    [rejected] = await pricing.statuses("p-12")
    assert rejected.reason is not None and "unknown" in rejected.reason.message


async def test_a_nonsense_promotion_goes_to_the_dlq_with_its_reason(
    pricing: ServiceBench,
) -> None:
    [_, welcome10] = promotions()
    raw = welcome10.model_dump(mode="json", by_alias=True)
    raw["percent"] = "150"
    raw["valid_until"] = datetime(2020, 1, 1, tzinfo=UTC).isoformat()
    await pricing.deliver(PROMOTIONS, json.dumps(raw).encode())
    [dead] = await pricing.dead_letters(PROMOTIONS)
    assert "percent" in dead.error and "valid_until" in dead.error
    async with pricing.db.sessions() as session:
        kept = await session.get(promotion_ledger.PromotionRow, "welcome10")
    assert kept is not None and kept.payload["percent"] == "10"
