"""Pricing's features together, end to end over real Kafka: a quote against a credit line, a
promo code paid in instalments, and a contract promotion over the credit limit that finance
approves or rejects.

Each feature has its own module (`test_credit`, `test_quotes`, `test_promotions`,
`test_payment_plans`); here they meet in one order, where one feature's amount is another's
input (the quoted or discounted total is what credit and the plan see) and one fate moves
every hold the order took (credit, the quote, the promotion's use).
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from shared.contract import (
    Channel,
    CreditPolicy,
    OrderState,
    PromotionKind,
    ReasonCode,
)
from shared.topics import ORDERS_SUBMITTED
from tests.e2e.conftest import Pipeline
from tests.e2e.pricing_support import (
    DRILL,
    BusinessCustomer,
    after_pricing,
    finance_step,
    publish_code,
)
from tools.seed import b2c_order


def test_the_quoted_total_counts_against_credit_and_a_rejected_order_never_takes_its_quote(
    pipeline: Pipeline,
) -> None:
    """Ten drills list at 1290.00 EUR, over the 1000.00 limit; quoted at 89.00 they are 890.00
    and fit. Two more quoted drills (178.00) would not: rejected before the quote is taken, so
    the quote is still free for the order placed once the first is paid."""
    customer = BusinessCustomer(pipeline, "cq", Decimal("1000.00"), CreditPolicy.REJECT)
    ten = customer.publish_quote("QA")
    two = customer.publish_quote("QB", lines=[{"sku": DRILL, "quantity": 2, "unit_price": "89.00"}])

    first = customer.order("first", 10, quote_id=ten)
    approved = pipeline.watch.wait_for_status(first, OrderState.APPROVED)
    assert approved.totals is not None and approved.totals.total == Decimal("890.00")
    credit = customer.wait_for_exposure("890.00")
    assert [(i["order_id"], i["amount"]) for i in credit["open_items"]] == [(first, "890.00")]

    second = customer.order("second", 2, quote_id=two)
    rejected = pipeline.watch.wait_for_status(second, OrderState.REJECTED)
    assert rejected.reason is not None
    assert rejected.reason.code is ReasonCode.CREDIT_LIMIT_EXCEEDED
    assert "order total 178.00 EUR" in rejected.reason.message
    assert "from 890.00 EUR to 1068.00 EUR" in rejected.reason.message

    customer.pay(first, Decimal("890.00"))
    customer.wait_for_exposure("0.00")
    third = customer.order("third", 2, quote_id=two)
    pipeline.watch.wait_for_status(third, OrderState.APPROVED)
    [used] = customer.wait_for_quote_events(two, "used")
    assert used.order_id == third
    assert [e.order_id for e in customer.wait_for_quote_events(ten, "used")] == [first]


def test_a_quoted_order_finance_rejects_releases_its_quote_for_a_later_order(
    pipeline: Pipeline,
) -> None:
    """Over a 500.00 limit with finance approval: the quoted order (890.00, not 1290.00) waits
    for finance holding the quote; finance's veto releases both, and the next order takes the
    quote again."""
    customer = BusinessCustomer(
        pipeline, "cqf", Decimal("500.00"), CreditPolicy.FINANCE_APPROVAL, rules=[finance_step()]
    )
    quote_id = customer.publish_quote()
    first = customer.order("first", 10, quote_id=quote_id)
    waiting = pipeline.watch.wait_for_status(first, OrderState.AWAITING_APPROVAL)
    assert waiting.approval is not None
    assert waiting.approval.eligible_approvers == [customer.id("cfo")]
    assert customer.wait_for_exposure("890.00")["available"] == "-390.00"
    customer.wait_for_quote_events(quote_id, "used")

    pipeline.decide(first, customer.id("cfo"), "reject")
    rejected = pipeline.watch.wait_for_status(first, OrderState.REJECTED)
    assert rejected.reason is not None and rejected.reason.code is ReasonCode.APPROVAL_REJECTED
    released = customer.wait_for_quote_events(quote_id, "used", "released")[1]
    assert (released.order_id, released.version) == (first, 2)
    assert customer.wait_for_exposure("0.00")["open_items"] == []

    later = customer.order("later", 10, quote_id=quote_id)
    assert after_pricing(pipeline, later).status is OrderState.AWAITING_APPROVAL
    events = customer.wait_for_quote_events(quote_id, "used", "released", "used")
    assert [e.order_id for e in events] == [first, first, later]


def test_a_promo_code_in_six_instalments_sums_exactly_to_the_discounted_total(
    pipeline: Pipeline,
) -> None:
    """A drill and gloves (133.99 EUR) with WELCOME10 (13.40 off) make 120.59 EUR: six
    instalments of 20.09 leave 0.05, which the first takes."""
    order = b2c_order(
        pipeline.order_id("6x"),
        [(DRILL, 1), ("GLOVE-L", 1)],
        account_id=f"cust-{pipeline.run_id}-{uuid.uuid4().hex[:4]}",
        installments=6,
        promo_codes=["WELCOME10"],
    )
    pipeline.publisher.publish(ORDERS_SUBMITTED, order)
    pipeline.publisher.flush()
    approved = pipeline.watch.wait_for_status(order.order_id, OrderState.APPROVED)
    assert approved.totals is not None and approved.payment is not None
    assert (approved.totals.subtotal, approved.totals.discount, approved.totals.total) == (
        Decimal("133.99"),
        Decimal("13.40"),
        Decimal("120.59"),
    )
    plan = approved.payment
    assert (plan.method, plan.installments) == ("installments", 6)
    assert [due.amount for due in plan.schedule] == [Decimal("20.14")] + [Decimal("20.09")] * 5
    assert sum(due.amount for due in plan.schedule) == approved.totals.total
    assert {due.currency for due in plan.schedule} == {"EUR"}


def contract_promotion_over_the_limit(pipeline: Pipeline) -> tuple[BusinessCustomer, str, str]:
    """A business account (limit 1000.00, finance approval over it) whose contract allows a
    one-use 10 % promotion: ten drills with its code are 1161.00 EUR, held for finance.
    Returns the customer, the code and the waiting order."""
    customer = BusinessCustomer(
        pipeline, "cpf", Decimal("1000.00"), CreditPolicy.FINANCE_APPROVAL, rules=[finance_step()]
    )
    code = publish_code(
        pipeline,
        "contract",
        kind=PromotionKind.PERCENTAGE,
        percent=Decimal(10),
        amount=None,
        channels=[Channel.B2B],
        max_uses_total=1,
    )
    order_id = customer.order("over", 10, promo_codes=[code])
    waiting = pipeline.watch.wait_for_status(order_id, OrderState.AWAITING_APPROVAL)
    assert waiting.totals is not None
    assert (waiting.totals.discount, waiting.totals.total) == (
        Decimal("129.00"),
        Decimal("1161.00"),
    )
    assert waiting.approval is not None
    assert waiting.approval.rules[0].why == "pricing flagged a credit-limit override"
    assert waiting.approval.eligible_approvers == [customer.id("cfo")]
    assert customer.wait_for_exposure("1161.00")["open_items"][0]["state"] == "held"
    return customer, code, order_id


def test_a_contract_promotion_over_the_limit_finance_approves_commits_use_and_exposure(
    pipeline: Pipeline,
) -> None:
    customer, code, order_id = contract_promotion_over_the_limit(pipeline)
    pipeline.decide(order_id, customer.id("cfo"))
    planned = pipeline.watch.wait_for_status(order_id, OrderState.FULFILLMENT_PLANNED)
    assert planned.totals is not None and planned.totals.total == Decimal("1161.00")
    credit = customer.wait_for_credit(
        "the order committed", lambda c: [i["state"] for i in c["open_items"]] == ["committed"]
    )
    assert credit["exposure"] == "1161.00" and credit["available"] == "-161.00"
    assert credit["open_items"][0]["order_id"] == order_id

    again = customer.order("again", 1, promo_codes=[code])
    rejected = pipeline.watch.wait_for_status(again, OrderState.REJECTED)
    assert rejected.reason is not None
    assert rejected.reason.code is ReasonCode.INVALID_PROMO_CODE
    assert rejected.reason.message == f"promo code {code!r}: exhausted: all 1 uses are taken"


def test_a_contract_promotion_over_the_limit_finance_rejects_gives_use_and_exposure_back(
    pipeline: Pipeline,
) -> None:
    customer, code, order_id = contract_promotion_over_the_limit(pipeline)
    pipeline.decide(order_id, customer.id("cfo"), "reject")
    rejected = pipeline.watch.wait_for_status(order_id, OrderState.REJECTED)
    assert rejected.reason is not None and rejected.reason.code is ReasonCode.APPROVAL_REJECTED
    # One transaction releases every hold of the order: exposure back means the use is too.
    assert customer.wait_for_exposure("0.00")["open_items"] == []

    again = customer.order("again", 1, promo_codes=[code])
    priced = after_pricing(pipeline, again)
    assert priced.status is OrderState.APPROVED
    assert priced.totals is not None
    assert (priced.totals.discount, priced.totals.total) == (Decimal("12.90"), Decimal("116.10"))
