"""What a hostile or careless shop publishes never stops, stalls or fools the services.

Each case is a message a shop can put on the public topics of a running system
(issue 9): an oversized message, deeply nested JSON, another account's order
id, a corrected resubmission of a rejected order, and other content under a
live order id. After each, a good order still goes through.
"""

from __future__ import annotations

import hashlib
import uuid

from shared.contract import DeadLetter, OrderCancelled, OrderState, ReasonCode
from shared.topics import ORDERS_CANCELLED, ORDERS_SUBMITTED
from tests.e2e.conftest import Pipeline
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
