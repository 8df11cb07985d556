"""Fulfillment's own database: warehouses, what it knows of each order, planned shipments,
and backorder fills that arrived before their order could take them."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from functools import partial
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Integer,
    Numeric,
    String,
    Text,
    delete,
    func,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.fulfillment.domain import PlannedShipment, Progress, Site, State
from shared.batch_reads import find, forget_reads, read_ahead, read_once
from shared.contract import (
    BackorderFilled,
    OrderApproved,
    OrderStatusChanged,
    Shipment,
    ShipmentLine,
    ShipmentMode,
    Warehouse,
    WarehouseKind,
)
from shared.db import OrderRecord, as_utc, messaging_tables
from shared.reference_cache import read_reference


class Base(DeclarativeBase):
    pass


messaging_tables(Base.metadata)


class WarehouseRow(Base):
    __tablename__ = "warehouses"
    warehouse_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    country: Mapped[str] = mapped_column(String(2))
    postal_code: Mapped[str] = mapped_column(String(16))


class OrderRow(OrderRecord, Base):
    """What fulfillment knows of an order: planned, waiting, or stopped by another service.

    One row per order_id is what makes a replayed approval harmless: the second
    one finds the row and plans nothing.
    """

    __tablename__ = "orders"
    decided_by: Mapped[str] = mapped_column(String(40))
    approved_event: Mapped[str | None] = mapped_column(Text, nullable=True)
    """The approval the plan was made from: later fills are routed and reported with it."""


class ShipmentRow(Base):
    __tablename__ = "shipments"
    shipment_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.order_id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    mode: Mapped[str] = mapped_column(String(10))
    warehouse_id: Mapped[str] = mapped_column(String(64))
    carrier: Mapped[str] = mapped_column(String(40))
    service_level: Mapped[str] = mapped_column(String(40))
    tracking_number: Mapped[str] = mapped_column(String(40), unique=True)
    promised_date: Mapped[date]
    delivery_window: Mapped[str | None] = mapped_column(String(20), nullable=True)
    pallets: Mapped[int | None] = mapped_column(Integer, nullable=True)
    weight_kg: Mapped[Decimal] = mapped_column(Numeric(14, 3))
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    dispatched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    """When the WMS said it left the dock; set once, so a repeated confirmation changes nothing."""


class WaitingOrderRow(Base):
    """An approval held back until the warehouse its stock sits in is known here."""

    __tablename__ = "waiting_orders"
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.order_id"), primary_key=True)
    warehouse_id: Mapped[str] = mapped_column(String(64), index=True)
    approved_event: Mapped[str] = mapped_column(Text)


class PendingFillRow(Base):
    """A backorder fill that cannot be planned yet: its order is not planned here, or the
    warehouse it sits in is not known here yet (`waiting_for_warehouse`).

    No foreign key to `orders`: a fill may come before the approval, and a row
    in `orders` would make that approval look like a replay.
    """

    __tablename__ = "pending_fills"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    order_id: Mapped[str] = mapped_column(String(64), index=True)
    waiting_for_warehouse: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    fill_event: Mapped[str] = mapped_column(Text)


# --- reference data ---------------------------------------------------------------------


WAREHOUSES_READ = "warehouses"


async def save_warehouse(session: AsyncSession, warehouse: Warehouse) -> None:
    forget_reads(session, WAREHOUSES_READ)
    await session.merge(
        WarehouseRow(
            warehouse_id=warehouse.warehouse_id,
            name=warehouse.name,
            kind=warehouse.kind.value,
            country=warehouse.country,
            postal_code=warehouse.postal_code,
        )
    )


async def sites(session: AsyncSession, warehouse_ids: set[str]) -> dict[str, Site]:
    """The known warehouses of `warehouse_ids`; read once per transaction at most, and from
    the worker's `ReferenceCache` while it remembers them (`read_reference`)."""
    return await read_reference(
        session, WAREHOUSES_READ, warehouse_ids, partial(load_sites, session)
    )


async def load_sites(session: AsyncSession, warehouse_ids: set[str]) -> dict[str, Site]:
    rows = await session.scalars(
        select(WarehouseRow).where(WarehouseRow.warehouse_id.in_(warehouse_ids))
    )
    return {
        row.warehouse_id: Site(row.warehouse_id, WarehouseKind(row.kind), row.country)
        for row in rows
    }


# --- orders ------------------------------------------------------------------------------

FILLS_READ = "pending_fills"
"""`read_once`'s name for the fills held per order; whatever keeps or drops a fill forgets it."""


