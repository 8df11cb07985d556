"""Fulfillment's rules: how an approved order leaves the warehouses that hold its stock.

Pure functions over plain data, no clock: the handler passes `today` from the
event, so a redelivered approval plans exactly the same shipments, tracking
numbers and promised dates as the first delivery did.

Catalog already chose a warehouse per line (B2B from a central DC, B2C from
nearby); fulfillment groups the lines by that warehouse and decides, per
shipment, between **bulk** freight (pallets, a scheduled delivery window) and
**retail** parcels (a carrier by delivery speed, a promised date).

Only what is on the shelf ships: the in-stock part of each approved line first,
and each backorder fill later as a shipment of its own, numbered after the
order's earlier ones. The WMS then confirms each shipment leaving the dock once.

What fulfillment does with each event depends on where the order stands with it
(`Progress`): planned, waiting for a warehouse, or stopped by another service's
verdict (`STOPPED`); the whole state machine is the table `STEPS`.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import ROUND_CEILING, Decimal
from enum import StrEnum
from types import MappingProxyType

from shared.contract import (
    Channel,
    DeliverySpeed,
    Order,
    OrderState,
    ReservedLine,
    Shipment,
    ShipmentLine,
    ShipmentMode,
    WarehouseKind,
)

SATURDAY = 5
"""`date.weekday()` of the first weekend day; carriers and docks work Monday to Friday."""


@dataclass(frozen=True)
class ParcelService:
    """A parcel carrier's product for one delivery speed."""

    carrier: str
    transit_business_days: int


@dataclass(frozen=True)
class ShippingRules:
    """Every limit, carrier and lead time fulfillment decides by, in one table.

    Kept together so the shipping policy can be read (and changed) in one place
    instead of being scattered through the routing code as magic numbers.
    """

    parcel_limit_kg: Decimal = Decimal("31.5")
    """Heaviest shipment a parcel carrier takes (the common 31.5 kg cap); above it, freight."""

    full_truckload_above_kg: Decimal = Decimal("10000")
    """Above this a shipment fills a truck of its own (FTL); up to it, it shares one (LTL)."""

    pallet_capacity_kg: Decimal = Decimal("500")
    """Load planned per pallet; a freight shipment uses ceil(weight / this), at least one."""

    freight_lead_business_days: int = 3
    """Business days to palletise and book a truck: the earliest a freight delivery can be."""

    freight_carrier_ltl: str = "freight-ltl"
    freight_carrier_ftl: str = "freight-ftl"
    freight_service_level: str = "scheduled"

    freight_delivery_window: str = "08:00-12:00"
    """Default morning window for dock unloading: receiving docks staff their crews early."""

    parcel_services: Mapping[DeliverySpeed, ParcelService] = field(
        default_factory=lambda: MappingProxyType(
            {
                DeliverySpeed.EXPRESS: ParcelService("parcel-express", 1),
                DeliverySpeed.STANDARD: ParcelService("parcel-standard", 2),
                DeliverySpeed.ECONOMY: ParcelService("parcel-economy", 4),
            }
        )
    )
    """Carrier and transit time per delivery speed the shop offered at checkout."""


SHIPPING = ShippingRules()


@dataclass(frozen=True)
class Site:
    """A warehouse fulfillment knows from the `warehouses` reference topic."""

    warehouse_id: str
    kind: WarehouseKind
    country: str


class UnknownWarehouse(Exception):
    """A line was reserved in a warehouse whose reference data has not arrived here yet.

    Catalog only reserves in warehouses it knows, so this is a lag between two
    consumers of the same topic (typically a fresh start), not a bad order.
    """

    def __init__(self, warehouse_id: str) -> None:
        super().__init__(f"warehouse {warehouse_id!r} is not known to fulfillment yet")
        self.warehouse_id = warehouse_id


@dataclass(frozen=True)
class ReadyLine:
    """Units of one order line that sit in a warehouse now and can leave it.

    An approved line and a backorder fill both say "quantity", but mean
    different things by it (ordered units, units this fill reserved); this is
    what both come down to: what ships.
    """

    sku: str
    quantity: int
    warehouse_id: str
    unit_weight_kg: Decimal
    line_no: int | None = None

    @property
    def weight_kg(self) -> Decimal:
        return self.unit_weight_kg * self.quantity


