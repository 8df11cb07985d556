"""Negotiated quotes end to end over real Kafka: a quoted order approved at the quote's prices,
an expired quote (rejected, and `expired` announced), and two orders racing for one single-use
quote — exactly one takes it (and waits for its manager), and its cancellation releases the
quote for a third order.

Each test publishes its own business account and quote (as the CRM would), acts as a shop and
reads `pricing.quote_events` as the CRM does; waits are conditions on what the system publishes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from shared.contract import OrderState, QuoteEvent, ReasonCode
from tests.e2e.conftest import Pipeline
from tests.e2e.pricing_support import BusinessCustomer, after_pricing, manager_step


class QuoteCustomer(BusinessCustomer):
    """One test's business account (approved automatically, or by its manager) and its quote."""

    def __init__(
        self, pipeline: Pipeline, label: str, *, manager_approves: bool = False, **quote: Any
    ) -> None:
        super().__init__(pipeline, label, rules=[manager_step()] if manager_approves else [])
        self.quote_id = self.publish_quote(**quote)

    def quoted(self, label: str, drills: int = 3) -> str:
        return self.order(label, drills, quote_id=self.quote_id)

    def lifecycle(self, *kinds: str) -> list[QuoteEvent]:
        return self.wait_for_quote_events(self.quote_id, *kinds)


def test_a_quoted_order_is_approved_at_the_quotes_prices_and_the_quote_is_used(
    pipeline: Pipeline,
) -> None:
    customer = QuoteCustomer(pipeline, "qok")
    order_id = customer.quoted("quoted")
    approved = pipeline.watch.wait_for_status(order_id, OrderState.APPROVED)
    assert approved.lines is not None
    [line] = approved.lines
    assert (line.unit_price, line.line_total) == (Decimal("89.00"), Decimal("267.00"))
    assert line.price_source == f"quote:{customer.quote_id} v2"
    [used] = customer.lifecycle("used")
    assert (used.order_id, used.version, used.account_id) == (order_id, 2, customer.account_id)


def test_an_expired_quote_rejects_the_order_and_is_announced_expired(pipeline: Pipeline) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    ended = now - timedelta(hours=1)
    customer = QuoteCustomer(pipeline, "qexp", issued_at=now - timedelta(days=5), valid_until=ended)
    [expired] = customer.lifecycle("expired")
    assert expired.version == 2 and expired.order_id is None
    order_id = customer.quoted("late")
    rejected = pipeline.watch.wait_for_status(order_id, OrderState.REJECTED)
    assert rejected.reason is not None and rejected.reason.code is ReasonCode.QUOTE_EXPIRED
    assert ended.isoformat() in rejected.reason.message


def test_two_orders_racing_for_a_single_use_quote_one_takes_it_and_its_cancellation_frees_it(
    pipeline: Pipeline,
) -> None:
    customer = QuoteCustomer(pipeline, "qrace", manager_approves=True)
    one, two = customer.quoted("one"), customer.quoted("two")
    fates = {order_id: after_pricing(pipeline, order_id) for order_id in (one, two)}
    winners = [o for o, s in fates.items() if s.status is OrderState.AWAITING_APPROVAL]
    losers = [s for s in fates.values() if s.status is OrderState.REJECTED]
    assert len(winners) == 1 and len(losers) == 1
    assert losers[0].reason is not None
    assert losers[0].reason.code is ReasonCode.QUOTE_ALREADY_USED
    [used] = customer.lifecycle("used")
    assert used.order_id == winners[0]

    customer.cancel(winners[0])
    pipeline.watch.wait_for_status(winners[0], OrderState.CANCELLED)
    released = customer.lifecycle("used", "released")[1]
    assert (released.order_id, released.version) == (winners[0], 2)
    third = customer.quoted("third")
    pipeline.watch.wait_for_status(third, OrderState.AWAITING_APPROVAL)
    customer.lifecycle("used", "released", "used")
