"""Promotions and promo codes end to end over real Kafka: applied, refused, given back.

The seed's WELCOME10 (10 % off a consumer order from 50 EUR, once per
customer) and each test's own promotions, published as ERP would. A consumer
order of one DRILL-18V (129.00 EUR) is approved automatically; a business
account with a manager step waits for approval, so it can be cancelled.
Waits are conditions on what the system publishes.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from shared.contract import Channel, OrderState, OrderStatusChanged, ReasonCode
from shared.topics import ORDERS_SUBMITTED
from tests.e2e.conftest import Pipeline
from tests.e2e.pricing_support import BusinessCustomer, after_pricing, manager_step, publish_code
from tools.seed import b2c_order

NOW = datetime.now(UTC)


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
    code = publish_code(
        pipeline, "old", valid_from=NOW - timedelta(days=9), valid_until=NOW - timedelta(days=2)
    )
    message = rejected_because(pipeline, shop(pipeline, "expired", code))
    assert message.startswith(f"promo code {code!r}: expired: valid until")
    assert 'tradelane_promo_code_rejections_total{reason="expired"}' in pipeline.metrics("pricing")


def test_an_exhausted_code_is_rejected_after_its_last_use(pipeline: Pipeline) -> None:
    code = publish_code(pipeline, "once", max_uses_total=1)
    first = shop(pipeline, "first", code)
    pipeline.watch.wait_for_status(first, OrderState.APPROVED)
    message = rejected_because(pipeline, shop(pipeline, "second", code))
    assert message == f"promo code {code!r}: exhausted: all 1 uses are taken"


def test_a_cancelled_order_gives_its_use_back(pipeline: Pipeline) -> None:
    """A business promotion (its channels name b2b) with one use: held by a waiting order,
    refused to the next, given back when the first is cancelled, then used again."""
    customer = BusinessCustomer(pipeline, "promo", rules=[manager_step()])
    code = publish_code(pipeline, "b2b", max_uses_total=1, channels=[Channel.B2B])
    first = customer.order("first", 1, promo_codes=[code])
    waiting: OrderStatusChanged = pipeline.watch.wait_for_status(
        first, OrderState.AWAITING_APPROVAL
    )
    assert waiting.totals is not None and waiting.totals.discount == Decimal("5")
    second = customer.order("second", 1, promo_codes=[code])
    assert "exhausted" in rejected_because(pipeline, second)
    customer.cancel(first)
    pipeline.watch.wait_for_status(first, OrderState.CANCELLED)
    third = first_not_refused(customer, code)
    assert third.totals is not None and third.totals.total == Decimal("124.00")


def first_not_refused(customer: BusinessCustomer, code: str) -> OrderStatusChanged:
    """Pricing reads cancellations (`orders.status.holds`) and new orders on two topics: an
    order may overtake the cancellation. Each attempt waits for the order's outcome; a few
    attempts at most."""
    for attempt in range(5):
        order_id = customer.order(f"again{attempt}", 1, promo_codes=[code])
        outcome = after_pricing(customer.pipeline, order_id)
        if outcome.status is OrderState.AWAITING_APPROVAL:
            return outcome
    raise AssertionError("the use was never given back")