def ready_to_ship(
    approved: Iterable[ReservedLine], earlier_fills: Iterable[Sequence[ReservedLine]] = ()
) -> list[ReadyLine]:
    """What an approved order can ship now: each line's in-stock part, plus fills that came first.

    A line wholly on backorder ships nothing yet; its stock comes with a fill.
    Fills catalog sent before the approval reached us are already on the shelf,
    so they ship with the first plan instead of waiting for a fill of their own.
    """
    in_stock = [
        ReadyLine(line.sku, line.in_stock, line.warehouse_id, line.unit_weight_kg, line.line_no)
        for line in approved
        if line.in_stock > 0
    ]
    return in_stock + [ready for fill in earlier_fills for ready in filled(fill)]


def filled(fill: Iterable[ReservedLine]) -> list[ReadyLine]:
    """What a backorder fill put on the shelf: each line's `quantity`, all of it.

    Not `in_stock`: every unit a fill names was reserved by it, so none of them
    is missing; `backordered` on a fill line never takes units off this shipment.
    """
    return [
        ReadyLine(line.sku, line.quantity, line.warehouse_id, line.unit_weight_kg, line.line_no)
        for line in fill
    ]


def route_shipment(
    order: Order,
    lines: Sequence[ReadyLine],
    warehouses: Mapping[str, Site],
    today: date,
    planned_before: int = 0,
) -> list[Shipment]:
    """Plan one shipment per warehouse that holds units ready to ship.

    Shipments are numbered in warehouse-id order after the `planned_before`
    shipments the order already has, so the same order always gets the same
    shipment ids whatever order its lines came in, and a later fill's shipment
    never reuses an earlier id. Nothing ready means no shipments.
    """
    by_warehouse: dict[str, list[ReadyLine]] = defaultdict(list)
    for line in lines:
        by_warehouse[line.warehouse_id].append(line)
    unknown = sorted(set(by_warehouse) - set(warehouses))
    if unknown:
        raise UnknownWarehouse(unknown[0])
    return [
        plan_shipment(order, shipment_id(order.order_id, number), warehouse_id, shipped, today)
        for number, (warehouse_id, shipped) in enumerate(
            sorted(by_warehouse.items()), start=planned_before + 1
        )
    ]


def shipment_id(order_id: str, number: int) -> str:
    """`{order_id}-{n}`: n counts the order's shipments from 1, across fills."""
    return f"{order_id}-{number}"


def same_lines_together(lines: Sequence[ReadyLine]) -> list[ReadyLine]:
    """One entry per order line: an in-stock part and a fill of the same line ship as one.

    Lines stay in the order they were first seen, so the label lists them as the shop did.
    Lines without a number (events from before `line_no`) merge by SKU.
    """
    merged: dict[tuple[int | None, str], ReadyLine] = {}
    for line in lines:
        key = (line.line_no, line.sku)
        seen = merged.get(key)
        merged[key] = (
            line if seen is None else replace(seen, quantity=seen.quantity + line.quantity)
        )
    return list(merged.values())


@dataclass(frozen=True)
class Carriage:
    """How one shipment travels: what differs between a freight booking and a parcel label."""

    mode: ShipmentMode
    carrier: str
    service_level: str
    promised_date: date
    delivery_window: str | None = None
    pallets: int | None = None


def plan_shipment(
    order: Order,
    shipment_id: str,
    warehouse_id: str,
    lines: Sequence[ReadyLine],
    today: date,
    rules: ShippingRules = SHIPPING,
) -> Shipment:
    """One warehouse's part of the order, as freight or as a parcel, weighed as it ships."""
    lines = same_lines_together(lines)
    weight = shipment_weight(lines)
    carriage = (
        freight(order, weight, today, rules)
        if ships_as_freight(order.channel, weight, rules)
        else parcel(order, today, rules)
    )
    return Shipment(
        shipment_id=shipment_id,
        mode=carriage.mode,
        warehouse_id=warehouse_id,
        carrier=carriage.carrier,
        service_level=carriage.service_level,
        tracking_number=tracking_number(shipment_id),
        promised_date=carriage.promised_date,
        delivery_window=carriage.delivery_window,
        pallets=carriage.pallets,
        weight_kg=weight,
        lines=[
            ShipmentLine(sku=line.sku, quantity=line.quantity, line_no=line.line_no)
            for line in lines
        ],
    )


