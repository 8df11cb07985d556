"""Fulfillment's routing and dispatch rules, checked directly: no broker, no database, no clock."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from services.fulfillment.domain import (
    SHIPPING,
    NotThisOrdersShipment,
    PlannedShipment,
    Progress,
    Site,
    State,
    Step,
    Trigger,
    UnknownWarehouse,
    add_business_days,
    filled,
    pallets_for,
    ready_to_ship,
    route_shipment,
    stopped_by,
    tracking_number,
)
from shared.contract import (
    Address,
    Channel,
    Delivery,
    DeliverySpeed,
    Order,
    OrderLine,
    OrderState,
    Payment,
    PaymentMethod,
    PricedLine,
    ReservedLine,
    Shipment,
    ShipmentLine,
    ShipmentMode,
    WarehouseKind,
)

FRIDAY = date(2026, 11, 27)
THURSDAY = date(2026, 11, 26)
SATURDAY = date(2026, 11, 28)

WAREHOUSES = {
    "dc-central": Site("dc-central", WarehouseKind.CENTRAL_DC, "DE"),
    "wh-berlin": Site("wh-berlin", WarehouseKind.REGIONAL, "DE"),
    "3pl-rotterdam": Site("3pl-rotterdam", WarehouseKind.THIRD_PARTY, "NL"),
}


def an_order(
    channel: Channel = Channel.B2C,
    speed: DeliverySpeed = DeliverySpeed.STANDARD,
    requested_date: date | None = None,
    order_id: str = "web-000123",
) -> Order:
    b2b = channel is Channel.B2B
    return Order(
        order_id=order_id,
        shop_id="web",
        channel=channel,
        account_id="acme-gmbh" if b2b else "jane-doe",
        buyer_id="acme-u-17" if b2b else "jane-doe",
        currency="EUR",
        lines=[OrderLine(sku="ANY", quantity=1)],
        payment=Payment(
            method=PaymentMethod.INVOICE if b2b else PaymentMethod.CARD,
            terms="NET30" if b2b else None,
        ),
        delivery=Delivery(
            speed=speed,
            requested_date=requested_date,
            address=Address(
                country="DE", postal_code="10115", city="Berlin", line1="Invalidenstr. 1"
            ),
        ),
    )


def a_line(
    sku: str,
    quantity: int,
    warehouse_id: str = "wh-berlin",
    unit_weight_kg: str = "0.5",
    *,
    line_no: int | None = None,
    backordered: int = 0,
) -> PricedLine:
    return PricedLine(
        sku=sku,
        quantity=quantity,
        warehouse_id=warehouse_id,
        category="fasteners/bolts",
        unit_weight_kg=Decimal(unit_weight_kg),
        line_no=line_no,
        backordered=backordered,
        unit_price=Decimal("1.00"),
        currency="EUR",
        line_total=Decimal(quantity),
        price_source="list:list-EUR",
    )


def a_fill_line(
    sku: str,
    quantity: int,
    line_no: int,
    *,
    still_backordered: int = 0,
    warehouse_id: str = "dc-central",
    unit_weight_kg: str = "0.5",
) -> ReservedLine:
    """A line of `orders.backorder_filled`: `quantity` is what this fill reserved."""
    return ReservedLine(
        sku=sku,
        quantity=quantity,
        warehouse_id=warehouse_id,
        category="fasteners/bolts",
        unit_weight_kg=Decimal(unit_weight_kg),
        line_no=line_no,
        backordered=still_backordered,
    )


def plan(
    order: Order,
    lines: Sequence[ReservedLine],
    warehouses: Mapping[str, Site],
    today: date,
) -> list[Shipment]:
    """Plan an approval the way the handler does: what is in stock, routed."""
    return route_shipment(order, ready_to_ship(lines), warehouses, today)


def only(shipments: list[Shipment]) -> Shipment:
    assert len(shipments) == 1
    return shipments[0]


# --- retail: parcels by delivery speed ------------------------------------------------------


@pytest.mark.parametrize(
    ("speed", "today", "carrier", "promised"),
    [
        (DeliverySpeed.EXPRESS, FRIDAY, "parcel-express", date(2026, 11, 30)),  # Mon
        (DeliverySpeed.STANDARD, FRIDAY, "parcel-standard", date(2026, 12, 1)),  # Tue
        (DeliverySpeed.ECONOMY, THURSDAY, "parcel-economy", date(2026, 12, 2)),  # Wed
        (DeliverySpeed.EXPRESS, SATURDAY, "parcel-express", date(2026, 11, 30)),  # Mon
    ],
)
def test_b2c_parcel_carrier_and_promised_date_skip_the_weekend(
    speed: DeliverySpeed, today: date, carrier: str, promised: date
) -> None:
    shipment = only(plan(an_order(speed=speed), [a_line("MUG-1", 2)], WAREHOUSES, today))

    assert shipment.mode is ShipmentMode.PARCEL
    assert shipment.carrier == carrier
    assert shipment.service_level == speed.value
    assert shipment.promised_date == promised
    assert shipment.pallets is None
    assert shipment.delivery_window is None


def test_b2c_parcel_ignores_a_requested_date() -> None:
    order = an_order(speed=DeliverySpeed.STANDARD, requested_date=date(2026, 12, 20))

    shipment = only(plan(order, [a_line("MUG-1", 1)], WAREHOUSES, FRIDAY))

    assert shipment.promised_date == date(2026, 12, 1)


def test_b2c_at_the_parcel_limit_is_still_a_parcel() -> None:
    lines = [a_line("KETTLEBELL-31.5", 1, unit_weight_kg="31.5")]

    shipment = only(plan(an_order(), lines, WAREHOUSES, FRIDAY))

    assert shipment.mode is ShipmentMode.PARCEL


def test_heavy_b2c_goes_freight() -> None:
    lines = [a_line("KETTLEBELL-16", 2, unit_weight_kg="16")]  # 32 kg > 31.5 kg

    shipment = only(plan(an_order(), lines, WAREHOUSES, FRIDAY))

    assert shipment.mode is ShipmentMode.FREIGHT
    assert shipment.carrier == "freight-ltl"
    assert shipment.pallets == 1
    assert shipment.delivery_window == "08:00-12:00"
    assert shipment.promised_date == date(2026, 12, 2)


# --- bulk: freight from the reserved DC -----------------------------------------------------


def test_b2b_ships_freight_from_the_reserved_dc_with_pallets_and_window() -> None:
    order = an_order(Channel.B2B, requested_date=date(2026, 12, 10))
    lines = [a_line("BOLT-M8-100", 1200, "dc-central", unit_weight_kg="1.25")]  # 1,500 kg

    shipment = only(plan(order, lines, WAREHOUSES, FRIDAY))

    assert shipment.mode is ShipmentMode.FREIGHT
    assert shipment.warehouse_id == "dc-central"
    assert shipment.carrier == "freight-ltl"
    assert shipment.service_level == "scheduled"
    assert shipment.pallets == 3
    assert shipment.weight_kg == Decimal("1500")
    assert shipment.delivery_window == "08:00-12:00"
    assert shipment.promised_date == date(2026, 12, 10)  # requested date honoured
    assert shipment.lines == [ShipmentLine(sku="BOLT-M8-100", quantity=1200)]


def test_b2b_light_order_is_still_freight() -> None:
    order = an_order(Channel.B2B)

    shipment = only(plan(order, [a_line("BOLT", 1, "dc-central")], WAREHOUSES, FRIDAY))

    assert shipment.mode is ShipmentMode.FREIGHT
    assert shipment.pallets == 1


@pytest.mark.parametrize(
    ("requested", "promised"),
    [
        (None, date(2026, 12, 2)),  # earliest: Fri + 3 business days = Wed
        (date(2026, 12, 1), date(2026, 12, 2)),  # too early: earliest instead
        (date(2026, 12, 2), date(2026, 12, 2)),  # exactly the earliest: honoured
        (date(2026, 12, 5), date(2026, 12, 7)),  # a Saturday: the next Monday
    ],
)
def test_b2b_delivery_date_is_the_requested_one_or_the_earliest_possible(
    requested: date | None, promised: date
) -> None:
    order = an_order(Channel.B2B, requested_date=requested)

    shipment = only(plan(order, [a_line("BOLT", 10, "dc-central")], WAREHOUSES, FRIDAY))

    assert shipment.promised_date == promised


@pytest.mark.parametrize(
    ("unit_weight_kg", "carrier", "pallets"),
    [
        ("10000", "freight-ltl", 20),
        ("10000.001", "freight-ftl", 21),
        ("24000", "freight-ftl", 48),
    ],
)
def test_full_truckload_only_above_ten_tonnes(
    unit_weight_kg: str, carrier: str, pallets: int
) -> None:
    lines = [a_line("PRESS-1", 1, "dc-central", unit_weight_kg=unit_weight_kg)]

    shipment = only(plan(an_order(Channel.B2B), lines, WAREHOUSES, FRIDAY))

    assert shipment.carrier == carrier
    assert shipment.pallets == pallets


def test_pallets_round_up_and_never_drop_to_zero() -> None:
    assert pallets_for(Decimal("0.001")) == 1
    assert pallets_for(Decimal("500")) == 1
    assert pallets_for(Decimal("500.001")) == 2


# --- splitting, numbering, weights ----------------------------------------------------------


def test_lines_in_two_warehouses_become_two_shipments_numbered_by_warehouse() -> None:
    lines = [
        a_line("MUG-1", 1, "wh-berlin"),
        a_line("PLATE-2", 3, "3pl-rotterdam"),
        a_line("MUG-2", 2, "wh-berlin"),
    ]

    first, second = plan(an_order(), lines, WAREHOUSES, FRIDAY)

    assert (first.shipment_id, first.warehouse_id) == ("web-000123-1", "3pl-rotterdam")
    assert first.lines == [ShipmentLine(sku="PLATE-2", quantity=3)]
    assert (second.shipment_id, second.warehouse_id) == ("web-000123-2", "wh-berlin")
    assert second.lines == [
        ShipmentLine(sku="MUG-1", quantity=1),
        ShipmentLine(sku="MUG-2", quantity=2),
    ]
    assert second.weight_kg == Decimal("1.5")


def test_each_warehouse_decides_parcel_or_freight_by_its_own_weight() -> None:
    lines = [
        a_line("MUG-1", 1, "wh-berlin"),
        a_line("KETTLEBELL-16", 2, "dc-central", unit_weight_kg="16"),
    ]

    by_site = {s.warehouse_id: s for s in plan(an_order(), lines, WAREHOUSES, FRIDAY)}

    assert by_site["wh-berlin"].mode is ShipmentMode.PARCEL
    assert by_site["dc-central"].mode is ShipmentMode.FREIGHT


def test_weight_is_exact_decimal() -> None:
    lines = [a_line("SCREW", 3, unit_weight_kg="0.1")]

    shipment = only(plan(an_order(), lines, WAREHOUSES, FRIDAY))

    assert shipment.weight_kg == Decimal("0.3")


# --- determinism ------------------------------------------------------------------------------


def test_a_redelivered_approval_plans_the_same_shipments() -> None:
    lines = [a_line("MUG-1", 1, "wh-berlin"), a_line("PLATE-2", 3, "3pl-rotterdam")]

    first = plan(an_order(), lines, WAREHOUSES, FRIDAY)
    again = plan(an_order(), list(reversed(lines)), WAREHOUSES, FRIDAY)

    assert first == again


def test_tracking_number_is_derived_from_the_shipment() -> None:
    number = tracking_number("web-000123-1")

    assert number == tracking_number("web-000123-1")
    assert number.startswith("TL")
    assert len(number) == 14
    assert set(number[2:]) <= set("0123456789ABCDEF")
    assert number != tracking_number("web-000123-2")
    assert number != tracking_number("web-000124-1")


def test_two_shipments_from_one_warehouse_get_distinct_tracking_numbers() -> None:
    order = an_order(Channel.B2B)
    approved = [a_line("BOLT", 10, "dc-central", line_no=1, backordered=4)]

    first = only(route_shipment(order, ready_to_ship(approved), WAREHOUSES, FRIDAY))
    later = only(route_shipment(order, filled([a_fill_line("BOLT", 4, 1)]), WAREHOUSES, FRIDAY, 1))
    replanned = only(
        route_shipment(order, filled([a_fill_line("BOLT", 4, 1)]), WAREHOUSES, FRIDAY, 1)
    )

    assert first.warehouse_id == later.warehouse_id == "dc-central"
    assert first.tracking_number != later.tracking_number
    assert first.tracking_number == tracking_number("web-000123-1")
    assert replanned.tracking_number == later.tracking_number


# --- backorders: only what is on the shelf ships --------------------------------------------


def test_only_the_in_stock_part_of_each_line_is_planned() -> None:
    lines = [
        a_line("BOLT", 10, "dc-central", unit_weight_kg="2", line_no=1, backordered=4),
        a_line("NUT", 5, "dc-central", unit_weight_kg="1", line_no=2),
    ]

    shipment = only(plan(an_order(Channel.B2B), lines, WAREHOUSES, FRIDAY))

    assert shipment.lines == [
        ShipmentLine(sku="BOLT", quantity=6, line_no=1),
        ShipmentLine(sku="NUT", quantity=5, line_no=2),
    ]
    assert shipment.weight_kg == Decimal("17")  # 6 x 2 kg + 5 x 1 kg: backorders weigh nothing


def test_a_line_wholly_on_backorder_is_skipped() -> None:
    lines = [
        a_line("BOLT", 10, "dc-central", line_no=1, backordered=10),
        a_line("MUG", 1, "wh-berlin", line_no=2),
    ]

    shipment = only(plan(an_order(), lines, WAREHOUSES, FRIDAY))

    assert shipment.warehouse_id == "wh-berlin"
    assert shipment.lines == [ShipmentLine(sku="MUG", quantity=1, line_no=2)]


def test_nothing_in_stock_plans_no_shipments() -> None:
    lines = [a_line("BOLT", 10, "dc-unknown", line_no=1, backordered=10)]

    assert plan(an_order(Channel.B2B), lines, WAREHOUSES, FRIDAY) == []


def test_a_lighter_in_stock_part_can_go_as_a_parcel() -> None:
    # 2 x 16 kg ordered (freight), but one is on backorder: 16 kg ships as a parcel.
    lines = [a_line("KETTLEBELL-16", 2, unit_weight_kg="16", line_no=1, backordered=1)]

    shipment = only(plan(an_order(), lines, WAREHOUSES, FRIDAY))

    assert shipment.mode is ShipmentMode.PARCEL
    assert shipment.weight_kg == Decimal("16")


def test_shipment_lines_name_the_order_line_they_ship() -> None:
    lines = [
        a_line("MUG-1", 1, "wh-berlin", line_no=1),
        a_line("PLATE-2", 3, "3pl-rotterdam", line_no=2),
        a_line("MUG-2", 2, "wh-berlin", line_no=3),
    ]

    rotterdam, berlin = plan(an_order(), lines, WAREHOUSES, FRIDAY)

    assert [(line.sku, line.line_no) for line in rotterdam.lines] == [("PLATE-2", 2)]
    assert [(line.sku, line.line_no) for line in berlin.lines] == [("MUG-1", 1), ("MUG-2", 3)]


def test_a_fill_ships_every_unit_it_reserved() -> None:
    # Even if a producer names what the line still waits for, all 3 units of this fill ship.
    fill = [a_fill_line("BOLT", 3, 1, still_backordered=2, unit_weight_kg="2")]

    shipment = only(route_shipment(an_order(Channel.B2B), filled(fill), WAREHOUSES, FRIDAY, 1))

    assert shipment.lines == [ShipmentLine(sku="BOLT", quantity=3, line_no=1)]
    assert shipment.weight_kg == Decimal("6")


def test_a_fills_shipments_are_numbered_after_the_orders_earlier_ones() -> None:
    fill = [
        a_fill_line("BOLT", 3, 1, warehouse_id="wh-berlin"),
        a_fill_line("NUT", 2, 2, warehouse_id="dc-central"),
    ]

    first, second = route_shipment(
        an_order(Channel.B2B), filled(fill), WAREHOUSES, FRIDAY, planned_before=2
    )

    assert (first.shipment_id, first.warehouse_id) == ("web-000123-3", "dc-central")
    assert (second.shipment_id, second.warehouse_id) == ("web-000123-4", "wh-berlin")


def test_fills_that_came_before_the_approval_ship_with_the_first_plan() -> None:
    approved = [
        a_line("BOLT", 10, "dc-central", line_no=1, backordered=4),
        a_line("NUT", 3, "dc-central", line_no=2, backordered=3),
    ]
    earlier_fills = [
        [a_fill_line("BOLT", 4, 1)],
        [a_fill_line("NUT", 2, 2, still_backordered=1)],
    ]

    ready = ready_to_ship(approved, earlier_fills)
    shipment = only(route_shipment(an_order(Channel.B2B), ready, WAREHOUSES, FRIDAY))

    assert shipment.shipment_id == "web-000123-1"
    assert shipment.lines == [  # the in-stock part and the fill of line 1 ship as one line
        ShipmentLine(sku="BOLT", quantity=10, line_no=1),
        ShipmentLine(sku="NUT", quantity=2, line_no=2),
    ]


# --- dispatch -------------------------------------------------------------------------------


def a_planned_shipment() -> PlannedShipment:
    shipment = only(plan(an_order(), [a_line("MUG-1", 1, line_no=1)], WAREHOUSES, FRIDAY))
    return PlannedShipment(order_id="web-000123", shipment=shipment)


def test_a_shipment_is_dispatched_once() -> None:
    planned = a_planned_shipment()
    left = datetime(2026, 11, 30, 9, 15, tzinfo=UTC)

    assert planned.dispatch("web-000123", left) is True
    assert planned.dispatch("web-000123", datetime(2026, 11, 30, 10, 0, tzinfo=UTC)) is False
    assert planned.dispatched_at == left


def test_a_dispatch_naming_another_order_is_refused_with_both_orders_named() -> None:
    planned = a_planned_shipment()

    with pytest.raises(NotThisOrdersShipment) as refused:
        planned.dispatch("web-000999", datetime(2026, 11, 30, 9, 15, tzinfo=UTC))

    assert "web-000123-1" in str(refused.value)
    assert "web-000999" in str(refused.value)
    assert not planned.dispatched


# --- stop rules: verdicts of other services ---------------------------------------------------


@pytest.mark.parametrize(
    ("verdict", "stops_as"),
    [
        (OrderState.CANCELLED, State.CANCELLED),
        (OrderState.REJECTED, State.REJECTED),
        (OrderState.RECEIVED, None),
        (OrderState.AWAITING_APPROVAL, None),
        (OrderState.APPROVED, None),
        (OrderState.FULFILLMENT_PLANNED, None),
        (OrderState.SHIPPED, None),
        (OrderState.DELIVERED, None),
    ],
)
def test_only_a_cancellation_or_rejection_stops_an_order(
    verdict: OrderState, stops_as: State | None
) -> None:
    assert stopped_by(verdict) is stops_as


def test_a_stopped_order_is_one_cancelled_or_rejected() -> None:
    assert [state for state in State if Progress(state).stopped] == [
        State.CANCELLED,
        State.REJECTED,
    ]
    assert not Progress().stopped


# --- the state machine: what each trigger does to an order where it stands ---------------------


STOPPED = (State.CANCELLED, State.REJECTED)


@pytest.mark.parametrize(
    ("state", "step"),
    [
        (None, Step.PLAN),
        (State.WAITING_FOR_WAREHOUSE, Step.NOTHING),  # a replay: it waits already
        (State.PLANNED, Step.NOTHING),  # a replay plans nothing twice
        *((stopped, Step.NOTHING) for stopped in STOPPED),
    ],
)
def test_an_approval_plans_an_order_only_the_first_time(state: State | None, step: Step) -> None:
    assert Progress(state).step(Trigger.APPROVAL) is step


@pytest.mark.parametrize(
    ("state", "step"),
    [
        (None, Step.KEEP),  # the approval has not come yet: the fill ships with the plan
        (State.WAITING_FOR_WAREHOUSE, Step.KEEP),
        (State.PLANNED, Step.PLAN),  # a further shipment
        *((stopped, Step.NOTHING) for stopped in STOPPED),
    ],
)
def test_a_fill_ships_with_the_plan_or_after_it_but_never_for_a_stopped_order(
    state: State | None, step: Step
) -> None:
    assert Progress(state).step(Trigger.FILL) is step


@pytest.mark.parametrize(
    ("state", "step"),
    [
        (None, Step.NOTHING),
        (State.WAITING_FOR_WAREHOUSE, Step.PLAN),  # the waiting approval is planned
        (State.PLANNED, Step.PLAN),  # its fills held for that warehouse are planned
        *((stopped, Step.NOTHING) for stopped in STOPPED),
    ],
)
def test_a_warehouse_arriving_plans_what_waited_for_it(state: State | None, step: Step) -> None:
    assert Progress(state).step(Trigger.WAREHOUSE_KNOWN) is step


@pytest.mark.parametrize(
    ("state", "step"),
    [
        (None, Step.STOP),  # stopped before the approval came: it will not be planned
        (State.WAITING_FOR_WAREHOUSE, Step.STOP),
        (State.PLANNED, Step.STOP),  # recorded; the shipments stay planned
        *((stopped, Step.NOTHING) for stopped in STOPPED),  # the first verdict stands
    ],
)
def test_a_verdict_stops_an_order_once(state: State | None, step: Step) -> None:
    assert Progress(state).step(Trigger.STOP) is step


# --- edges ----------------------------------------------------------------------------------


def test_a_warehouse_not_known_here_yet_is_reported_not_guessed() -> None:
    with pytest.raises(UnknownWarehouse) as raised:
        plan(an_order(), [a_line("MUG-1", 1, "wh-hamburg")], WAREHOUSES, FRIDAY)

    assert raised.value.warehouse_id == "wh-hamburg"


def test_business_days_skip_saturday_and_sunday() -> None:
    assert add_business_days(FRIDAY, 1) == date(2026, 11, 30)
    assert add_business_days(SATURDAY, 0) == SATURDAY
    assert add_business_days(THURSDAY, SHIPPING.freight_lead_business_days) == date(2026, 12, 1)
