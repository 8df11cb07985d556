"""Promotions and promo codes end to end over real Kafka: applied, refused, given back.

The seed's WELCOME10 (10 % off a consumer order from 50 EUR, once per
customer) and each test's own promotions, published as ERP would. A consumer
order of one DRILL-18V (129.00 EUR) is approved automatically; a business
account with a manager step waits for approval, so it can be cancelled.
Waits are conditions on what the system publishes.
"""

from __future__ import annotations

import functools
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from shared.contract import (
    Account,
    ApprovalPolicy,
    Channel,
    Member,
    OrderCancelled,
    OrderState,
    OrderStatusChanged,
    Promotion,
    PromotionKind,
    PromotionScope,
    ReasonCode,
    Role,
)
from shared.topics import (
    ACCOUNTS,
    APPROVAL_POLICIES,
    ORDERS_CANCELLED,
    ORDERS_SUBMITTED,
    PROMOTIONS,
)
from tests.e2e.conftest import Pipeline
from tools.seed import b2b_order, b2c_order

NOW = datetime.now(UTC)


def a_code(pipeline: Pipeline, label: str, **fields: Any) -> str:
    """Publish a promotion of this test's own (5.00 EUR off the order); returns its code."""
    code = f"{label}{pipeline.run_id}{uuid.uuid4().hex[:4]}".upper()
    pipeline.publish_reference(
        PROMOTIONS,
        Promotion.new(
            **{
                "promotion_id": code.lower(),
                "name": label,
                "kind": PromotionKind.FIXED,
                "amount": Decimal(5),
                "currency": "EUR",
                "scope": PromotionScope.ORDER,
                "code": code,
                "valid_from": NOW - timedelta(days=1),
                "valid_until": NOW + timedelta(days=1),
                **fields,
            }
        ),
    )
    return code


def shop(pipeline: Pipeline, label: str, code: str, customer: str | None = None) -> str:
    order = b2c_order(
        pipeline.order_id(label),
        [("DRILL-18V", 1)],
        account_id=customer or f"cust-{pipeline.run_id}-{uuid.uuid4().hex[:4]}",
        promo_codes=[code],
    )
    pipeline.publisher.publish(ORDERS_SUBMITTED, order)
    pipeline.publisher.flush()
    return order.order_id


def rejected_because(pipeline: Pipeline, order_id: str) -> str:
    rejected = pipeline.watch.wait_for_status(order_id, OrderState.REJECTED)
    assert rejected.reason is not None
    assert rejected.reason.code is ReasonCode.INVALID_PROMO_CODE
    return rejected.reason.message


def test_a_consumer_promo_code_discounts_the_order_and_says_so(pipeline: Pipeline) -> None:
    approved = pipeline.watch.wait_for_status(
        shop(pipeline, "welcome", "welcome10"), OrderState.APPROVED
    )
    assert approved.totals is not None and approved.lines is not None
    assert approved.totals.subtotal == Decimal("129.00")
    assert approved.totals.discount == Decimal("12.90")
    assert approved.totals.total == Decimal("116.10")
    [applied] = approved.totals.promotions
    assert (applied.promotion_id, applied.code, applied.applied) == ("welcome10", "WELCOME10", True)
    assert approved.payment is not None
    assert sum(due.amount for due in approved.payment.schedule) == Decimal("116.10")


def test_an_expired_code_is_rejected_saying_so(pipeline: Pipeline) -> None:
    code = a_code(
        pipeline, "old", valid_from=NOW - timedelta(days=9), valid_until=NOW - timedelta(days=2)
    )
    message = rejected_because(pipeline, shop(pipeline, "expired", code))
    assert message.startswith(f"promo code {code!r}: expired: valid until")
    assert 'tradelane_promo_code_rejections_total{reason="expired"}' in pipeline.metrics("pricing")


def test_an_exhausted_code_is_rejected_after_its_last_use(pipeline: Pipeline) -> None:
    code = a_code(pipeline, "once", max_uses_total=1)
    first = shop(pipeline, "first", code)
    pipeline.watch.wait_for_status(first, OrderState.APPROVED)
    message = rejected_because(pipeline, shop(pipeline, "second", code))
    assert message == f"promo code {code!r}: exhausted: all 1 uses are taken"


def business(pipeline: Pipeline) -> str:
    """A business account whose every order waits for its manager."""
    account_id = f"promo-{pipeline.run_id}-{uuid.uuid4().hex[:4]}"
    pipeline.publish_reference(
        ACCOUNTS,
        Account.new(
            account_id=account_id,
            name=account_id,
            channel=Channel.B2B,
            payment_terms=["NET30"],
            members=[Member(member_id=f"{account_id}-boss", name="Boss", roles=[Role.MANAGER])],
        ),
    )
    pipeline.publish_reference(
        APPROVAL_POLICIES,
        ApprovalPolicy.new(
            account_id=account_id,
            version=1,
            rules=[
                {
                    "rule_id": "all",
                    "version": 1,
                    "when": {},
                    "steps": [{"step_id": "manager", "role": "manager", "quorum": 1}],
                }
            ],
        ),
    )
    return account_id


def order_for(pipeline: Pipeline, account_id: str, code: str, label: str) -> str:
    order = b2b_order(pipeline.order_id(label), [("DRILL-18V", 1)], account_id=account_id)
    order = order.model_copy(update={"promo_codes": [code]})
    pipeline.publisher.publish(ORDERS_SUBMITTED, order)
    pipeline.publisher.flush()
    return order.order_id


def test_a_cancelled_order_gives_its_use_back(pipeline: Pipeline) -> None:
    """A business promotion (its channels name b2b) with one use: held by a waiting order,
    refused to the next, given back when the first is cancelled, then used again."""
    account_id = business(pipeline)
    code = a_code(pipeline, "b2b", max_uses_total=1, channels=[Channel.B2B])
    first = order_for(pipeline, account_id, code, "first")
    waiting: OrderStatusChanged = pipeline.watch.wait_for_status(
        first, OrderState.AWAITING_APPROVAL
    )
    assert waiting.totals is not None and waiting.totals.discount == Decimal("5")
    second = order_for(pipeline, account_id, code, "second")
    assert "exhausted" in rejected_because(pipeline, second)
    pipeline.publisher.publish(
        ORDERS_CANCELLED, OrderCancelled.new(order_id=first, account_id=account_id)
    )
    pipeline.publisher.flush()
    pipeline.watch.wait_for_status(first, OrderState.CANCELLED)
    third = first_not_refused(pipeline, account_id, code)
    assert third.totals is not None and third.totals.total == Decimal("124.00")


def decided(pipeline: Pipeline, order_id: str) -> OrderStatusChanged | None:
    """The order's first status after pricing: waiting for approval, or rejected."""
    after_pricing = (OrderState.AWAITING_APPROVAL, OrderState.REJECTED)
    return next((s for s in pipeline.watch.statuses[order_id] if s.status in after_pricing), None)


def first_not_refused(pipeline: Pipeline, account_id: str, code: str) -> OrderStatusChanged:
    """Pricing reads `orders.status` and new orders on two topics: an order may overtake the
    cancellation. Each attempt waits for the order's outcome; a few attempts at most."""
    for attempt in range(5):
        order_id = order_for(pipeline, account_id, code, f"again{attempt}")
        outcome = pipeline.watch.wait_until(
            f"{order_id} priced or refused", functools.partial(decided, pipeline, order_id)
        )
        if outcome.status is OrderState.AWAITING_APPROVAL:
            return outcome
    raise AssertionError("the use was never given back")
