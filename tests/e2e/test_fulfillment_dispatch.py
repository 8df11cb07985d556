"""Backorders and dispatches through a real fulfillment process over a real broker.

Only fulfillment runs: the tests stand in for approvals (`orders.approved`),
catalog (`orders.backorder_filled`) and the WMS (`fulfillment.dispatches`), so
each case says exactly what arrived and reads what fulfillment made of it on
`orders.status`, the dead-letter topics and `GET /shipments/{order_id}`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from cli.publisher import EventPublisher
from shared.contract import (
    ApprovalMode,
    BackorderFilled,
    OrderApproved,
    OrderState,
    OrderStatusChanged,
    PricedLine,
    ReservedLine,
    ShipmentDispatched,
    ShipmentLine,
    Totals,
)
from shared.topics import (
    BACKORDERS_FILLED,
    DISPATCHES,
    ORDERS_APPROVED,
    WAREHOUSES,
    TopicNames,
    create_topics,
)
from tests.e2e.conftest import PARTITIONS, Pipeline, TopicWatcher, free_port
from tools.fleet import Fleet
from tools.seed import b2b_order, warehouses

CATEGORY = "fasteners/bolts"


@pytest.fixture(scope="module")
def fulfillment(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pipeline]:
    """Fulfillment alone, with its own topic prefix and the seed's warehouses."""
    prefix = f"e2e{uuid.uuid4().hex[:8]}."
    names = TopicNames(prefix)
    create_topics(kafka_bootstrap, names, PARTITIONS)
    fleet = Fleet(
        kafka_bootstrap,
        Path(tmp_path_factory.mktemp("fulfillment")),
        topic_prefix=prefix,
        partitions=PARTITIONS,
        ports={"fulfillment": free_port()},
        move_taken_ports=True,
        extra_env={
            "TRADELANE_OUTBOX_POLL_SECONDS": "0.2",
            "TRADELANE_SESSION_TIMEOUT_SECONDS": "6",
        },
    )
    publisher = EventPublisher(kafka_bootstrap, names)
    watch = TopicWatcher(kafka_bootstrap, names)
    try:
        fleet.start(["fulfillment"])
        pipeline = Pipeline(fleet, publisher, watch, names)
        pipeline.publish_reference(WAREHOUSES, *warehouses())
        yield pipeline
    finally:
        fleet.stop()
        watch.close()
        publisher.close()


# --- what the other services would send ------------------------------------------------------


def a_line(
    line_no: int, sku: str, quantity: int, backordered: int = 0, warehouse_id: str = "dc-kassel"
) -> PricedLine:
    return PricedLine(
        sku=sku,
        quantity=quantity,
        warehouse_id=warehouse_id,
        category=CATEGORY,
        unit_weight_kg=Decimal("0.5"),
        line_no=line_no,
        backordered=backordered,
        unit_price=Decimal("2.00"),
        currency="EUR",
        line_total=Decimal(2 * quantity),
        price_source="list:list-EUR",
    )


def approve(pipeline: Pipeline, label: str, *lines: PricedLine) -> OrderApproved:
    """Approvals releases a B2B order to fulfillment."""
    order = b2b_order(
        pipeline.order_id(label), [(line.sku, line.quantity) for line in lines]
    ).order()
    total = sum((line.line_total for line in lines), Decimal(0))
    approved = OrderApproved.new(
        order=order,
        lines=list(lines),
        totals=Totals(currency="EUR", subtotal=total, total=total),
        approval_mode=ApprovalMode.AUTOMATIC,
    )
    pipeline.publisher.publish(ORDERS_APPROVED, approved)
    pipeline.publisher.flush()
    return approved


