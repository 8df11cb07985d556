"""Pricing's credit handlers, in-process on SQLite: hold at pricing, release, payments, refusals.

The account `credit-gmbh` buys at ACME's contract prices (BOLT-M8-100 at 9.80
EUR a unit below 100 units), so `bolts(n)` is an order of `n * 9.80` EUR.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from services.pricing import credit_ledger, holds, promotion_ledger
from services.pricing.credit_ledger import CreditPosition
from services.pricing.holds import HoldKind
from shared.contract import (
    Account,
    Channel,
    CreditPolicy,
    CreditTerms,
    OrderState,
    OrderSubmitted,
    PaymentReceived,
    ReasonCode,
)
from shared.topics import (
    ACCOUNTS,
    ORDERS_STATUS,
    ORDERS_VALIDATED,
    PAYMENTS_RECEIVED,
    PROMOTIONS,
)
from tests.handlers.conftest import price, pricing_on_sqlite, resent, status_from, validated
from tests.support.bench import ServiceBench
from tools.seed import b2b_order, b2c_order, promotions

CREDIT = "credit-gmbh"
OTHER = "other-gmbh"


def credit_account(
    account_id: str = CREDIT,
    limit: str | None = "100.00",
    policy: CreditPolicy = CreditPolicy.REJECT,
    warning_percent: int = 80,
) -> Account:
    return Account.new(
        account_id=account_id,
        name=account_id,
        channel=Channel.B2B,
        price_list_id="contract-acme-2026",
        payment_terms=["NET30"],
        credit=None
        if limit is None
        else CreditTerms(limit=Decimal(limit), policy=policy, warning_percent=warning_percent),
    )


def bolts(order_id: str, units: int, account_id: str = CREDIT) -> OrderSubmitted:
    return b2b_order(order_id, [("BOLT-M8-100", units)], account_id=account_id)


def payment(order_id: str, amount: str, **fields: Any) -> PaymentReceived:
    return PaymentReceived.new(
        **{
            "payment_id": f"pay-{uuid.uuid4().hex[:8]}",
            "account_id": CREDIT,
            "order_id": order_id,
            "amount": Decimal(amount),
            "currency": "EUR",
            "received_at": datetime(2026, 12, 1, tzinfo=UTC),
            **fields,
        }
    )


@pytest.fixture
async def pricing(tmp_path: Path) -> AsyncIterator[ServiceBench]:
    async with pricing_on_sqlite(tmp_path) as bench:
        await bench.deliver_all(ACCOUNTS, [credit_account(), credit_account(OTHER)])
        yield bench


async def credit_of(bench: ServiceBench, account_id: str = CREDIT) -> CreditPosition:
    async with bench.db.sessions() as session:
        found = await credit_ledger.position_of(session, account_id)
    assert found is not None
    return found


# --- at pricing time -------------------------------------------------------------------------


async def test_an_order_within_the_limit_is_priced_and_held(pricing: ServiceBench) -> None:
    priced = await price(pricing, bolts("c-1", 5))
    assert priced is not None and not priced.credit_limit_override
    assert priced.credit_warning is None
    credit = await credit_of(pricing)
    assert credit.exposure == Decimal("49.00") and credit.available == Decimal("51.00")
    assert [(i.order_id, i.state) for i in credit.open_items] == [("c-1", "held")]


async def test_an_order_over_the_limit_is_rejected_saying_limit_exposure_and_amount(
    pricing: ServiceBench,
) -> None:
    await price(pricing, bolts("c-1", 5))
    assert await price(pricing, bolts("c-2", 6)) is None
    [rejected] = await pricing.statuses("c-2")
    assert rejected.reason is not None
    assert rejected.reason.code is ReasonCode.CREDIT_LIMIT_EXCEEDED
    message = rejected.reason.message
    assert "58.80 EUR" in message and "from 49.00 EUR to 107.80 EUR" in message
    assert "credit limit of 100.00 EUR" in message and "available 51.00" in message
    assert (await credit_of(pricing)).exposure == Decimal("49.00")


async def test_reaching_the_limit_exactly_still_fits_and_then_nothing_more(
    pricing: ServiceBench,
) -> None:
    await pricing.deliver(ACCOUNTS, credit_account(limit="98.00"))
    assert await price(pricing, bolts("c-1", 10)) is not None
    assert await price(pricing, bolts("c-2", 1)) is None
    assert (await credit_of(pricing)).available == Decimal(0)


async def test_finance_approval_policy_sends_the_order_on_flagged(pricing: ServiceBench) -> None:
    await pricing.deliver(ACCOUNTS, credit_account(policy=CreditPolicy.FINANCE_APPROVAL))
    priced = await price(pricing, bolts("c-1", 20))
    assert priced is not None and priced.credit_limit_override
    assert priced.credit_warning is not None and "finance must approve" in priced.credit_warning
    assert (await credit_of(pricing)).exposure == Decimal("196.00")


async def test_past_the_soft_threshold_the_order_carries_a_warning(pricing: ServiceBench) -> None:
    priced = await price(pricing, bolts("c-1", 9))
    assert priced is not None and not priced.credit_limit_override
    assert priced.credit_warning is not None
    assert "88.20 EUR" in priced.credit_warning and "88 %" in priced.credit_warning


async def test_no_limit_means_no_check_but_exposure_is_tracked(pricing: ServiceBench) -> None:
    await pricing.deliver(ACCOUNTS, credit_account(limit=None))
    priced = await price(pricing, bolts("c-1", 90))
    assert priced is not None and priced.credit_warning is None
    credit = await credit_of(pricing)
    assert credit.exposure == Decimal("882.00") and credit.available is None


async def test_a_consumer_order_holds_no_credit(pricing: ServiceBench) -> None:
    await price(pricing, b2c_order("c-b2c", [("GLOVE-L", 3)]))
    async with pricing.db.sessions() as session:
        assert await credit_ledger.position_of(session, "anna-schmidt") is None


async def test_a_redelivered_order_is_held_once(pricing: ServiceBench) -> None:
    event = validated(bolts("c-1", 5))
    await pricing.deliver(ORDERS_VALIDATED, event)
    await pricing.deliver(ORDERS_VALIDATED, event)
    await pricing.deliver(ORDERS_VALIDATED, resent(event))
    assert (await credit_of(pricing)).exposure == Decimal("49.00")


# --- the order's fate ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "code"),
    [
        (OrderState.REJECTED, ReasonCode.APPROVAL_REJECTED),
        (OrderState.REJECTED, ReasonCode.APPROVAL_EXPIRED),
        (OrderState.CANCELLED, ReasonCode.CANCELLED_BY_SHOP),
    ],
)
async def test_a_rejected_cancelled_or_expired_order_releases_its_exposure(
    pricing: ServiceBench, state: OrderState, code: ReasonCode
) -> None:
    order = bolts("c-1", 5)
    await price(pricing, order)
    fate = status_from("approvals", order.order(), state, reason={"code": code, "message": "x"})
    await pricing.hear(fate)
    await pricing.hear(fate)
    credit = await credit_of(pricing)
    assert credit.exposure == 0 and credit.open_items == []
    assert await price(pricing, bolts("c-2", 10)) is not None


async def test_an_approved_order_stays_open_exposure_until_paid(pricing: ServiceBench) -> None:
    order = bolts("c-1", 5)
    await price(pricing, order)
    for state in (OrderState.AWAITING_APPROVAL, OrderState.APPROVED, OrderState.SHIPPED):
        await pricing.hear(status_from("approvals", order.order(), state))
    [item] = (await credit_of(pricing)).open_items
    assert (item.state, item.open) == ("committed", Decimal("49.00"))


async def test_a_release_is_final_whatever_comes_late(pricing: ServiceBench) -> None:
    order = bolts("c-1", 5)
    await price(pricing, order)
    await pricing.hear(status_from("catalog", order.order(), OrderState.CANCELLED))
    await pricing.hear(status_from("approvals", order.order(), OrderState.APPROVED))
    assert (await credit_of(pricing)).exposure == 0


async def test_a_status_of_an_order_pricing_never_held_changes_nothing(
    pricing: ServiceBench,
) -> None:
    await pricing.hear(status_from("catalog", bolts("c-x", 1).order(), OrderState.CANCELLED))
    assert (await credit_of(pricing)).exposure == 0


# --- payments ------------------------------------------------------------------------------


async def test_partial_and_final_payments_reduce_exposure(pricing: ServiceBench) -> None:
    await price(pricing, bolts("c-1", 5))
    await pricing.deliver(PAYMENTS_RECEIVED, payment("c-1", "20.00"))
    [item] = (await credit_of(pricing)).open_items
    assert (item.settled, item.open) == (Decimal("20.00"), Decimal("29.00"))
    await pricing.deliver(PAYMENTS_RECEIVED, payment("c-1", "29.00"))
    credit = await credit_of(pricing)
    assert credit.exposure == 0 and credit.available == Decimal("100.00")


async def test_an_over_payment_is_credit_on_account(pricing: ServiceBench) -> None:
    await price(pricing, bolts("c-1", 5))
    await pricing.deliver(PAYMENTS_RECEIVED, payment("c-1", "60.00"))
    credit = await credit_of(pricing)
    assert credit.credit_on_account == Decimal("11.00")
    assert credit.exposure == Decimal("-11.00") and credit.available == Decimal("111.00")


async def test_what_was_paid_for_a_cancelled_order_is_credit_on_account(
    pricing: ServiceBench,
) -> None:
    order = bolts("c-1", 5)
    await price(pricing, order)
    await pricing.deliver(PAYMENTS_RECEIVED, payment("c-1", "20.00"))
    await pricing.hear(status_from("catalog", order.order(), OrderState.CANCELLED))
    credit = await credit_of(pricing)
    assert (credit.credit_on_account, credit.exposure) == (Decimal("20.00"), Decimal("-20.00"))


async def test_a_payment_is_applied_once_by_its_payment_id(pricing: ServiceBench) -> None:
    await price(pricing, bolts("c-1", 5))
    paid = payment("c-1", "20.00")
    await pricing.deliver(PAYMENTS_RECEIVED, paid)
    await pricing.deliver(PAYMENTS_RECEIVED, paid)
    await pricing.deliver(PAYMENTS_RECEIVED, resent(paid))
    assert (await credit_of(pricing)).exposure == Decimal("29.00")
    assert await pricing.dead_letters(PAYMENTS_RECEIVED) == []


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"order_id": "nobody-knows"}, "unknown_order"),
        ({"account_id": OTHER}, "another_account"),
        ({"currency": "USD"}, "currency_mismatch"),
    ],
)
async def test_a_payment_that_cannot_be_set_against_the_order_is_dead_lettered(
    pricing: ServiceBench, changes: dict[str, str], why: str
) -> None:
    await price(pricing, bolts("c-1", 5))
    await pricing.deliver(
        PAYMENTS_RECEIVED, payment(**{"order_id": "c-1", **changes}, amount="20.00")
    )
    [letter] = await pricing.dead_letters(PAYMENTS_RECEIVED)
    assert letter.error.startswith(why)
    assert (await credit_of(pricing)).exposure == Decimal("49.00")
    assert await pricing.published(ORDERS_STATUS) == []


async def test_a_payment_id_reused_for_another_payment_is_dead_lettered(
    pricing: ServiceBench,
) -> None:
    await price(pricing, bolts("c-1", 5))
    paid = payment("c-1", "20.00")
    await pricing.deliver(PAYMENTS_RECEIVED, paid)
    await pricing.deliver(PAYMENTS_RECEIVED, resent(paid, amount=Decimal("30.00")))
    [letter] = await pricing.dead_letters(PAYMENTS_RECEIVED)
    assert letter.error.startswith("payment_id_reused")
    assert (await credit_of(pricing)).exposure == Decimal("29.00")


async def test_a_payment_of_a_float_or_of_nothing_is_dead_lettered(pricing: ServiceBench) -> None:
    body = payment("c-1", "20.00").model_dump(mode="json", by_alias=True)
    await pricing.deliver(PAYMENTS_RECEIVED, json.dumps({**body, "amount": 20.0}).encode())
    zero = payment("c-1", "0.01").model_dump(mode="json", by_alias=True) | {"amount": "0"}
    await pricing.deliver(PAYMENTS_RECEIVED, json.dumps(zero).encode())
    assert len(await pricing.dead_letters(PAYMENTS_RECEIVED)) == 2


async def test_an_order_credit_rejects_holds_no_promotion_use(
    pricing: ServiceBench,
) -> None:
    """Credit is the last check: pricing never hears its own rejections, so a use held
    before it would never be given back, and the code's last use would be lost for good."""
    [_, welcome10] = promotions()
    last_use = welcome10.model_copy(
        update={
            "promotion_id": "b2b-last",
            "code": "B2BLAST",
            "channels": [Channel.B2B],
            "max_uses_total": 1,
            "max_uses_per_customer": None,
        }
    )
    await pricing.deliver(PROMOTIONS, last_use)
    over = with_code(bolts("c-promo-1", 20), "B2BLAST")
    assert await price(pricing, over) is None
    [rejected] = await pricing.statuses("c-promo-1")
    assert rejected.reason is not None
    assert rejected.reason.code is ReasonCode.CREDIT_LIMIT_EXCEEDED
    async with pricing.db.sessions() as session:
        assert (await promotion_ledger.usage(session, "b2b-last", CREDIT)).total == 0
        assert await holds.holds_of_order(session, HoldKind.PROMOTION, "c-promo-1") == []

    within = with_code(bolts("c-promo-2", 6), "B2BLAST")  # 58.80: over the 50.00 minimum
    priced = await price(pricing, within)
    assert priced is not None and priced.totals.discount > 0  # the last use was still there


def with_code(order: OrderSubmitted, code: str) -> OrderSubmitted:
    return order.model_copy(update={"promo_codes": [code]})