async def progress_of(session: AsyncSession, order_id: str) -> Progress:
    """Where the order stands here; no state if fulfillment has not heard of it."""
    row = await find(session, OrderRow, order_id)
    return Progress() if row is None else Progress(State(row.state), row.decided_by)


async def read_orders_ahead(session: AsyncSession, order_ids: Iterable[str]) -> None:
    """Where each order of a batch of approvals stands and the fills held for it: two
    statements for the batch."""
    wanted = set(order_ids)
    await read_ahead(session, OrderRow, wanted)
    await read_once(session, FILLS_READ, wanted, partial(load_pending_fills, session))


async def remember_order(
    session: AsyncSession,
    order_id: str,
    account_id: str | None,
    channel: str | None,
    state: State,
    decided_by: str,
    *,
    new: bool = False,
    approved_event: str | None = None,
) -> OrderRow:
    """Insert or update the order's row with the state the handler moved it to; `new` when
    the handler already knows there is none (a lookup less)."""
    row = None if new else await find(session, OrderRow, order_id)
    if row is None:
        row = OrderRow(order_id=order_id, account_id=account_id, channel=channel)
        session.add(row)
    row.state = state.value
    row.decided_by = decided_by
    if approved_event is not None:
        row.approved_event = approved_event
    return row


async def record_plan(
    session: AsyncSession,
    approved: OrderApproved,
    shipments: list[Shipment],
    decided_by: str,
    before: Progress,
    held_fills: bool,
) -> None:
    """The order is planned: keep its approval for later fills, and its first shipments.

    What the order was `before` says what there is to clear: only an order that
    waited for its warehouse has a waiting row, only one with `held_fills` has
    fills to drop, and an order planned for the first time has no shipments yet.
    """
    order = approved.order
    await remember_order(
        session,
        order.order_id,
        order.account_id,
        order.channel.value,
        State.PLANNED,
        decided_by,
        new=before.state is None,
        approved_event=approved.model_dump_json(by_alias=True),
    )
    if before.state is State.WAITING_FOR_WAREHOUSE:
        await stop_waiting(session, order.order_id)
    if held_fills:
        await drop_pending_fills(session, order.order_id)
    await number_shipments(session, order.order_id, shipments, planned_before=0)


async def record_stop(session: AsyncSession, verdict: OrderStatusChanged, state: State) -> None:
    """Another service stopped the order: it waits for nothing more, and held fills go."""
    order_id = verdict.order_id
    await stop_waiting(session, order_id)
    await drop_pending_fills(session, order_id)
    channel = verdict.channel.value if verdict.channel else None
    await remember_order(session, order_id, verdict.account_id, channel, state, verdict.reported_by)


async def approval_of(session: AsyncSession, order_id: str) -> OrderApproved | None:
    """The approval the order was planned from; None while it is not planned."""
    row = await session.get(OrderRow, order_id)
    if row is None or row.approved_event is None:
        return None
    return OrderApproved.model_validate_json(row.approved_event)


async def shipment_count(session: AsyncSession, order_id: str) -> int:
    """How many shipments the order has, so the next one is numbered after them."""
    count = await session.scalar(
        select(func.count()).select_from(ShipmentRow).where(ShipmentRow.order_id == order_id)
    )
    return int(count or 0)


async def add_shipments(session: AsyncSession, order_id: str, shipments: list[Shipment]) -> None:
    """Append shipments to the order's, after the ones it already has."""
    planned_before = await shipment_count(session, order_id)
    await number_shipments(session, order_id, shipments, planned_before)


async def number_shipments(
    session: AsyncSession, order_id: str, shipments: list[Shipment], planned_before: int
) -> None:
    for position, shipment in enumerate(shipments, start=planned_before + 1):
        session.add(
            ShipmentRow(
                shipment_id=shipment.shipment_id,
                order_id=order_id,
                position=position,
                mode=shipment.mode.value,
                warehouse_id=shipment.warehouse_id,
                carrier=shipment.carrier,
                service_level=shipment.service_level,
                tracking_number=shipment.tracking_number,
                promised_date=shipment.promised_date,
                delivery_window=shipment.delivery_window,
                pallets=shipment.pallets,
                weight_kg=shipment.weight_kg,
                lines=[line.model_dump(mode="json") for line in shipment.lines],
            )
        )


def _planned(row: ShipmentRow) -> PlannedShipment:
    return PlannedShipment(
        order_id=row.order_id,
        shipment=Shipment(
            shipment_id=row.shipment_id,
            mode=ShipmentMode(row.mode),
            warehouse_id=row.warehouse_id,
            carrier=row.carrier,
            service_level=row.service_level,
            tracking_number=row.tracking_number,
            promised_date=row.promised_date,
            delivery_window=row.delivery_window,
            pallets=row.pallets,
            weight_kg=row.weight_kg,
            lines=[ShipmentLine.model_validate(line) for line in row.lines],
        ),
        dispatched_at=as_utc(row.dispatched_at) if row.dispatched_at else None,
    )


