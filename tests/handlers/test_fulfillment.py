"""Fulfillment's handlers, in-process on SQLite: every incoming event and what fulfillment says."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from services.fulfillment import store
from services.fulfillment.app import NAME
from services.fulfillment.domain import tracking_number
from services.fulfillment.handlers import HANDLERS
from shared.contract import (
    BackorderFilled,
    Channel,
    OrderApproved,
    OrderState,
    OrderStatusChanged,
    Reason,
    ReasonCode,
    ReservedLine,
    Shipment,
    ShipmentDispatched,
    ShipmentLine,
    ShipmentMode,
    Warehouse,
    WarehouseKind,
)
from shared.topics import BACKORDERS_FILLED, DISPATCHES, ORDERS_APPROVED, WAREHOUSES
from tests.handlers.conftest import WEIGHTS, approved, deliver_invalid, on_sqlite, status_from
from tests.support.bench import ServiceBench
from tools.seed import ACME, b2b_order, b2c_order, warehouses

FRIDAY = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
PLANNED, SHIPPED = OrderState.FULFILLMENT_PLANNED, OrderState.SHIPPED


@pytest.fixture
async def fulfillment(tmp_path: Path) -> AsyncIterator[ServiceBench]:
    async with on_sqlite(tmp_path, NAME, store.Base.metadata, HANDLERS) as bench:
        await bench.deliver_all(WAREHOUSES, warehouses())
        yield bench


# --- what the other services would send ------------------------------------------------------


def hamburg(occurred_at: datetime | None = None) -> Warehouse:
    """A site the seed does not have: fulfillment has not heard of it until it is delivered."""
    envelope = {} if occurred_at is None else {"occurred_at": occurred_at}
    return Warehouse.new(
        warehouse_id="wh-hamburg",
        name="Hamburg port warehouse",
        kind=WarehouseKind.REGIONAL,
        country="DE",
        postal_code="20457",
        **envelope,
    )


def fill(
    order_id: str, *filled: tuple[int, str, int], warehouse_id: str = "dc-kassel"
) -> BackorderFilled:
    """Catalog holds arriving stock for backordered lines: (line_no, sku, units)."""
    return BackorderFilled.new(
        order_id=order_id,
        account_id=ACME,
        lines=[
            ReservedLine(
                sku=sku,
                quantity=units,
                warehouse_id=warehouse_id,
                category="fasteners/bolts",
                unit_weight_kg=WEIGHTS[sku],
                line_no=line_no,
            )
            for line_no, sku, units in filled
        ],
    )


def verdict(event: OrderApproved, status: OrderState, by: str) -> OrderStatusChanged:
    """Another service's word on the order, as `orders.status` carries it."""
    codes = {
        OrderState.CANCELLED: ReasonCode.CANCELLED_BY_SHOP,
        OrderState.REJECTED: ReasonCode.APPROVAL_REJECTED,
    }
    code = codes.get(status)
    reason = None if code is None else Reason(code=code, message=f"{status.value} by {by}")
    return status_from(by, event.order, status, reason=reason)


def dispatch(order_id: str, shipment_id: str) -> ShipmentDispatched:
    """The WMS confirms a shipment left the dock (a new event id each time)."""
    return ShipmentDispatched.new(order_id=order_id, shipment_id=shipment_id)


async def reported(bench: ServiceBench, order_id: str, state: OrderState) -> list[list[Shipment]]:
    """The shipments of each `state` status fulfillment reported for the order, in order."""
    return [s.shipments or [] for s in await bench.statuses(order_id) if s.status is state]


# --- planning an approved order --------------------------------------------------------------


async def test_a_consumer_order_is_planned_as_a_parcel_by_its_delivery_speed(
    fulfillment: ServiceBench,
) -> None:
    event = approved(
        b2c_order("c-1", [("GLOVE-L", 3)], speed="express"), "wh-berlin", occurred_at=FRIDAY
    )
    await fulfillment.deliver(ORDERS_APPROVED, event)

    [status] = await fulfillment.statuses("c-1")
    assert (status.status, status.reported_by) == (PLANNED, "fulfillment")
    assert status.channel is Channel.B2C and status.totals == event.totals
    assert status.shipments == [
        Shipment(
            shipment_id="c-1-1",
            mode=ShipmentMode.PARCEL,
            warehouse_id="wh-berlin",
            carrier="parcel-express",
            service_level="express",
            tracking_number=tracking_number("c-1-1"),
            promised_date=date(2026, 11, 30),  # one business day after a Friday
            weight_kg=Decimal("0.3"),
            lines=[ShipmentLine(sku="GLOVE-L", quantity=3, line_no=1)],
        )
    ]