def fill(
    pipeline: Pipeline, approved: OrderApproved, *filled: tuple[int, str, int]
) -> BackorderFilled:
    """Catalog reserved arriving stock for backordered lines: (line_no, sku, units)."""
    event = BackorderFilled.new(
        order_id=approved.order.order_id,
        account_id=approved.order.account_id,
        lines=[
            ReservedLine(
                sku=sku,
                quantity=units,
                warehouse_id="dc-kassel",
                category=CATEGORY,
                unit_weight_kg=Decimal("0.5"),
                line_no=line_no,
            )
            for line_no, sku, units in filled
        ],
    )
    pipeline.publisher.publish(BACKORDERS_FILLED, event)
    pipeline.publisher.flush()
    return event


def dispatch(pipeline: Pipeline, order_id: str, shipment_id: str) -> None:
    """The WMS confirms a shipment left the dock (a new event id each time)."""
    pipeline.publisher.publish(
        DISPATCHES, ShipmentDispatched.new(order_id=order_id, shipment_id=shipment_id)
    )
    pipeline.publisher.flush()


def statuses(pipeline: Pipeline, order_id: str, state: OrderState) -> list[OrderStatusChanged]:
    return [s for s in pipeline.watch.statuses[order_id] if s.status is state]


def wait_for_nth(
    pipeline: Pipeline, order_id: str, state: OrderState, n: int
) -> OrderStatusChanged:
    found: OrderStatusChanged = pipeline.watch.wait_until(
        f"{order_id}: {state.value} number {n}",
        lambda: seen[n - 1] if len(seen := statuses(pipeline, order_id, state)) >= n else None,
    )
    return found


# --- backorders ------------------------------------------------------------------------------


def test_the_in_stock_part_ships_now_and_a_fill_ships_later_as_shipment_2(
    fulfillment: Pipeline,
) -> None:
    approved = approve(
        fulfillment,
        "partial",
        a_line(1, "BOLT-M8-100", 10, backordered=4),
        a_line(2, "GLOVE-L", 5, backordered=5),
    )
    order_id = approved.order.order_id

    first = wait_for_nth(fulfillment, order_id, OrderState.FULFILLMENT_PLANNED, 1)
    [now] = first.shipments or []
    assert now.shipment_id == f"{order_id}-1"
    assert now.lines == [ShipmentLine(sku="BOLT-M8-100", quantity=6, line_no=1)]
    assert now.weight_kg == Decimal("3")

    fill(fulfillment, approved, (1, "BOLT-M8-100", 4), (2, "GLOVE-L", 5))

    second = wait_for_nth(fulfillment, order_id, OrderState.FULFILLMENT_PLANNED, 2)
    [later] = second.shipments or []
    assert later.shipment_id == f"{order_id}-2"
    assert later.warehouse_id == now.warehouse_id == "dc-kassel"
    assert later.lines == [
        ShipmentLine(sku="BOLT-M8-100", quantity=4, line_no=1),
        ShipmentLine(sku="GLOVE-L", quantity=5, line_no=2),
    ]
    assert later.tracking_number != now.tracking_number
    status, body = fulfillment.http("fulfillment", "GET", f"/shipments/{order_id}")
    assert status == 200, body
    assert [s["shipment_id"] for s in body["shipments"]] == [f"{order_id}-1", f"{order_id}-2"]


def test_an_order_with_nothing_in_stock_is_planned_with_no_shipments(
    fulfillment: Pipeline,
) -> None:
    approved = approve(fulfillment, "all-backordered", a_line(1, "BOLT-M8-100", 8, backordered=8))
    order_id = approved.order.order_id

    planned = wait_for_nth(fulfillment, order_id, OrderState.FULFILLMENT_PLANNED, 1)
    assert planned.shipments == []

    fill(fulfillment, approved, (1, "BOLT-M8-100", 8))
    later = wait_for_nth(fulfillment, order_id, OrderState.FULFILLMENT_PLANNED, 2)
    [shipment] = later.shipments or []
    assert shipment.shipment_id == f"{order_id}-1"
    assert shipment.lines == [ShipmentLine(sku="BOLT-M8-100", quantity=8, line_no=1)]


