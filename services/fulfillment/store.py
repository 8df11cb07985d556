"""Fulfillment's own database: warehouses, what it knows of each order, and planned shipments."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, Numeric, String, Text, delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.fulfillment.domain import Site
from shared.contract import (
    Order,
    OrderApproved,
    Shipment,
    ShipmentLine,
    ShipmentMode,
    Warehouse,
    WarehouseKind,
)
from shared.db import messaging_tables


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


class OrderRow(Base):
    """What fulfillment knows of an order: planned, waiting, or stopped by another service.

    One row per order_id is what makes a replayed approval harmless: the second
    one finds the row and plans nothing.
    """

    __tablename__ = "orders"
    order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    channel: Mapped[str | None] = mapped_column(String(3), nullable=True)
    state: Mapped[str] = mapped_column(String(30))
    decided_by: Mapped[str] = mapped_column(String(40))


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


class WaitingOrderRow(Base):
    """An approval held back until the warehouse its stock sits in is known here."""

    __tablename__ = "waiting_orders"
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.order_id"), primary_key=True)
    warehouse_id: Mapped[str] = mapped_column(String(64), index=True)
    approved_event: Mapped[str] = mapped_column(Text)


class OrderStates:
    PLANNED = "planned"
    WAITING_FOR_WAREHOUSE = "waiting_for_warehouse"
    CANCELLED = "cancelled"
    REJECTED = "rejected"


# --- reference data ---------------------------------------------------------------------


async def save_warehouse(session: AsyncSession, warehouse: Warehouse) -> None:
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
    rows = await session.scalars(
        select(WarehouseRow).where(WarehouseRow.warehouse_id.in_(warehouse_ids))
    )
    return {
        row.warehouse_id: Site(row.warehouse_id, WarehouseKind(row.kind), row.country)
        for row in rows
    }


# --- orders ------------------------------------------------------------------------------


async def find_order(session: AsyncSession, order_id: str) -> OrderRow | None:
    return await session.get(OrderRow, order_id)


async def remember_order(
    session: AsyncSession,
    order_id: str,
    account_id: str | None,
    channel: str | None,
    state: str,
    decided_by: str,
) -> OrderRow:
    """Insert or update the order's row; the latest verdict wins."""
    row = await session.get(OrderRow, order_id)
    if row is None:
        row = OrderRow(order_id=order_id, account_id=account_id, channel=channel)
        session.add(row)
    row.state = state
    row.decided_by = decided_by
    await session.flush()
    return row


async def record_plan(
    session: AsyncSession, order: Order, shipments: list[Shipment], decided_by: str
) -> None:
    await remember_order(
        session,
        order.order_id,
        order.account_id,
        order.channel.value,
        OrderStates.PLANNED,
        decided_by,
    )
    await stop_waiting(session, order.order_id)
    for position, shipment in enumerate(shipments, start=1):
        session.add(
            ShipmentRow(
                shipment_id=shipment.shipment_id,
                order_id=order.order_id,
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
                lines=[line.model_dump() for line in shipment.lines],
            )
        )


async def shipments_of(session: AsyncSession, order_id: str) -> list[Shipment]:
    rows = await session.scalars(
        select(ShipmentRow).where(ShipmentRow.order_id == order_id).order_by(ShipmentRow.position)
    )
    return [
        Shipment(
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
        )
        for row in rows
    ]


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
        OrderStates.WAITING_FOR_WAREHOUSE,
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
