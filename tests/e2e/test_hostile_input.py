"""What a hostile or careless shop publishes never stops, stalls or fools the services.

Each case is a message a shop can put on the public topics of a running system
(issue 9): an oversized message, deeply nested JSON, another account's order
id, a corrected resubmission of a rejected order, and other content under a
live order id; and on the reference and payment topics pricing reads (`accounts`,
`pricing.quotes`, `pricing.promotions`, `payments.received`), nested, wrongly typed or
oversized messages and another account's order or quote. After each, a good order still goes
through.
"""

from __future__ import annotations

import hashlib
import uuid
from decimal import Decimal

from shared.contract import Channel, DeadLetter, OrderCancelled, OrderState, ReasonCode
from shared.topics import (
    ACCOUNTS,
    ORDERS_CANCELLED,
    ORDERS_SUBMITTED,
    PAYMENTS_RECEIVED,
    PROMOTIONS,
    QUOTES,
)
from tests.e2e.conftest import Pipeline
from tests.e2e.pricing_support import BusinessCustomer, publish_code
from tools.seed import ACME, GLOBEX, b2b_order, b2c_order


def dead_letter_mentioning(pipeline: Pipeline, topic: str, text: str) -> DeadLetter:
    return pipeline.watch.wait_until(
        f"a dead letter on {topic} mentioning {text!r}",
        lambda: next((d for d in pipeline.watch.dead_letters[topic] if text in d.error), None),
    )


def a_good_order_still_goes_through(pipeline: Pipeline) -> None:
    good = b2c_order(pipeline.order_id("good"), [("SCREW-5X50", 1)])
    pipeline.publisher.publish(ORDERS_SUBMITTED, good)
    pipeline.watch.wait_for_status(good.order_id, OrderState.FULFILLMENT_PLANNED)


def test_a_900_kb_message_is_dead_lettered_in_bounded_form_and_the_pipeline_goes_on(
    pipeline: Pipeline,
) -> None:
    order_id = pipeline.order_id("huge")
    huge = f'{{"order_id": "{order_id}", "padding": "{"x" * 900_000}"}}'.encode()
    pipeline.publisher.send_raw(pipeline.names.of(ORDERS_SUBMITTED), b"cust-anna", huge)
    a_good_order_still_goes_through(pipeline)
    letter = dead_letter_mentioning(pipeline, "orders.submitted.dlq", "262144-byte limit")
    assert letter.truncated and letter.original_size == len(huge)
    assert letter.original_sha256 == hashlib.sha256(huge).hexdigest()
    assert len(letter.to_bytes()) < 200_000


def test_100000_nested_brackets_are_dead_lettered_and_the_pipeline_goes_on(
    pipeline: Pipeline,
) -> None:
    nested = b"[" * 100_000
    pipeline.publisher.send_raw(pipeline.names.of(ORDERS_SUBMITTED), b"cust-anna", nested)
    a_good_order_still_goes_through(pipeline)
    letter = pipeline.watch.wait_until(
        "the nested message's dead letter",
        lambda: next(
            (
                d
                for d in pipeline.watch.dead_letters["orders.submitted.dlq"]
                if d.original_sha256 == hashlib.sha256(nested).hexdigest()
            ),
            None,
        ),
    )
    assert letter.original_size == 100_000


def test_another_account_cannot_cancel_my_order_or_swallow_it_by_cancelling_first(
    pipeline: Pipeline,
) -> None:
    early = b2b_order(pipeline.order_id("mine-early"), [("BOLT-M8-100", 40)])
    pipeline.publisher.publish(
        ORDERS_CANCELLED,
        OrderCancelled.new(order_id=early.order_id, account_id=GLOBEX, reason="not yours"),
    )
    mine = b2b_order(pipeline.order_id("mine"), [("BOLT-M8-100", 40)])
    pipeline.publisher.publish(ORDERS_SUBMITTED, mine)
    pipeline.watch.wait_for_status(mine.order_id, OrderState.RECEIVED)
    pipeline.publisher.publish(
        ORDERS_CANCELLED,
        OrderCancelled.new(order_id=mine.order_id, account_id=GLOBEX, reason="not yours"),
    )
    letter = dead_letter_mentioning(pipeline, "orders.cancelled.dlq", mine.order_id)
    assert letter.error.startswith("foreign_order:")

    pipeline.publisher.publish(ORDERS_SUBMITTED, early)
    pipeline.watch.wait_for_status(early.order_id, OrderState.FULFILLMENT_PLANNED)
    pipeline.watch.wait_for_status(mine.order_id, OrderState.FULFILLMENT_PLANNED)
    assert "cancelled" not in pipeline.watch.history(mine.order_id)
    assert pipeline.watch.history(early.order_id) == [
        "received",
        "approved",
        "fulfillment_planned",
    ]


def test_an_order_rejected_invalid_then_resubmitted_corrected_is_refused_not_left_hanging(
    pipeline: Pipeline,
) -> None:
    order_id = pipeline.order_id("fixme")
    pipeline.publisher.send_raw(
        pipeline.names.of(ORDERS_SUBMITTED),
        ACME.encode(),
        f'{{"schema": "orders.submitted/v1", "order_id": "{order_id}", '
        f'"account_id": "{ACME}", "lines": []}}'.encode(),
    )
    first = pipeline.watch.wait_for_status(order_id, OrderState.REJECTED)
    assert first.reason is not None and first.reason.code is ReasonCode.INVALID_EVENT

    pipeline.publisher.publish(ORDERS_SUBMITTED, b2b_order(order_id, [("BOLT-M8-100", 40)]))
    again = pipeline.watch.wait_until(
        "a second rejection",
        lambda: (
            pipeline.watch.statuses[order_id][1]
            if len(pipeline.watch.statuses[order_id]) > 1
            else None
        ),
    )
    assert again.status is OrderState.REJECTED
    assert again.reason is not None and again.reason.code is ReasonCode.DUPLICATE_ORDER_ID
    assert "new order_id" in again.reason.message
    a_good_order_still_goes_through(pipeline)
    assert pipeline.watch.history(order_id) == ["rejected", "rejected"]


