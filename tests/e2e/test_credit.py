"""Credit limits end to end over real Kafka: reject, finance override, payments, cancellation, race.

Each test publishes its own B2B account with a credit line (as CRM would), then
acts as a shop (orders, cancellations), an approver (decisions), finance's ERP
(`payments.received`) and ops (`GET /accounts/{id}/credit` on pricing,
`/metrics`). Orders are ten drills at the list price, 1290.00 EUR; waits are
conditions on what the system publishes or answers.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from shared.contract import (
    Account,
    ApprovalPolicy,
    Channel,
    CreditPolicy,
    CreditTerms,
    Member,
    OrderCancelled,
    OrderState,
    PaymentReceived,
    ReasonCode,
    Role,
)
from shared.topics import (
    ACCOUNTS,
    APPROVAL_POLICIES,
    ORDERS_CANCELLED,
    ORDERS_SUBMITTED,
    PAYMENTS_RECEIVED,
)
from tests.e2e.conftest import Pipeline
from tools.seed import b2b_order

DRILL = "DRILL-18V"
"""129.00 EUR list price, in stock at dc-kassel: ten make a 1290.00 EUR order."""
TEN_DRILLS = Decimal("1290.00")


class CreditCustomer:
    """One test's business account with a credit line, a buyer, a manager and finance."""

    def __init__(
        self, pipeline: Pipeline, label: str, limit: Decimal, policy: CreditPolicy
    ) -> None:
        self.pipeline = pipeline
        self.account_id = f"{label}-{pipeline.run_id}-{uuid.uuid4().hex[:4]}"
        roles = {"buyer": [Role.BUYER], "boss": [Role.MANAGER], "cfo": [Role.FINANCE]}
        pipeline.publish_reference(
            ACCOUNTS,
            Account.new(
                account_id=self.account_id,
                name=f"{self.account_id} GmbH",
                channel=Channel.B2B,
                payment_terms=["NET30"],
                members=[
                    Member(member_id=self.id(name), name=name.title(), roles=r)
                    for name, r in roles.items()
                ],
                credit=CreditTerms(limit=limit, policy=policy),
            ),
        )

    def id(self, name: str) -> str:
        return f"{self.account_id}-{name}"

    def publish_policy(self, **rules: Any) -> None:
        self.pipeline.publish_reference(
            APPROVAL_POLICIES, ApprovalPolicy.new(account_id=self.account_id, version=1, **rules)
        )

    def order(self, label: str, drills: int = 10) -> str:
        order = b2b_order(
            self.pipeline.order_id(label),
            [(DRILL, drills)],
            account_id=self.account_id,
            buyer_id=self.id("buyer"),
        )
        self.pipeline.publisher.publish(ORDERS_SUBMITTED, order)
        self.pipeline.publisher.flush()
        return order.order_id

    def pay(self, order_id: str, amount: Decimal, account_id: str | None = None) -> None:
        self.pipeline.publisher.publish(
            PAYMENTS_RECEIVED,
            PaymentReceived.new(
                payment_id=f"pay-{uuid.uuid4().hex[:10]}",
                account_id=account_id or self.account_id,
                order_id=order_id,
                amount=amount,
                currency="EUR",
                received_at=datetime.now(UTC),
            ),
        )
        self.pipeline.publisher.flush()

    def credit(self) -> dict[str, Any]:
        status, body = self.pipeline.http("pricing", "GET", f"/accounts/{self.account_id}/credit")
        assert status == 200, body
        return dict(body)

    def wait_for_exposure(self, amount: str) -> dict[str, Any]:
        """Pricing consumed the status or payment: the exposure it shows is `amount`."""
        return self.wait_for_credit(f"exposure {amount}", lambda c: c["exposure"] == amount)

    def wait_for_credit(
        self, what: str, condition: Callable[[dict[str, Any]], bool]
    ) -> dict[str, Any]:
        """Ask pricing (on every event the test sees, at least twice a second) until its
        answer satisfies `condition`."""
        return dict(
            self.pipeline.watch.wait_until(
                f"{self.account_id}'s credit: {what}",
                lambda: condition(c := self.credit()) and c,
            )
        )


def finance_step() -> dict[str, Any]:
    return {
        "rule_id": "credit",
        "version": 1,
        "when": {"credit_limit_override": True},
        "steps": [{"step_id": "finance", "role": "finance", "quorum": 1}],
    }


def manager_step() -> dict[str, Any]:
    return {
        "rule_id": "all",
        "version": 1,
        "when": {},
        "steps": [{"step_id": "manager", "role": "manager", "quorum": 1}],
    }


def test_an_order_over_the_limit_is_rejected_saying_why(pipeline: Pipeline) -> None:
    customer = CreditCustomer(pipeline, "crej", Decimal("1000.00"), CreditPolicy.REJECT)
    order_id = customer.order("over")
    rejected = pipeline.watch.wait_for_status(order_id, OrderState.REJECTED)
    assert rejected.reason is not None
    assert rejected.reason.code is ReasonCode.CREDIT_LIMIT_EXCEEDED
    assert rejected.reason.message == (
        f"order total 1290.00 EUR would take the open exposure of account "
        f"'{customer.account_id}' from 0.00 EUR to 1290.00 EUR, over its credit limit of "
        "1000.00 EUR (available 1000.00 EUR)"
    )
    assert customer.credit()["open_items"] == []