async def test_a_business_order_ships_as_freight_on_pallets_in_a_delivery_window(
    fulfillment: ServiceBench,
) -> None:
    event = approved(b2b_order("b-1", [("CEMENT-25", 400)]), occurred_at=FRIDAY)
    await fulfillment.deliver(ORDERS_APPROVED, event)

    [[shipment]] = await reported(fulfillment, "b-1", PLANNED)
    assert shipment.mode is ShipmentMode.FREIGHT
    assert (shipment.carrier, shipment.service_level) == ("freight-ltl", "scheduled")
    assert shipment.weight_kg == Decimal("10000") and shipment.pallets == 20
    assert shipment.delivery_window == "08:00-12:00"
    assert shipment.promised_date == date(2026, 12, 2)  # three business days to palletise


async def test_a_replayed_approval_plans_nothing_twice(fulfillment: ServiceBench) -> None:
    event = approved(b2b_order("b-2", [("BOLT-M8-100", 10)]))
    await fulfillment.deliver(ORDERS_APPROVED, event)
    await fulfillment.deliver(ORDERS_APPROVED, event)  # redelivered: the inbox drops it
    await fulfillment.deliver(ORDERS_APPROVED, event.model_copy(update={"event_id": uuid.uuid4()}))

    assert await fulfillment.history("b-2") == ["fulfillment_planned"]


async def test_an_approval_for_an_unknown_warehouse_waits_until_the_warehouse_arrives(
    fulfillment: ServiceBench,
) -> None:
    event = approved(b2c_order("c-2", [("DRILL-18V", 1)]), "wh-hamburg", occurred_at=FRIDAY)
    await fulfillment.deliver(ORDERS_APPROVED, event)
    await fulfillment.deliver(ORDERS_APPROVED, event.model_copy(update={"event_id": uuid.uuid4()}))
    assert await fulfillment.history("c-2") == []

    monday = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    await fulfillment.deliver(WAREHOUSES, hamburg(monday))

    [[shipment]] = await reported(fulfillment, "c-2", PLANNED)
    assert (shipment.shipment_id, shipment.warehouse_id) == ("c-2-1", "wh-hamburg")
    assert shipment.promised_date == date(2026, 12, 2)  # planned on Monday, when the site came
    await fulfillment.deliver(WAREHOUSES, hamburg())  # the site again: nothing waits any more
    assert await fulfillment.history("c-2") == ["fulfillment_planned"]


# --- orders other services stopped -----------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "by"), [(OrderState.CANCELLED, "catalog"), (OrderState.REJECTED, "approvals")]
)
async def test_an_order_stopped_by_another_service_is_not_planned_nor_filled(
    fulfillment: ServiceBench, status: OrderState, by: str
) -> None:
    event = approved(b2b_order("b-3", [("BOLT-M8-100", 10)]), backordered={"BOLT-M8-100": 4})
    await fulfillment.hear(verdict(event, status, by))
    await fulfillment.deliver(ORDERS_APPROVED, event)
    await fulfillment.deliver(BACKORDERS_FILLED, fill("b-3", (1, "BOLT-M8-100", 4)))

    assert await fulfillment.history("b-3") == []


async def test_other_verdicts_and_fulfillments_own_reports_stop_nothing(
    fulfillment: ServiceBench,
) -> None:
    event = approved(b2b_order("b-4", [("BOLT-M8-100", 10)]))
    await fulfillment.hear(verdict(event, OrderState.APPROVED, "approvals"))
    await fulfillment.hear(verdict(event, OrderState.CANCELLED, "fulfillment"))
    await fulfillment.deliver(ORDERS_APPROVED, event)

    assert await fulfillment.history("b-4") == ["fulfillment_planned"]


async def test_a_waiting_order_stopped_is_not_planned_when_its_warehouse_arrives(
    fulfillment: ServiceBench,
) -> None:
    event = approved(b2c_order("c-3", [("DRILL-18V", 1)]), "wh-hamburg")
    await fulfillment.deliver(ORDERS_APPROVED, event)
    await fulfillment.hear(verdict(event, OrderState.CANCELLED, "catalog"))
    await fulfillment.deliver(WAREHOUSES, hamburg())

    assert await fulfillment.history("c-3") == []