def test_a_fill_that_comes_before_the_approval_ships_with_the_first_plan(
    fulfillment: Pipeline,
) -> None:
    lines = (a_line(1, "BOLT-M8-100", 10, backordered=4),)
    order = b2b_order(fulfillment.order_id("early-fill"), [("BOLT-M8-100", 10)]).order()
    early = OrderApproved.new(
        order=order,
        lines=list(lines),
        totals=Totals(currency="EUR", subtotal=Decimal("20.00"), total=Decimal("20.00")),
        approval_mode=ApprovalMode.AUTOMATIC,
    )
    fill(fulfillment, early, (1, "BOLT-M8-100", 4))
    fulfillment.fleet.wait_caught_up([BACKORDERS_FILLED], services=["fulfillment"])
    assert statuses(fulfillment, order.order_id, OrderState.FULFILLMENT_PLANNED) == []

    fulfillment.publisher.publish(ORDERS_APPROVED, early)
    fulfillment.publisher.flush()

    planned = wait_for_nth(fulfillment, order.order_id, OrderState.FULFILLMENT_PLANNED, 1)
    [shipment] = planned.shipments or []
    assert shipment.lines == [ShipmentLine(sku="BOLT-M8-100", quantity=10, line_no=1)]


# --- dispatches ------------------------------------------------------------------------------


def test_a_dispatch_reports_shipped_once_per_shipment(fulfillment: Pipeline) -> None:
    approved = approve(
        fulfillment,
        "dispatch",
        a_line(1, "BOLT-M8-100", 2, warehouse_id="dc-kassel"),
        a_line(2, "GLOVE-L", 3, warehouse_id="wh-berlin"),
    )
    order_id = approved.order.order_id
    planned = wait_for_nth(fulfillment, order_id, OrderState.FULFILLMENT_PLANNED, 1)
    kassel, berlin = planned.shipments or []

    dispatch(fulfillment, order_id, kassel.shipment_id)
    shipped = wait_for_nth(fulfillment, order_id, OrderState.SHIPPED, 1)
    assert shipped.shipments == [kassel]
    assert shipped.reported_by == "fulfillment"

    dispatch(fulfillment, order_id, kassel.shipment_id)  # the WMS confirms again
    # Same order id, same partition: once Berlin's `shipped` is in, the repeat was handled.
    dispatch(fulfillment, order_id, berlin.shipment_id)
    wait_for_nth(fulfillment, order_id, OrderState.SHIPPED, 2)

    assert [s.shipments for s in statuses(fulfillment, order_id, OrderState.SHIPPED)] == [
        [kassel],
        [berlin],
    ]
    status, body = fulfillment.http("fulfillment", "GET", f"/shipments/{order_id}")
    assert status == 200, body
    assert [s["dispatched"] for s in body["shipments"]] == [True, True]


def test_a_dispatch_of_an_unknown_shipment_is_dead_lettered_and_fulfillment_goes_on(
    fulfillment: Pipeline,
) -> None:
    approved = approve(fulfillment, "unknown-shipment", a_line(1, "BOLT-M8-100", 1))
    order_id = approved.order.order_id
    wait_for_nth(fulfillment, order_id, OrderState.FULFILLMENT_PLANNED, 1)
    stranger = f"{order_id}-9"

    dispatch(fulfillment, order_id, stranger)

    letter = fulfillment.watch.wait_until(
        f"a dead letter for {stranger}",
        lambda: next(
            (
                d
                for d in fulfillment.watch.dead_letters["fulfillment.dispatches.dlq"]
                if stranger in d.error
            ),
            None,
        ),
    )
    assert letter.service == "fulfillment"
    assert "never planned" in letter.error
    assert statuses(fulfillment, order_id, OrderState.SHIPPED) == []

    dispatch(fulfillment, order_id, f"{order_id}-1")
    shipped = wait_for_nth(fulfillment, order_id, OrderState.SHIPPED, 1)
    assert [s.shipment_id for s in shipped.shipments or []] == [f"{order_id}-1"]
