"""Negotiated quotes end to end over real Kafka: a quoted order approved at the quote's prices,
an expired quote (rejected, and `expired` announced), and two orders racing for one single-use
quote — exactly one takes it (and waits for its manager), and its cancellation releases the
quote for a third order.

Each test publishes its own business account and quote (as the CRM would), acts as a shop and
reads `pricing.quote_events` as the CRM does; waits are conditions on what the system publishes.
"""

from __future__ import annotations

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
    Quote,
    QuoteEvent,
    ReasonCode,
    Role,
)
from shared.topics import ACCOUNTS, APPROVAL_POLICIES, ORDERS_CANCELLED, ORDERS_SUBMITTED, QUOTES
from tests.e2e.conftest import Pipeline
from tools.seed import b2b_order

DRILL = "DRILL-18V"
"""129.00 EUR list price, in stock at dc-kassel; quoted at 89.00 EUR here."""


class QuoteCustomer:
    """One test's business account (approved automatically) and its quote."""

    def __init__(
        self, pipeline: Pipeline, label: str, *, manager_approves: bool = False, **quote: Any
    ) -> None:
        self.pipeline = pipeline
        self.account_id = f"{label}-{pipeline.run_id}-{uuid.uuid4().hex[:4]}"
        self.quote_id = f"Q-{self.account_id}"
        pipeline.publish_reference(
            ACCOUNTS,
            Account.new(
                account_id=self.account_id,
                name=f"{self.account_id} GmbH",
                channel=Channel.B2B,
                payment_terms=["NET30"],
                members=[
                    Member(member_id=f"{self.account_id}-buyer", name="Buyer", roles=[Role.BUYER]),
                    Member(member_id=f"{self.account_id}-boss", name="Boss", roles=[Role.MANAGER]),
                ],
            ),
        )
        if manager_approves:  # every order waits for the manager: it stays cancellable
            pipeline.publish_reference(
                APPROVAL_POLICIES,
                ApprovalPolicy.new(
                    account_id=self.account_id,
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
        now = datetime.now(UTC).replace(microsecond=0)
        fields: dict[str, Any] = {
            "quote_id": self.quote_id,
            "account_id": self.account_id,
            "version": 2,
            "currency": "EUR",
            "lines": [{"sku": DRILL, "quantity": 10, "unit_price": "89.00"}],
            "issued_at": now - timedelta(days=1),
            "valid_until": now + timedelta(days=30),
            "use": "single",
            **quote,
        }
        pipeline.publish_reference(QUOTES, Quote.new(**fields))

    def order(self, label: str, drills: int = 3) -> str:
        order = b2b_order(
            self.pipeline.order_id(label),
            [(DRILL, drills)],
            account_id=self.account_id,
            buyer_id=f"{self.account_id}-buyer",
            quote_id=self.quote_id,
        )
        self.pipeline.publisher.publish(ORDERS_SUBMITTED, order)
        self.pipeline.publisher.flush()
        return order.order_id

    def wait_for_quote_events(self, *kinds: str) -> list[QuoteEvent]:
        """The CRM's view: wait until the quote's lifecycle is `kinds`, in order."""
        events = self.pipeline.watch.quote_events[self.quote_id]
        self.pipeline.watch.wait_until(
            f"quote {self.quote_id} to be {' → '.join(kinds)}",
            lambda: [e.kind.value for e in events] == list(kinds),
        )
        return list(events)


def test_a_quoted_order_is_approved_at_the_quotes_prices_and_the_quote_is_used(
    pipeline: Pipeline,
) -> None:
    customer = QuoteCustomer(pipeline, "qok")
    order_id = customer.order("quoted")
    approved = pipeline.watch.wait_for_status(order_id, OrderState.APPROVED)
    assert approved.lines is not None
    [line] = approved.lines
    assert (line.unit_price, line.line_total) == (Decimal("89.00"), Decimal("267.00"))
    assert line.price_source == f"quote:{customer.quote_id} v2"
    [used] = customer.wait_for_quote_events("used")
    assert (used.order_id, used.version, used.account_id) == (order_id, 2, customer.account_id)


def test_an_expired_quote_rejects_the_order_and_is_announced_expired(pipeline: Pipeline) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    ended = now - timedelta(hours=1)
    customer = QuoteCustomer(pipeline, "qexp", issued_at=now - timedelta(days=5), valid_until=ended)
    [expired] = customer.wait_for_quote_events("expired")
    assert expired.version == 2 and expired.order_id is None
    order_id = customer.order("late")
    rejected = pipeline.watch.wait_for_status(order_id, OrderState.REJECTED)
    assert rejected.reason is not None and rejected.reason.code is ReasonCode.QUOTE_EXPIRED
    assert ended.isoformat() in rejected.reason.message


def test_two_orders_racing_for_a_single_use_quote_one_takes_it_and_its_cancellation_frees_it(
    pipeline: Pipeline,
) -> None:
    customer = QuoteCustomer(pipeline, "qrace", manager_approves=True)
    one, two = customer.order("one"), customer.order("two")
    fates = {
        order_id: pipeline.watch.wait_until(
            f"{order_id} awaiting approval or rejected",
            lambda order_id=order_id: next(
                (
                    s
                    for s in pipeline.watch.statuses[order_id]
                    if s.status in (OrderState.AWAITING_APPROVAL, OrderState.REJECTED)
                ),
                None,
            ),
        )
        for order_id in (one, two)
    }
    winners = [o for o, s in fates.items() if s.status is OrderState.AWAITING_APPROVAL]
    losers = [s for s in fates.values() if s.status is OrderState.REJECTED]
    assert len(winners) == 1 and len(losers) == 1
    assert losers[0].reason is not None
    assert losers[0].reason.code is ReasonCode.QUOTE_ALREADY_USED
    [used] = customer.wait_for_quote_events("used")
    assert used.order_id == winners[0]

    pipeline.publisher.publish(
        ORDERS_CANCELLED,
        OrderCancelled.new(order_id=winners[0], account_id=customer.account_id),
    )
    pipeline.publisher.flush()
    pipeline.watch.wait_for_status(winners[0], OrderState.CANCELLED)
    released = customer.wait_for_quote_events("used", "released")[1]
    assert (released.order_id, released.version) == (winners[0], 2)
    third = customer.order("third")
    pipeline.watch.wait_for_status(third, OrderState.AWAITING_APPROVAL)
    customer.wait_for_quote_events("used", "released", "used")