async def test_an_order_stopped_after_its_plan_takes_no_fill_but_its_shipment_may_still_leave(
    fulfillment: ServiceBench,
) -> None:
    event = approved(b2b_order("b-5", [("BOLT-M8-100", 10)]), backordered={"BOLT-M8-100": 4})
    await fulfillment.deliver(ORDERS_APPROVED, event)
    await fulfillment.hear(verdict(event, OrderState.CANCELLED, "catalog"))
    await fulfillment.hear(verdict(event, OrderState.REJECTED, "approvals"))
    await fulfillment.deliver(BACKORDERS_FILLED, fill("b-5", (1, "BOLT-M8-100", 4)))
    assert await fulfillment.history("b-5") == ["fulfillment_planned"]

    await fulfillment.deliver(DISPATCHES, dispatch("b-5", "b-5-1"))  # the goods were being picked
    assert await fulfillment.history("b-5") == ["fulfillment_planned", "shipped"]


# --- backorder fills -------------------------------------------------------------------------


async def test_a_fill_after_the_plan_becomes_a_further_shipment(fulfillment: ServiceBench) -> None:
    order = b2b_order("b-6", [("BOLT-M8-100", 10), ("GLOVE-L", 5)])
    event = approved(order, backordered={"BOLT-M8-100": 4, "GLOVE-L": 5})
    await fulfillment.deliver(ORDERS_APPROVED, event)
    await fulfillment.deliver(
        BACKORDERS_FILLED, fill("b-6", (1, "BOLT-M8-100", 4), (2, "GLOVE-L", 5))
    )

    [[now], [later]] = await reported(fulfillment, "b-6", PLANNED)
    assert now.shipment_id == "b-6-1"
    assert now.lines == [ShipmentLine(sku="BOLT-M8-100", quantity=6, line_no=1)]
    assert later.shipment_id == "b-6-2"
    assert later.lines == [
        ShipmentLine(sku="BOLT-M8-100", quantity=4, line_no=1),
        ShipmentLine(sku="GLOVE-L", quantity=5, line_no=2),
    ]
    assert later.tracking_number != now.tracking_number


async def test_an_order_wholly_on_backorder_is_planned_without_shipments_until_its_fill(
    fulfillment: ServiceBench,
) -> None:
    event = approved(b2b_order("b-7", [("BOLT-M8-100", 8)]), backordered={"BOLT-M8-100": 8})
    await fulfillment.deliver(ORDERS_APPROVED, event)
    await fulfillment.deliver(BACKORDERS_FILLED, fill("b-7", (1, "BOLT-M8-100", 8)))

    [nothing, [shipment]] = await reported(fulfillment, "b-7", PLANNED)
    assert nothing == []
    assert shipment.shipment_id == "b-7-1"
    assert shipment.lines == [ShipmentLine(sku="BOLT-M8-100", quantity=8, line_no=1)]


async def test_a_fill_before_the_approval_ships_with_the_first_plan(
    fulfillment: ServiceBench,
) -> None:
    early = fill("b-8", (1, "BOLT-M8-100", 4))
    await fulfillment.deliver(BACKORDERS_FILLED, early)
    await fulfillment.deliver(
        BACKORDERS_FILLED, early.model_copy(update={"event_id": uuid.uuid4()})
    )
    assert await fulfillment.history("b-8") == []

    event = approved(b2b_order("b-8", [("BOLT-M8-100", 10)]), backordered={"BOLT-M8-100": 4})
    await fulfillment.deliver(ORDERS_APPROVED, event)

    [[shipment]] = await reported(fulfillment, "b-8", PLANNED)
    assert shipment.lines == [ShipmentLine(sku="BOLT-M8-100", quantity=14, line_no=1)]


async def test_a_fill_in_a_warehouse_not_known_yet_ships_when_the_warehouse_arrives(
    fulfillment: ServiceBench,
) -> None:
    event = approved(b2b_order("b-9", [("BOLT-M8-100", 10)]), backordered={"BOLT-M8-100": 4})
    await fulfillment.deliver(ORDERS_APPROVED, event)
    await fulfillment.deliver(
        BACKORDERS_FILLED, fill("b-9", (1, "BOLT-M8-100", 4), warehouse_id="wh-hamburg")
    )
    assert len(await reported(fulfillment, "b-9", PLANNED)) == 1

    await fulfillment.deliver(WAREHOUSES, hamburg())

    [_, [later]] = await reported(fulfillment, "b-9", PLANNED)
    assert (later.shipment_id, later.warehouse_id) == ("b-9-2", "wh-hamburg")


# --- dispatches ------------------------------------------------------------------------------