async def shipments_of(session: AsyncSession, order_id: str) -> list[PlannedShipment]:
    rows = await session.scalars(
        select(ShipmentRow).where(ShipmentRow.order_id == order_id).order_by(ShipmentRow.position)
    )
    return [_planned(row) for row in rows]


async def find_shipment(session: AsyncSession, shipment_id: str) -> PlannedShipment | None:
    row = await session.get(ShipmentRow, shipment_id)
    return None if row is None else _planned(row)


async def save_dispatch(session: AsyncSession, planned: PlannedShipment) -> None:
    row = await session.get(ShipmentRow, planned.shipment.shipment_id)
    if row is None:
        raise LookupError(f"shipment {planned.shipment.shipment_id!r} is not stored")
    row.dispatched_at = planned.dispatched_at


# --- backorder fills that cannot be planned yet -------------------------------------------


async def keep_fill(
    session: AsyncSession, fill: BackorderFilled, waiting_for_warehouse: str | None = None
) -> None:
    """Hold a fill until its order is planned, or (for a planned order) its warehouse is known."""
    forget_reads(session, FILLS_READ)
    row = await session.scalar(
        select(PendingFillRow).where(PendingFillRow.event_id == str(fill.event_id))
    )
    if row is None:
        row = PendingFillRow(
            event_id=str(fill.event_id),
            order_id=fill.order_id,
            fill_event=fill.model_dump_json(by_alias=True),
        )
        session.add(row)
    row.waiting_for_warehouse = waiting_for_warehouse
    await session.flush()


async def pending_fills(session: AsyncSession, order_id: str) -> list[BackorderFilled]:
    """The order's held fills, in the order they arrived."""
    held = await read_once(session, FILLS_READ, {order_id}, partial(load_pending_fills, session))
    return held.get(order_id, [])


async def load_pending_fills(
    session: AsyncSession, order_ids: set[str]
) -> dict[str, list[BackorderFilled]]:
    rows = await session.scalars(
        select(PendingFillRow)
        .where(PendingFillRow.order_id.in_(order_ids))
        .order_by(PendingFillRow.id)
    )
    held: dict[str, list[BackorderFilled]] = {}
    for row in rows:
        held.setdefault(row.order_id, []).append(
            BackorderFilled.model_validate_json(row.fill_event)
        )
    return held


async def fills_waiting_for(session: AsyncSession, warehouse_id: str) -> list[BackorderFilled]:
    """Fills of planned orders held back for this warehouse, in the order they arrived."""
    rows = await session.scalars(
        select(PendingFillRow)
        .where(PendingFillRow.waiting_for_warehouse == warehouse_id)
        .order_by(PendingFillRow.id)
    )
    return [BackorderFilled.model_validate_json(row.fill_event) for row in rows]


async def drop_fill(session: AsyncSession, fill: BackorderFilled) -> None:
    forget_reads(session, FILLS_READ)
    await session.execute(
        delete(PendingFillRow).where(PendingFillRow.event_id == str(fill.event_id))
    )


async def drop_pending_fills(session: AsyncSession, order_id: str) -> None:
    forget_reads(session, FILLS_READ)
    await session.execute(delete(PendingFillRow).where(PendingFillRow.order_id == order_id))


# --- approvals waiting for reference data --------------------------------------------------


async def wait_for_warehouse(
    session: AsyncSession, approved: OrderApproved, warehouse_id: str, decided_by: str
) -> None:
    order = approved.order
    await remember_order(
        session,
        order.order_id,
        order.account_id,
        order.channel.value,
        State.WAITING_FOR_WAREHOUSE,
        decided_by,
    )
    await session.merge(
        WaitingOrderRow(
            order_id=order.order_id,
            warehouse_id=warehouse_id,
            approved_event=approved.model_dump_json(by_alias=True),
        )
    )


async def waiting_for(session: AsyncSession, warehouse_id: str) -> list[OrderApproved]:
    """Approvals held back for this warehouse, by order id so a replay plans them alike."""
    rows = await session.scalars(
        select(WaitingOrderRow)
        .where(WaitingOrderRow.warehouse_id == warehouse_id)
        .order_by(WaitingOrderRow.order_id)
    )
    return [OrderApproved.model_validate_json(row.approved_event) for row in rows]


async def stop_waiting(session: AsyncSession, order_id: str) -> None:
    await session.execute(delete(WaitingOrderRow).where(WaitingOrderRow.order_id == order_id))
