"""Catalog's own database: products, warehouses, stock levels, orders and reservations."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from sqlalchemy import JSON, ForeignKey, Integer, String, Text, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.catalog.domain import Allocation, CatalogItem, StockAt
from shared.contract import Account, Channel, Product, StockLevel, Warehouse, WarehouseKind
from shared.db import ExactDecimal, messaging_tables


class Base(DeclarativeBase):
    pass


messaging_tables(Base.metadata)


class ProductRow(Base):
    __tablename__ = "products"
    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool]
    channels: Mapped[list[str]] = mapped_column(JSON)
    unit_weight_kg: Mapped[Decimal] = mapped_column(ExactDecimal)
    details: Mapped[str] = mapped_column(Text)
    """The whole `catalog.products` event as PIM sent it, for `GET /products/{sku}`."""


class WarehouseRow(Base):
    __tablename__ = "warehouses"
    warehouse_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    country: Mapped[str] = mapped_column(String(2))


class StockRow(Base):
    """`reserved` changes only under a guarded UPDATE: `on_hand - reserved` never drops below 0."""

    __tablename__ = "stock"
    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    warehouse_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    on_hand: Mapped[int] = mapped_column(Integer)
    reserved: Mapped[int] = mapped_column(Integer, default=0)


class AccountRow(Base):
    __tablename__ = "accounts"
    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    assortment: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)


class OrderRow(Base):
    """What catalog knows of an order: enough to answer re-submissions and cancellations."""

    __tablename__ = "orders"
    order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str | None] = mapped_column(String(3), nullable=True)
    state: Mapped[str] = mapped_column(String(20))


class ReservationRow(Base):
    __tablename__ = "reservations"
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.order_id"), primary_key=True)
    line_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    sku: Mapped[str] = mapped_column(String(64))
    warehouse_id: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(10))  # held | released


class OrderStates:
    RESERVED = "reserved"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    RELEASED = "released"
    FULFILLING = "fulfilling"


class StockTaken(Exception):
    """Another order took the stock between planning and holding it."""


# --- reference data ---------------------------------------------------------------------


async def save_product(session: AsyncSession, product: Product) -> None:
    await session.merge(
        ProductRow(
            sku=product.sku,
            name=product.name,
            category=product.category,
            active=product.active,
            channels=[c.value for c in product.channels],
            unit_weight_kg=product.unit_weight_kg,
            details=product.model_dump_json(by_alias=True),
        )
    )


async def save_warehouse(session: AsyncSession, warehouse: Warehouse) -> None:
    await session.merge(
        WarehouseRow(
            warehouse_id=warehouse.warehouse_id,
            kind=warehouse.kind.value,
            country=warehouse.country,
        )
    )


async def save_account(session: AsyncSession, account: Account) -> None:
    await session.merge(AccountRow(account_id=account.account_id, assortment=account.assortment))


async def save_stock_level(session: AsyncSession, level: StockLevel) -> None:
    """The WMS sends absolute on-hand levels; reservations made here are kept."""
    row = await session.get(StockRow, (level.sku, level.warehouse_id))
    if row is None:
        session.add(
            StockRow(
                sku=level.sku, warehouse_id=level.warehouse_id, on_hand=level.on_hand, reserved=0
            )
        )
    else:
        row.on_hand = level.on_hand


# --- reads for the rules -------------------------------------------------------------------


async def catalog_items(session: AsyncSession, skus: set[str]) -> dict[str, CatalogItem]:
    rows = await session.scalars(select(ProductRow).where(ProductRow.sku.in_(skus)))
    return {
        row.sku: CatalogItem(
            row.sku,
            row.category,
            row.active,
            frozenset(Channel(c) for c in row.channels),
            row.unit_weight_kg,
        )
        for row in rows
    }


async def assortment_of(session: AsyncSession, account_id: str) -> frozenset[str] | None:
    row = await session.get(AccountRow, account_id)
    return None if row is None or row.assortment is None else frozenset(row.assortment)


async def free_stock(session: AsyncSession, skus: set[str]) -> dict[str, list[StockAt]]:
    """Free stock per SKU in every known warehouse (stock in an unknown warehouse can't ship)."""
    rows = await session.execute(
        select(StockRow, WarehouseRow)
        .join(WarehouseRow, WarehouseRow.warehouse_id == StockRow.warehouse_id)
        .where(StockRow.sku.in_(skus))
    )
    stock: dict[str, list[StockAt]] = defaultdict(list)
    for level, site in rows.tuples():
        stock[level.sku].append(
            StockAt(
                site.warehouse_id,
                WarehouseKind(site.kind),
                site.country,
                level.on_hand - level.reserved,
            )
        )
    return stock


async def find_product(session: AsyncSession, sku: str) -> Product | None:
    row = await session.get(ProductRow, sku)
    return None if row is None else Product.model_validate_json(row.details)


async def stock_by_warehouse(
    session: AsyncSession, skus: set[str]
) -> dict[str, list[tuple[str, int, int]]]:
    """(warehouse, on hand, reserved) per SKU, in known warehouses, sorted by warehouse."""
    rows = await session.execute(
        select(StockRow.sku, StockRow.warehouse_id, StockRow.on_hand, StockRow.reserved)
        .join(WarehouseRow, WarehouseRow.warehouse_id == StockRow.warehouse_id)
        .where(StockRow.sku.in_(skus))
        .order_by(StockRow.sku, StockRow.warehouse_id)
    )
    found: dict[str, list[tuple[str, int, int]]] = defaultdict(list)
    for sku, warehouse_id, on_hand, reserved in rows.tuples():
        found[sku].append((warehouse_id, on_hand, reserved))
    return found


async def find_order(session: AsyncSession, order_id: str) -> OrderRow | None:
    return await session.get(OrderRow, order_id)


# --- changes -----------------------------------------------------------------------------


async def record_order(
    session: AsyncSession, order_id: str, account_id: str, channel: str | None, state: str
) -> OrderRow:
    row = OrderRow(order_id=order_id, account_id=account_id, channel=channel, state=state)
    session.add(row)
    await session.flush()
    return row


async def hold_stock(session: AsyncSession, order_id: str, allocations: list[Allocation]) -> None:
    """Hold every allocation or none: a guarded UPDATE per line inside a savepoint.

    The guard (`on_hand - reserved >= quantity`) is what prevents oversell when two
    workers plan against the same free stock at once; raises `StockTaken` if it trips.
    """
    async with session.begin_nested():
        for allocation in allocations:
            result = await session.execute(
                update(StockRow)
                .where(
                    StockRow.sku == allocation.sku,
                    StockRow.warehouse_id == allocation.warehouse_id,
                    StockRow.on_hand - StockRow.reserved >= allocation.quantity,
                )
                .values(reserved=StockRow.reserved + allocation.quantity)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                raise StockTaken(allocation.sku)
            session.add(
                ReservationRow(
                    order_id=order_id,
                    line_no=allocation.line_no,
                    sku=allocation.sku,
                    warehouse_id=allocation.warehouse_id,
                    quantity=allocation.quantity,
                    state="held",
                )
            )


async def release_stock(session: AsyncSession, order_id: str) -> int:
    """Give back every unit still held for the order; returns how many units were released."""
    held = list(
        await session.scalars(
            select(ReservationRow).where(
                ReservationRow.order_id == order_id, ReservationRow.state == "held"
            )
        )
    )
    for reservation in held:
        await session.execute(
            update(StockRow)
            .where(
                StockRow.sku == reservation.sku, StockRow.warehouse_id == reservation.warehouse_id
            )
            .values(reserved=StockRow.reserved - reservation.quantity)
        )
        reservation.state = "released"
    return sum(r.quantity for r in held)
