"""Credit limits end to end over real Kafka: reject, finance override, payments, cancellation, race.

Each test publishes its own B2B account with a credit line (as CRM would), then
acts as a shop (orders, cancellations), an approver (decisions), finance's ERP
(`payments.received`) and ops (`GET /accounts/{id}/credit` on pricing,
`/metrics`). Orders are ten drills at the list price, 1290.00 EUR; waits are
conditions on what the system publishes or answers.
"""

from __future__ import annotations

from decimal import Decimal

from shared.contract import CreditPolicy, OrderState, ReasonCode
from tests.e2e.conftest import Pipeline
from tests.e2e.pricing_support import TEN_DRILLS, BusinessCustomer, finance_step, manager_step


def test_an_order_over_the_limit_is_rejected_saying_why(pipeline: Pipeline) -> None:
    customer = BusinessCustomer(pipeline, "crej", Decimal("1000.00"), CreditPolicy.REJECT)
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
    customer = BusinessCustomer(pipeline, "cfin", Decimal("1000.00"), CreditPolicy.FINANCE_APPROVAL)
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
    customer = BusinessCustomer(pipeline, "cpay", TEN_DRILLS, CreditPolicy.REJECT)
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
    customer = BusinessCustomer(pipeline, "ccan", TEN_DRILLS, CreditPolicy.REJECT)
    customer.publish_policy(rules=[manager_step()])
    first = customer.order("first")
    pipeline.watch.wait_for_status(first, OrderState.AWAITING_APPROVAL)
    assert customer.wait_for_exposure("1290.00")["available"] == "0.00"
    customer.cancel(first)
    pipeline.watch.wait_for_status(first, OrderState.CANCELLED)
    assert customer.wait_for_exposure("0.00")["open_items"] == []
    second = customer.order("second")
    pipeline.watch.wait_for_status(second, OrderState.AWAITING_APPROVAL)


def test_two_orders_in_quick_succession_at_the_limit_exactly_one_fits(
    pipeline: Pipeline,
) -> None:
    customer = BusinessCustomer(pipeline, "crace", TEN_DRILLS, CreditPolicy.REJECT)
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