def test_other_content_under_a_live_order_id_is_refused_and_a_true_retry_changes_nothing(
    pipeline: Pipeline,
) -> None:
    order = b2c_order(pipeline.order_id("live"), [("GLOVE-L", 2)])
    pipeline.publisher.publish(ORDERS_SUBMITTED, order)
    pipeline.watch.wait_for_status(order.order_id, OrderState.FULFILLMENT_PLANNED)
    retry = order.model_copy(update={"event_id": uuid.uuid4()})
    other = b2c_order(order.order_id, [("GLOVE-L", 200)])
    pipeline.publisher.publish(ORDERS_SUBMITTED, retry)
    pipeline.publisher.publish(ORDERS_SUBMITTED, other)

    letter = dead_letter_mentioning(pipeline, "orders.submitted.dlq", order.order_id)
    assert letter.error.startswith("duplicate_order_id:")
    a_good_order_still_goes_through(pipeline)
    assert pipeline.watch.history(order.order_id) == ["received", "approved", "fulfillment_planned"]
    [planned] = [
        s
        for s in pipeline.watch.statuses[order.order_id]
        if s.status is OrderState.FULFILLMENT_PLANNED
    ]
    assert [line.quantity for s in planned.shipments or [] for line in s.lines] == [2]


def test_pricing_dead_letters_hostile_reference_data_and_payments_and_goes_on(
    pipeline: Pipeline,
) -> None:
    """Nested brackets on every topic pricing reads beside orders, a payment too large, one
    with a number for its amount, one from another account, an order naming another account's
    quote: each dead-lettered by pricing or rejected, and then pricing still takes a new
    account, quote, promotion and payment."""
    customer = BusinessCustomer(pipeline, "hostile", Decimal("5000.00"))
    mine = customer.order("mine", 1)
    pipeline.watch.wait_for_status(mine, OrderState.APPROVED)
    customer.wait_for_exposure("129.00")

    key = customer.account_id.encode()
    nested = b"[" * 100_000
    for spec in (ACCOUNTS, QUOTES, PROMOTIONS, PAYMENTS_RECEIVED):
        pipeline.publisher.send_raw(pipeline.names.of(spec), key, nested)
    huge = b'{"payment_id": "' + b"x" * 20_000 + b'"}'
    pipeline.publisher.send_raw(pipeline.names.of(PAYMENTS_RECEIVED), key, huge)
    number = (
        f'{{"schema": "payments.received/v1", "event_id": "{uuid.uuid4()}", '
        f'"occurred_at": "2026-12-01T00:00:00Z", "payment_id": "pay-number", '
        f'"account_id": "{customer.account_id}", "order_id": "{mine}", "amount": 129, '
        f'"currency": "EUR", "received_at": "2026-12-01T00:00:00Z"}}'
    ).encode()
    pipeline.publisher.send_raw(pipeline.names.of(PAYMENTS_RECEIVED), key, number)
    stranger = BusinessCustomer(pipeline, "stranger")
    stranger.pay(mine, Decimal("129.00"))
    quote_id = customer.publish_quote()
    theirs = stranger.order("theirs", 1, quote_id=quote_id)
    refused = pipeline.watch.wait_for_status(theirs, OrderState.REJECTED)
    payments = "payments.received.dlq"
    assert refused.reason is not None and refused.reason.code is ReasonCode.UNKNOWN_QUOTE

    for topic in ("accounts.dlq", "pricing.quotes.dlq", "pricing.promotions.dlq", payments):
        assert pricings_letter_of(pipeline, topic, nested).original_size == 100_000
    assert "16384-byte limit" in pricings_letter_of(pipeline, payments, huge).error
    assert "not a JSON number" in dead_letter_mentioning(pipeline, payments, "amount").error
    dead_letter_mentioning(pipeline, payments, "another_account")
    assert len(pipeline.watch.dead_letters[payments]) == 4
    assert customer.credit()["exposure"] == "129.00"

    customer.pay(mine, Decimal("129.00"))
    customer.wait_for_exposure("0.00")
    quoted = pipeline.watch.wait_for_status(
        customer.order("quoted", 2, quote_id=quote_id), OrderState.APPROVED
    )
    assert quoted.totals is not None and quoted.totals.total == Decimal("178.00")
    code = publish_code(pipeline, "after", channels=[Channel.B2B])
    coded = pipeline.watch.wait_for_status(
        customer.order("coded", 1, promo_codes=[code]), OrderState.APPROVED
    )
    assert coded.totals is not None and coded.totals.total == Decimal("124.00")


def pricings_letter_of(pipeline: Pipeline, topic: str, body: bytes) -> DeadLetter:
    """Pricing's dead letter of the message `body` on `topic`."""
    sha256 = hashlib.sha256(body).hexdigest()
    return pipeline.watch.wait_until(
        f"pricing's dead letter of a {len(body)}-byte message on {topic}",
        lambda: next(
            (
                d
                for d in pipeline.watch.dead_letters[topic]
                if d.service == "pricing" and d.original_sha256 == sha256
            ),
            None,
        ),
    )