def freight(order: Order, weight_kg: Decimal, today: date, rules: ShippingRules) -> Carriage:
    """Bulk: palletised, LTL or FTL by weight, delivered in a scheduled dock window."""
    return Carriage(
        mode=ShipmentMode.FREIGHT,
        carrier=freight_carrier(weight_kg, rules),
        service_level=rules.freight_service_level,
        promised_date=freight_delivery_date(order.delivery.requested_date, today, rules),
        delivery_window=rules.freight_delivery_window,
        pallets=pallets_for(weight_kg, rules),
    )


def parcel(order: Order, today: date, rules: ShippingRules) -> Carriage:
    """Retail: the carrier and promised date follow the speed the consumer chose at checkout."""
    service = rules.parcel_services[order.delivery.speed]
    return Carriage(
        mode=ShipmentMode.PARCEL,
        carrier=service.carrier,
        service_level=order.delivery.speed.value,
        promised_date=add_business_days(today, service.transit_business_days),
    )


def shipment_weight(lines: Iterable[ReadyLine]) -> Decimal:
    """Gross weight of the units that ship, exact in Decimal (it decides parcel vs freight).

    Backordered units are not in the truck, so they weigh nothing here.
    """
    return sum((line.weight_kg for line in lines), Decimal(0))


def ships_as_freight(channel: Channel, weight_kg: Decimal, rules: ShippingRules = SHIPPING) -> bool:
    """Businesses unload at a dock, so B2B is freight; so is anything too heavy for a parcel."""
    return channel is Channel.B2B or weight_kg > rules.parcel_limit_kg


def freight_carrier(weight_kg: Decimal, rules: ShippingRules = SHIPPING) -> str:
    return (
        rules.freight_carrier_ftl
        if weight_kg > rules.full_truckload_above_kg
        else rules.freight_carrier_ltl
    )


def pallets_for(weight_kg: Decimal, rules: ShippingRules = SHIPPING) -> int:
    """Pallets to book: a partly loaded pallet still takes a whole pallet space."""
    pallets = (weight_kg / rules.pallet_capacity_kg).to_integral_value(rounding=ROUND_CEILING)
    return max(1, int(pallets))


def freight_delivery_date(
    requested: date | None, today: date, rules: ShippingRules = SHIPPING
) -> date:
    """The buyer's requested date when we can make it, else the earliest date we can.

    A requested date on a weekend moves to the following Monday: docks unload on
    business days only.
    """
    earliest = add_business_days(today, rules.freight_lead_business_days)
    if requested is None or requested < earliest:
        return earliest
    return first_business_day_from(requested)


def add_business_days(start: date, days: int) -> date:
    """`days` working days after `start`, skipping Saturdays and Sundays."""
    day = start
    while days > 0:
        day += timedelta(days=1)
        if day.weekday() < SATURDAY:
            days -= 1
    return day


def first_business_day_from(day: date) -> date:
    while day.weekday() >= SATURDAY:
        day += timedelta(days=1)
    return day


def tracking_number(shipment_id: str) -> str:
    """Derived, not random: a redelivered event must hand the shop the same number.

    From the shipment, not the order and warehouse: a fill ships a second parcel
    from the same warehouse, and each parcel needs a number of its own.
    """
    digest = hashlib.sha256(f"shipment:{shipment_id}".encode()).hexdigest()
    return "TL" + digest[:12].upper()


# --- where an order stands with fulfillment --------------------------------------------------


class State(StrEnum):
    """Where an order stands with fulfillment; an order it has not heard of has no state (None)."""

    PLANNED = "planned"
    """Its shipments are planned (maybe none yet, all on backorder); fills add more."""
    WAITING_FOR_WAREHOUSE = "waiting_for_warehouse"
    """Approved, but its stock sits in a warehouse not known here yet: planned when it arrives."""
    CANCELLED = "cancelled"
    REJECTED = "rejected"


STOPPED: Mapping[OrderState, State] = MappingProxyType(
    {OrderState.CANCELLED: State.CANCELLED, OrderState.REJECTED: State.REJECTED}
)
"""Verdicts of other services that mean an order must not ship, and the state each leaves."""
STOPPED_STATES = frozenset(STOPPED.values())


def stopped_by(verdict: OrderState) -> State | None:
    """The state another service's verdict puts an order in, if the order must not ship."""
    return STOPPED.get(verdict)