async def test_a_dispatch_reports_shipped_once_per_shipment(fulfillment: ServiceBench) -> None:
    order = b2c_order("c-4", [("GLOVE-L", 2), ("HEADSET-BT", 1)])
    event = approved(order, "wh-berlin")
    headset = event.lines[1].model_copy(update={"warehouse_id": "wh-vienna"})
    event = event.model_copy(update={"lines": [event.lines[0], headset]})
    await fulfillment.deliver(ORDERS_APPROVED, event)
    [[berlin, vienna]] = await reported(fulfillment, "c-4", PLANNED)

    await fulfillment.deliver(DISPATCHES, dispatch("c-4", berlin.shipment_id))
    await fulfillment.deliver(DISPATCHES, dispatch("c-4", berlin.shipment_id))  # confirmed again
    await fulfillment.deliver(DISPATCHES, dispatch("c-4", vienna.shipment_id))

    assert await reported(fulfillment, "c-4", SHIPPED) == [[berlin], [vienna]]
    [*_, shipped] = await fulfillment.statuses("c-4")
    assert shipped.reported_by == "fulfillment" and shipped.totals == event.totals
    assert await fulfillment.dead_letters(DISPATCHES) == []


@pytest.mark.parametrize(
    ("order_id", "shipment_id", "named"),
    [
        ("b-10", "b-10-9", ["'b-10-9'", "never planned"]),  # no such shipment
        ("b-11", "b-10-1", ["'b-10-1'", "'b-10'", "'b-11'"]),  # another order's shipment
    ],
)
async def test_a_dispatch_that_does_not_match_the_plan_is_dead_lettered_and_changes_nothing(
    fulfillment: ServiceBench, order_id: str, shipment_id: str, named: list[str]
) -> None:
    await fulfillment.deliver(ORDERS_APPROVED, approved(b2b_order("b-10", [("BOLT-M8-100", 1)])))

    await fulfillment.deliver(DISPATCHES, dispatch(order_id, shipment_id))

    [letter] = await fulfillment.dead_letters(DISPATCHES)
    assert letter.service == "fulfillment" and letter.error.startswith("dispatch_mismatch: ")
    assert all(name in letter.error for name in named), letter.error
    assert await fulfillment.history("b-11") == []  # nothing is said of the order it named
    assert await fulfillment.history("b-10") == ["fulfillment_planned"]
    await fulfillment.deliver(DISPATCHES, dispatch("b-10", "b-10-1"))
    assert await fulfillment.history("b-10") == ["fulfillment_planned", "shipped"]


# --- messages that are not valid -------------------------------------------------------------


async def test_an_invalid_approval_is_dead_lettered_and_its_order_rejected(
    fulfillment: ServiceBench,
) -> None:
    letter = await deliver_invalid(fulfillment, ORDERS_APPROVED, "b-13")
    assert "schema" in letter.error


async def test_an_invalid_dispatch_is_dead_lettered_and_rejects_nothing(
    fulfillment: ServiceBench,
) -> None:
    await fulfillment.deliver(DISPATCHES, b'{"order_id": "b-14", "shipment_id": ""}')

    [letter] = await fulfillment.dead_letters(DISPATCHES)
    assert "shipment_id" in letter.error
    assert await fulfillment.history("b-14") == []


# --- metrics ---------------------------------------------------------------------------------


def shipments_counted(kind: str, mode: str, carrier: str) -> float:
    labels = {"mode": mode, "carrier": carrier}
    return REGISTRY.get_sample_value(f"tradelane_shipments_{kind}_total", labels) or 0.0


async def test_shipments_are_counted_by_mode_and_carrier_when_planned_and_when_they_leave(
    fulfillment: ServiceBench,
) -> None:
    """The inventory-and-fulfillment dashboard's shipments by mode and carrier; a dispatch
    confirmed twice counts once, like the `shipped` status it reports."""
    express = ("parcel", "parcel-express")
    planned_before = shipments_counted("planned", *express)
    left_before = shipments_counted("dispatched", *express)
    event = approved(b2c_order("c-m1", [("GLOVE-L", 1)], speed="express"), "wh-berlin")
    await fulfillment.deliver(ORDERS_APPROVED, event)
    [[shipment]] = await reported(fulfillment, "c-m1", PLANNED)
    await fulfillment.deliver(DISPATCHES, dispatch("c-m1", shipment.shipment_id))
    await fulfillment.deliver(DISPATCHES, dispatch("c-m1", shipment.shipment_id))

    assert shipments_counted("planned", *express) == planned_before + 1
    assert shipments_counted("dispatched", *express) == left_before + 1
    ftl = {"mode": "freight", "carrier": "freight-ftl"}
    assert REGISTRY.get_sample_value("tradelane_shipments_planned_total", ftl) is not None
