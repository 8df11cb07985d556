"""How an order is paid, over a real broker: the plan pricing makes travels on `orders.priced`,
`orders.approved` and the order's `approved` status, whole and summing to the total."""

from __future__ import annotations

import time
from datetime import timedelta
from decimal import Decimal
from typing import TypeVar

from kafka import KafkaConsumer, TopicPartition

from shared.contract import DueKind, OrderApproved, OrderPriced, OrderState
from shared.topics import ORDERS_APPROVED, ORDERS_PRICED, ORDERS_SUBMITTED, TopicSpec
from tests.e2e.conftest import WAIT_SECONDS, Pipeline
from tools.seed import b2b_order, b2c_order

E = TypeVar("E", OrderPriced, OrderApproved)


def read_order_event(pipeline: Pipeline, spec: TopicSpec, model: type[E], order_id: str) -> E:
    """The event about `order_id` on the topic, read from the start like any consumer."""
    consumer = KafkaConsumer(
        bootstrap_servers=pipeline.fleet.bootstrap, group_id=None, enable_auto_commit=False
    )
    topic = pipeline.names.of(spec)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                for record in records:
                    event = model.model_validate_json(record.value)
                    if event.order.order_id == order_id:
                        return event
    finally:
        consumer.close()
    raise AssertionError(f"no {spec.name} event for {order_id} within {WAIT_SECONDS:.0f}s")


def test_a_business_deposit_order_carries_deposit_and_remainder_to_fulfillment(
    pipeline: Pipeline,
) -> None:
    order = b2b_order(pipeline.order_id("deposit"), [("BOLT-M8-100", 40)], terms="DEPOSIT30_NET30")
    pipeline.publisher.publish(ORDERS_SUBMITTED, order)
    approved_status = pipeline.watch.wait_for_status(order.order_id, OrderState.APPROVED)

    priced = read_order_event(pipeline, ORDERS_PRICED, OrderPriced, order.order_id)
    plan = priced.payment
    assert plan is not None and (plan.method, plan.terms) == ("invoice", "DEPOSIT30_NET30")
    deposit, remainder = plan.schedule
    total = priced.totals.total
    assert (deposit.kind, remainder.kind) == (DueKind.DEPOSIT, DueKind.REMAINDER)
    assert deposit.amount == (total * Decimal("0.30")).quantize(Decimal("0.01"))
    assert deposit.amount + remainder.amount == total
    assert {deposit.currency, remainder.currency} == {"EUR"}
    assert deposit.due_on == plan.priced_on
    assert remainder.due_on == plan.priced_on + timedelta(days=30)

    approved = read_order_event(pipeline, ORDERS_APPROVED, OrderApproved, order.order_id)
    assert approved.payment == plan
    assert approved_status.payment == plan


def test_a_consumer_order_in_three_instalments_carries_its_schedule(pipeline: Pipeline) -> None:
    order = b2c_order(pipeline.order_id("3x"), [("BOLT-M8-100", 1), ("GLOVE-L", 1)], installments=3)
    pipeline.publisher.publish(ORDERS_SUBMITTED, order)
    approved_status = pipeline.watch.wait_for_status(order.order_id, OrderState.APPROVED)

    priced = read_order_event(pipeline, ORDERS_PRICED, OrderPriced, order.order_id)
    assert priced.totals.total == Decimal("17.89")  # 12.90 + 4.99 list price
    plan = priced.payment
    assert plan is not None and (plan.method, plan.installments) == ("installments", 3)
    assert [due.amount for due in plan.schedule] == [
        Decimal("5.97"),
        Decimal("5.96"),
        Decimal("5.96"),
    ]
    assert plan.schedule[0].due_on == plan.priced_on

    approved = read_order_event(pipeline, ORDERS_APPROVED, OrderApproved, order.order_id)
    assert approved.payment == plan
    assert approved_status.payment == plan