class Trigger(StrEnum):
    """What can happen to an order while fulfillment has it."""

    APPROVAL = "approval"
    """`orders.approved`: the order may ship."""
    WAREHOUSE_KNOWN = "warehouse_known"
    """`warehouses`: the site a waiting order, or a planned order's held fill, needs arrived."""
    FILL = "fill"
    """`orders.backorder_filled`: catalog holds arriving stock for the order's backorders."""
    STOP = "stop"
    """`orders.status.ended`: another service cancelled or rejected the order (`STOPPED`)."""


class Step(StrEnum):
    """What fulfillment does about a trigger."""

    PLAN = "plan"
    """Route what is on the shelf and report it: the order is then PLANNED, or
    WAITING_FOR_WAREHOUSE while a warehouse it needs is not known here."""
    KEEP = "keep"
    """Hold the fill until the order is planned: it ships with the first plan."""
    STOP = "stop"
    """Record the verdict: nothing more is planned (shipments already planned stay planned)."""
    NOTHING = "nothing"
    """A replay, or an order that was stopped: nothing changes."""


STEPS: Mapping[tuple[State | None, Trigger], Step] = MappingProxyType(
    {
        (None, Trigger.APPROVAL): Step.PLAN,
        (None, Trigger.FILL): Step.KEEP,
        (None, Trigger.STOP): Step.STOP,
        (State.WAITING_FOR_WAREHOUSE, Trigger.WAREHOUSE_KNOWN): Step.PLAN,
        (State.WAITING_FOR_WAREHOUSE, Trigger.FILL): Step.KEEP,
        (State.WAITING_FOR_WAREHOUSE, Trigger.STOP): Step.STOP,
        (State.PLANNED, Trigger.FILL): Step.PLAN,
        (State.PLANNED, Trigger.WAREHOUSE_KNOWN): Step.PLAN,
        (State.PLANNED, Trigger.STOP): Step.STOP,
    }
)
"""Fulfillment's state machine: every (state, trigger) not listed changes nothing.

An approval plans an order only the first time fulfillment hears of it, so a
replay plans nothing twice; a fill of a planned order is planned as a further
shipment; a stopped order takes nothing more, and its first verdict stands.
Dispatches are not in it: they go by shipment (`PlannedShipment.dispatch`), and
a shipment that left is reported whatever the order's state.
"""


@dataclass(frozen=True)
class Progress:
    """Where one order stands with fulfillment, and which service put it there."""

    state: State | None = None
    decided_by: str | None = None

    @property
    def stopped(self) -> bool:
        return self.state in STOPPED_STATES

    def step(self, trigger: Trigger) -> Step:
        return STEPS.get((self.state, trigger), Step.NOTHING)


# --- dispatch ---------------------------------------------------------------------------------


class DispatchRefused(Exception):
    """A dispatch confirmation fulfillment cannot apply: the WMS and our plan disagree.

    Never guessed around: the message is parked on the dead-letter topic with
    this text, for ops to compare the WMS with `GET /shipments/{order_id}`.
    """


class UnknownShipment(DispatchRefused):
    def __init__(self, shipment_id: str, order_id: str) -> None:
        super().__init__(
            f"shipment {shipment_id!r} (order {order_id!r}) was never planned by fulfillment"
        )
        self.shipment_id = shipment_id


class NotThisOrdersShipment(DispatchRefused):
    def __init__(self, shipment_id: str, planned_for: str, named: str) -> None:
        super().__init__(
            f"shipment {shipment_id!r} belongs to order {planned_for!r}, "
            f"but the dispatch names order {named!r}"
        )
        self.shipment_id = shipment_id


@dataclass
class PlannedShipment:
    """A shipment fulfillment planned, and whether the WMS has confirmed it left the dock."""

    order_id: str
    shipment: Shipment
    dispatched_at: datetime | None = None

    @property
    def dispatched(self) -> bool:
        return self.dispatched_at is not None

    def dispatch(self, order_id: str, at: datetime) -> bool:
        """Record that the shipment left; False if it already had (a repeated confirmation).

        A shipment leaves once, so the order is reported `shipped` once per
        shipment however often the WMS confirms it.
        """
        if order_id != self.order_id:
            raise NotThisOrdersShipment(self.shipment.shipment_id, self.order_id, order_id)
        if self.dispatched_at is not None:
            return False
        self.dispatched_at = at
        return True