def test_over_the_limit_finance_approves_and_the_exposure_stays_open(
    pipeline: Pipeline,
) -> None:
    customer = CreditCustomer(pipeline, "cfin", Decimal("1000.00"), CreditPolicy.FINANCE_APPROVAL)
    customer.publish_policy(rules=[finance_step()])
    order_id = customer.order("over")
    waiting = pipeline.watch.wait_for_status(order_id, OrderState.AWAITING_APPROVAL)
    assert waiting.approval is not None
    assert waiting.approval.rules[0].why == "pricing flagged a credit-limit override"
    assert waiting.approval.eligible_approvers == [customer.id("cfo")]
    pipeline.decide(order_id, customer.id("cfo"))
    pipeline.watch.wait_for_status(order_id, OrderState.APPROVED)
    credit = customer.wait_for_credit(
        "the order committed", lambda c: [i["state"] for i in c["open_items"]] == ["committed"]
    )
    assert credit["exposure"] == "1290.00" and credit["available"] == "-290.00"
    assert credit["limit"] == "1000.00" and credit["open_items"][0]["order_id"] == order_id


def test_a_payment_releases_exposure_and_the_next_order_fits(pipeline: Pipeline) -> None:
    customer = CreditCustomer(pipeline, "cpay", TEN_DRILLS, CreditPolicy.REJECT)
    first = customer.order("first")
    pipeline.watch.wait_for_status(first, OrderState.APPROVED)
    second = customer.order("second", drills=1)
    rejected = pipeline.watch.wait_for_status(second, OrderState.REJECTED)
    assert rejected.reason is not None
    assert rejected.reason.code is ReasonCode.CREDIT_LIMIT_EXCEEDED

    customer.pay(first, Decimal("1000.00"))  # partial
    assert customer.wait_for_exposure("290.00")["available"] == "1000.00"
    customer.pay(first, Decimal("390.00"))  # 100.00 over: credit on account
    credit = customer.wait_for_exposure("-100.00")
    assert credit["credit_on_account"] == "100.00" and credit["available"] == "1390.00"
    third = customer.order("third")
    pipeline.watch.wait_for_status(third, OrderState.APPROVED)

    customer.pay("no-such-order", Decimal("5.00"))
    letters = pipeline.watch.dead_letters["payments.received.dlq"]
    letter = pipeline.watch.wait_until(
        "the payment for an unknown order dead-lettered",
        lambda: next((d for d in letters if "no-such-order" in d.error), None),
    )
    assert letter.error.startswith("unknown_order")


def test_a_cancelled_order_gives_its_exposure_back(pipeline: Pipeline) -> None:
    customer = CreditCustomer(pipeline, "ccan", TEN_DRILLS, CreditPolicy.REJECT)
    customer.publish_policy(rules=[manager_step()])
    first = customer.order("first")
    pipeline.watch.wait_for_status(first, OrderState.AWAITING_APPROVAL)
    assert customer.wait_for_exposure("1290.00")["available"] == "0.00"
    pipeline.publisher.publish(
        ORDERS_CANCELLED, OrderCancelled.new(order_id=first, account_id=customer.account_id)
    )
    pipeline.publisher.flush()
    pipeline.watch.wait_for_status(first, OrderState.CANCELLED)
    assert customer.wait_for_exposure("0.00")["open_items"] == []
    second = customer.order("second")
    pipeline.watch.wait_for_status(second, OrderState.AWAITING_APPROVAL)


def test_two_orders_in_quick_succession_at_the_limit_exactly_one_fits(
    pipeline: Pipeline,
) -> None:
    customer = CreditCustomer(pipeline, "crace", TEN_DRILLS, CreditPolicy.REJECT)
    orders = [customer.order("one"), customer.order("two")]
    outcomes = pipeline.watch.wait_until(
        "both orders decided", lambda: decided(outcomes_of(pipeline, orders))
    )
    assert sorted(outcomes) == [OrderState.APPROVED, OrderState.REJECTED]
    assert customer.wait_for_exposure("1290.00")["available"] == "0.00"
    text = pipeline.metrics("pricing")
    assert 'tradelane_credit_checks_total{outcome="rejected"}' in text
    assert "tradelane_credit_utilisation_ratio_bucket" in text


def decided(outcomes: list[OrderState]) -> list[OrderState] | None:
    final = {OrderState.APPROVED, OrderState.REJECTED}
    return outcomes if all(o in final for o in outcomes) else None


def outcomes_of(pipeline: Pipeline, orders: list[str]) -> list[OrderState]:
    """Each order's last status that is approved or rejected (or its latest, if neither)."""
    found = []
    for order_id in orders:
        seen = [s.status for s in pipeline.watch.statuses[order_id]]
        final = [s for s in seen if s in (OrderState.APPROVED, OrderState.REJECTED)]
        found.append(final[-1] if final else (seen[-1] if seen else OrderState.RECEIVED))
    return found
