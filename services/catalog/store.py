"""Catalog's own database: products, accounts, warehouses, stock, orders, their lines and
reservations.

Stock moves only through guarded UPDATEs on the `stock` row, and planning an
order locks the rows it reads (`SELECT … FOR UPDATE` on PostgreSQL; SQLite
serialises writers with `BEGIN IMMEDIATE`), so two catalog workers never
promise the same unit. Every unit is accounted for on its reservation line:
`quantity = held + backordered + committed + released` (`domain.LineUnits` says
how units move between those; this module writes down what it says).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import partial
from types import MappingProxyType
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    bindparam,
    case,
    func,
    inspect,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from services.catalog.domain import (
    OPEN_STAGES,
    Allocation,
    Assortment,
    BuyerTerms,
    CatalogItem,
    LineUnits,
    Stage,
    StockAt,
    WaitingLine,
    adjusted_on_hand,
)
from services.catalog.reorder import EarlierOrder
from shared.batch_reads import find, forget_reads, read_ahead, read_once
from shared.contract import (
    Account,
    Channel,
    OrderLine,
    Product,
    QuantityRule,
    ReservedLine,
    Shipment,
    StockAdjustment,
    StockLevel,
    Warehouse,
    WarehouseKind,
)
from shared.db import ExactDecimal, OrderRecord, messaging_tables
from shared.reference_cache import read_reference


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
    pack_size: Mapped[int] = mapped_column(Integer)
    quantity_rule: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    details: Mapped[str] = mapped_column(Text)
    """The whole `catalog.products` event as PIM sent it, for `GET /products/{sku}`."""


class WarehouseRow(Base):
    __tablename__ = "warehouses"
    warehouse_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    country: Mapped[str] = mapped_column(String(2))


class StockRow(Base):
    """`reserved` grows only under a guard: reserving never takes `on_hand - reserved` below 0."""

    __tablename__ = "stock"
    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    warehouse_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    on_hand: Mapped[int] = mapped_column(Integer)
    reserved: Mapped[int] = mapped_column(Integer, default=0)

    @property
    def free(self) -> int:
        return self.on_hand - self.reserved


class AccountRow(Base):
    __tablename__ = "accounts"
    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    assortment: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    assortment_categories: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    quantity_rules: Mapped[dict[str, dict[str, int]]] = mapped_column(JSON)
    allows_backorders: Mapped[bool] = mapped_column(Boolean)


class OrderRow(OrderRecord, Base):
    """What catalog knows of an order: enough to answer re-submissions and cancellations."""

    __tablename__ = "orders"
    # account_id is None when the id's first message was unreadable; state is a `domain.Stage`.
    fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """SHA-256 of the order's content, to tell a retry from a different order (order_identity)."""


class RequestedLineRow(Base):
    """A line as the shop asked for it (a reorder's: as resolved), the template of a reorder.

    Kept as long as the order's row: the inbox's retention does not touch it, so
    an order can be bought again months later.
    """

    __tablename__ = "requested_lines"
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.order_id"), primary_key=True)
    line_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    sku: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[int] = mapped_column(Integer)


class EarlyCancellationRow(Base):
    """A cancellation that arrived before its order: it applies only to that account's order."""

    __tablename__ = "early_cancellations"
    order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    reason: Mapped[str | None] = mapped_column(String(200), nullable=True)


class ReservationRow(Base):
    """One order line held in one warehouse, and where each of its units is now."""

    __tablename__ = "reservations"
    __table_args__ = (Index("ix_reservations_waiting", "sku", "warehouse_id", "waiting_since"),)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.order_id"), primary_key=True)
    line_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    sku: Mapped[str] = mapped_column(String(64))
    warehouse_id: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(200))
    unit_weight_kg: Mapped[Decimal] = mapped_column(ExactDecimal)
    quantity: Mapped[int] = mapped_column(Integer)
    held: Mapped[int] = mapped_column(Integer)
    backordered: Mapped[int] = mapped_column(Integer, default=0)
    committed: Mapped[int] = mapped_column(Integer, default=0)
    released: Mapped[int] = mapped_column(Integer, default=0)
    waiting_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    """When the line started waiting for stock; first come, first served. None: not waiting."""


class CommittedShipmentRow(Base):
    """Shipments whose units left on-hand stock: a repeated `shipped` deducts nothing twice."""

    __tablename__ = "committed_shipments"
    shipment_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(64))


class StockTaken(Exception):
    """Another order took the stock between planning and holding it (a bug if it ever shows)."""


@dataclass(frozen=True)
class UnitsMoved:
    """Units of one SKU in one warehouse that changed hands, for metrics and backorders."""

    sku: str
    warehouse_id: str
    category: str
    units: int


# --- reference data ---------------------------------------------------------------------


async def save_product(session: AsyncSession, product: Product) -> None:
    forget_reads(session, PRODUCTS_READ)
    await session.merge(
        ProductRow(
            sku=product.sku,
            name=product.name,
            category=product.category,
            active=product.active,
            channels=[c.value for c in product.channels],
            unit_weight_kg=product.unit_weight_kg,
            pack_size=product.pack_size,
            quantity_rule=(
                product.quantity_rule.model_dump(exclude_none=True)
                if product.quantity_rule
                else None
            ),
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
    forget_reads(session, ACCOUNTS_READ)
    await session.merge(
        AccountRow(
            account_id=account.account_id,
            assortment=account.assortment,
            assortment_categories=account.assortment_categories,
            quantity_rules={
                rule.sku: rule.model_dump(exclude_none=True, exclude={"sku"})
                for rule in account.quantity_rules
            },
            allows_backorders=account.allows_backorders,
        )
    )


async def locked_stock_row(session: AsyncSession, sku: str, warehouse_id: str) -> StockRow | None:
    return await session.scalar(
        select(StockRow)
        .where(StockRow.sku == sku, StockRow.warehouse_id == warehouse_id)
        .with_for_update()
    )


async def save_stock_level(session: AsyncSession, level: StockLevel) -> None:
    """The WMS sends absolute on-hand levels; reservations made here are kept."""
    row = await locked_stock_row(session, level.sku, level.warehouse_id)
    if row is None:
        session.add(
            StockRow(
                sku=level.sku, warehouse_id=level.warehouse_id, on_hand=level.on_hand, reserved=0
            )
        )
        await session.flush()
    else:
        row.on_hand = level.on_hand


async def adjust_stock(session: AsyncSession, adjustment: StockAdjustment) -> int:
    """Add `delta` to on hand; returns the new level. Raises `NegativeStock` below zero."""
    row = await locked_stock_row(session, adjustment.sku, adjustment.warehouse_id)
    on_hand = adjusted_on_hand(row.on_hand if row is not None else 0, adjustment)
    if row is None:
        session.add(
            StockRow(
                sku=adjustment.sku,
                warehouse_id=adjustment.warehouse_id,
                on_hand=on_hand,
                reserved=0,
            )
        )
        await session.flush()
    else:
        row.on_hand = on_hand
    return on_hand


# --- reads for the rules -------------------------------------------------------------------


PRODUCTS_READ = "products"


async def catalog_items(session: AsyncSession, skus: set[str]) -> dict[str, CatalogItem]:
    """The products of `skus` that exist; read once per transaction at most, and answered
    from the worker's `ReferenceCache` while it remembers them (`read_reference`)."""
    return await read_reference(session, PRODUCTS_READ, skus, partial(load_catalog_items, session))


async def load_catalog_items(session: AsyncSession, skus: set[str]) -> dict[str, CatalogItem]:
    rows = await session.scalars(select(ProductRow).where(ProductRow.sku.in_(skus)))
    return {
        row.sku: CatalogItem(
            row.sku,
            row.category,
            row.active,
            frozenset(Channel(c) for c in row.channels),
            row.unit_weight_kg,
            row.pack_size,
            QuantityRule.model_validate(row.quantity_rule) if row.quantity_rule else None,
        )
        for row in rows
    }


ACCOUNTS_READ = "accounts"


async def buyer_terms(session: AsyncSession, account_id: str) -> BuyerTerms | None:
    """The account's terms, or None for an account catalog was never told of (a consumer's,
    mostly); from the worker's `ReferenceCache` while it remembers them (`read_reference`)."""
    found = await read_reference(
        session, ACCOUNTS_READ, [account_id], partial(load_buyer_terms, session)
    )
    return found.get(account_id)


async def load_buyer_terms(session: AsyncSession, account_ids: set[str]) -> dict[str, BuyerTerms]:
    rows = await session.scalars(select(AccountRow).where(AccountRow.account_id.in_(account_ids)))
    return {row.account_id: _terms_of(row) for row in rows}


def _terms_of(row: AccountRow) -> BuyerTerms:
    limited = row.assortment is not None or row.assortment_categories is not None
    return BuyerTerms(
        account_id=row.account_id,
        assortment=(
            Assortment(frozenset(row.assortment or ()), tuple(row.assortment_categories or ()))
            if limited
            else None
        ),
        quantity_rules=MappingProxyType(
            {sku: QuantityRule.model_validate(rule) for sku, rule in row.quantity_rules.items()}
        ),
        allows_backorders=row.allows_backorders,
    )


STOCK_READ = "stock rows, locked"
"""`read_once`'s name for the stock rows (with their warehouses) a transaction has locked."""


async def free_stock(session: AsyncSession, skus: set[str]) -> dict[str, list[StockAt]]:
    """Free stock per SKU in every known warehouse, locked until the transaction ends.

    A batch of orders locks the stock rows of every SKU it names at once
    (`lock_stock_ahead`), and each order reads them from the session: the
    rows' reserved units follow each `take_units` there. A SKU no one read
    ahead (a reorder's) is locked when its order asks. Stock in a warehouse
    catalog doesn't know can't ship, so it isn't offered.
    """
    rows = await lock_stock_ahead(session, skus)
    free: dict[str, list[StockAt]] = defaultdict(list)
    for sku, sites in rows.items():
        free[sku] = [
            StockAt(site.warehouse_id, WarehouseKind(site.kind), site.country, level.free)
            for level, site in sites
        ]
    return free


async def lock_stock_ahead(
    session: AsyncSession, skus: Iterable[str]
) -> dict[str, list[tuple[StockRow, WarehouseRow]]]:
    """Lock and read the stock rows of every SKU a batch of orders names, in one statement
    (those locked before in the transaction are not asked for again)."""
    return await read_once(session, STOCK_READ, skus, partial(_lock_stock, session))


async def _lock_stock(
    session: AsyncSession, skus: set[str]
) -> dict[str, list[tuple[StockRow, WarehouseRow]]]:
    """Locked in (sku, warehouse) order, the same order every writer uses, so two workers
    planning orders for the same SKUs queue instead of deadlocking. Stock rows and
    warehouses are never added in an order's batch, so the orders, lines and reservations
    the batch added wait (no autoflush) and are inserted together when it commits."""
    with session.no_autoflush:
        rows = await session.execute(
            select(StockRow, WarehouseRow)
            .join(WarehouseRow, WarehouseRow.warehouse_id == StockRow.warehouse_id)
            .where(StockRow.sku.in_(skus))
            .order_by(StockRow.sku, StockRow.warehouse_id)
            .with_for_update(of=StockRow)
        )
    stock: dict[str, list[tuple[StockRow, WarehouseRow]]] = {sku: [] for sku in skus}
    for level, site in rows:
        stock[level.sku].append((level, site))
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
    for sku, warehouse_id, on_hand, reserved in rows:
        found[sku].append((warehouse_id, on_hand, reserved))
    return found


async def available_by_warehouse(session: AsyncSession) -> dict[str, int]:
    """Free units per warehouse (never below 0 per SKU), for the available-units gauge."""
    free = case(
        (StockRow.on_hand > StockRow.reserved, StockRow.on_hand - StockRow.reserved), else_=0
    )
    rows = await session.execute(
        select(StockRow.warehouse_id, func.sum(free)).group_by(StockRow.warehouse_id)
    )
    return {warehouse_id: int(units or 0) for warehouse_id, units in rows}


async def find_order(session: AsyncSession, order_id: str) -> OrderRow | None:
    return await find(session, OrderRow, order_id)


async def read_orders_ahead(session: AsyncSession, orders: Iterable[tuple[str, str]]) -> None:
    """The rows a batch of submitted orders (id, account) will look up, in three statements
    at most: the orders already known, the cancellations that came before their orders, and
    the accounts the worker does not remember (a consumer's is mostly absent: remembered
    absent, it is not asked for again)."""
    keys = set(orders)
    await read_ahead(session, OrderRow, {order_id for order_id, _ in keys})
    await read_ahead(session, EarlyCancellationRow, keys)
    account_ids = {account_id for _, account_id in keys}
    await read_reference(session, ACCOUNTS_READ, account_ids, partial(load_buyer_terms, session))


async def read_reported_orders_ahead(session: AsyncSession, order_ids: Iterable[str]) -> None:
    """The orders a batch of other services' reports names, in one statement."""
    await read_ahead(session, OrderRow, set(order_ids))


async def earlier_order(session: AsyncSession, order_id: str) -> EarlierOrder | None:
    """The order a reorder names, with the lines it asked for; None if catalog never saw it."""
    row = await session.get(OrderRow, order_id)
    if row is None:
        return None
    lines = await session.scalars(
        select(RequestedLineRow)
        .where(RequestedLineRow.order_id == order_id)
        .order_by(RequestedLineRow.line_no)
    )
    return EarlierOrder(
        row.account_id, [OrderLine(sku=line.sku, quantity=line.quantity) for line in lines]
    )


async def reservations_of(session: AsyncSession, order_id: str) -> list[ReservationRow]:
    return list(
        await session.scalars(
            select(ReservationRow)
            .where(ReservationRow.order_id == order_id)
            .order_by(ReservationRow.line_no)
        )
    )


# --- changes -----------------------------------------------------------------------------


async def record_order(
    session: AsyncSession,
    order_id: str,
    account_id: str | None,
    channel: str | None,
    state: Stage,
    fingerprint: str | None = None,
) -> OrderRow:
    row = OrderRow(
        order_id=order_id,
        account_id=account_id,
        channel=channel,
        state=state,
        fingerprint=fingerprint,
    )
    session.add(row)
    return row


async def record_requested_lines(
    session: AsyncSession, order_id: str, lines: Sequence[OrderLine]
) -> None:
    session.add_all(
        RequestedLineRow(order_id=order_id, line_no=number, sku=line.sku, quantity=line.quantity)
        for number, line in enumerate(lines, start=1)
    )


async def remember_early_cancellation(
    session: AsyncSession, order_id: str, account_id: str, reason: str | None
) -> None:
    if await session.get(EarlyCancellationRow, (order_id, account_id)) is None:
        session.add(EarlyCancellationRow(order_id=order_id, account_id=account_id, reason=reason))
        await session.flush()


async def take_early_cancellation(
    session: AsyncSession, order_id: str, account_id: str
) -> EarlyCancellationRow | None:
    row = await find(session, EarlyCancellationRow, (order_id, account_id))
    if row is not None:
        await session.delete(row)
    return row


_STOCK_TABLE = Base.metadata.tables[StockRow.__tablename__]
_STOCK = _STOCK_TABLE.c
TAKE_UNITS = (
    update(_STOCK_TABLE)
    .where(
        _STOCK.sku == bindparam("at_sku"),
        _STOCK.warehouse_id == bindparam("at_warehouse"),
        _STOCK.on_hand - _STOCK.reserved >= bindparam("units"),
    )
    .values(reserved=_STOCK.reserved + bindparam("units"))
)
"""Reserve units if they are free: the guard is the last line against oversell. Built once,
on the table rather than the mapped class, so SQLAlchemy runs it as plain SQL: an ORM
update would evaluate its WHERE clause against every stock row the session holds, and
costs the ORM's bookkeeping besides. The stock row in the session is brought up to
date by `take_units`."""


async def take_units(session: AsyncSession, sku: str, warehouse_id: str, units: int) -> None:
    """Reserve `units` if they are free (`TAKE_UNITS`), and show it on the session's row,
    which the batch's next orders plan from. (No autoflush: it reads only the stock row,
    as `free_stock` does.)"""
    with session.no_autoflush:
        result = await session.execute(
            TAKE_UNITS, {"at_sku": sku, "at_warehouse": warehouse_id, "units": units}
        )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise StockTaken(sku)
    row = session.identity_map.get(identity_key(StockRow, (sku, warehouse_id)))
    if row is not None and "reserved" not in inspect(row).unloaded:
        set_committed_value(row, "reserved", row.reserved + units)


async def hold_stock(
    session: AsyncSession, order_id: str, allocations: list[Allocation], now: datetime
) -> None:
    """Hold every allocation's in-stock units and queue its backordered ones, or none of it.

    The units are taken first and the lines written after: if a line's stock
    is gone, the units the lines before it took are given back. That replaces
    a savepoint, two round trips on every order, for a case the stock rows'
    locks already rule out.
    """
    taken: list[Allocation] = []
    try:
        for allocation in allocations:
            if held := LineUnits.allocated(allocation).held:
                await take_units(session, allocation.sku, allocation.warehouse_id, held)
                taken.append(allocation)
    except StockTaken:
        for allocation in taken:
            held = LineUnits.allocated(allocation).held
            await give_back_units(session, allocation.sku, allocation.warehouse_id, held)
        raise
    session.add_all(reservation_line(order_id, allocation, now) for allocation in allocations)


def reservation_line(order_id: str, allocation: Allocation, now: datetime) -> ReservationRow:
    units = LineUnits.allocated(allocation)
    return ReservationRow(
        order_id=order_id,
        line_no=allocation.line_no,
        sku=allocation.sku,
        warehouse_id=allocation.warehouse_id,
        category=allocation.category,
        unit_weight_kg=allocation.unit_weight_kg,
        quantity=units.quantity,
        held=units.held,
        backordered=units.backordered,
        committed=units.committed,
        released=units.released,
        waiting_since=now if units.waiting else None,
    )


async def give_back_units(session: AsyncSession, sku: str, warehouse_id: str, units: int) -> None:
    await session.execute(
        update(StockRow)
        .where(StockRow.sku == sku, StockRow.warehouse_id == warehouse_id)
        .values(reserved=StockRow.reserved - units)
    )


def units_of(line: ReservationRow) -> LineUnits:
    return LineUnits(line.held, line.backordered, line.committed, line.released)


def keep_units(line: ReservationRow, units: LineUnits) -> None:
    """Write a line's ledger back; a line no longer waiting leaves the backorder queue."""
    line.held, line.backordered = units.held, units.backordered
    line.committed, line.released = units.committed, units.released
    if not units.waiting:
        line.waiting_since = None


def in_lock_order(lines: list[ReservationRow]) -> list[ReservationRow]:
    """Stock rows are locked in (sku, warehouse) order by every writer, or two could deadlock."""
    return sorted(lines, key=lambda line: (line.sku, line.warehouse_id, line.line_no))


async def release_stock(session: AsyncSession, order_id: str) -> list[UnitsMoved]:
    """Give back every unit held for the order and stop its backorders; returns what was freed."""
    freed = []
    for line in in_lock_order(await reservations_of(session, order_id)):
        before = units_of(line)
        if before.held:
            await give_back_units(session, line.sku, line.warehouse_id, before.held)
            freed.append(UnitsMoved(line.sku, line.warehouse_id, line.category, before.held))
        keep_units(line, before.release())
    return freed


async def commit_shipment(
    session: AsyncSession, order_id: str, shipment: Shipment
) -> list[UnitsMoved] | None:
    """Deduct a shipped shipment's units from on hand and reserved, once per shipment.

    Returns None when this shipment was committed before. On hand never drops
    below zero: if the WMS already reported a level without these units, the
    shipment can't take them twice.
    """
    if await session.get(CommittedShipmentRow, shipment.shipment_id) is not None:
        return None
    session.add(CommittedShipmentRow(shipment_id=shipment.shipment_id, order_id=order_id))
    lines = {line.line_no: line for line in await reservations_of(session, order_id)}
    moved = []
    for shipped in sorted(shipment.lines, key=lambda line: line.sku):
        line = lines.get(shipped.line_no) if shipped.line_no is not None else None
        if line is None or line.warehouse_id != shipment.warehouse_id or line.sku != shipped.sku:
            raise ValueError(
                f"shipment {shipment.shipment_id}: line {shipped.line_no} ({shipped.sku} from "
                f"{shipment.warehouse_id}) matches no reservation of order {order_id}"
            )
        before = units_of(line)
        after = before.ship(shipped.quantity)
        units = after.committed - before.committed
        await session.execute(
            update(StockRow)
            .where(StockRow.sku == line.sku, StockRow.warehouse_id == line.warehouse_id)
            .values(
                reserved=StockRow.reserved - units,
                on_hand=case((StockRow.on_hand >= units, StockRow.on_hand - units), else_=0),
            )
        )
        keep_units(line, after)
        moved.append(UnitsMoved(line.sku, line.warehouse_id, line.category, units))
    return moved


# --- backorders --------------------------------------------------------------------------


async def waiting_lines(session: AsyncSession, sku: str, warehouse_id: str) -> list[WaitingLine]:
    """Lines of open orders waiting for this SKU in this warehouse, first come first."""
    rows = await session.execute(
        select(ReservationRow.order_id, ReservationRow.line_no, ReservationRow.backordered)
        .join(OrderRow, OrderRow.order_id == ReservationRow.order_id)
        .where(
            ReservationRow.sku == sku,
            ReservationRow.warehouse_id == warehouse_id,
            ReservationRow.waiting_since.is_not(None),
            OrderRow.state.in_(OPEN_STAGES),
        )
        .order_by(ReservationRow.waiting_since, ReservationRow.order_id, ReservationRow.line_no)
    )
    return [WaitingLine(*row) for row in rows]


async def free_units(session: AsyncSession, sku: str, warehouse_id: str) -> int:
    """Free units, with the stock row locked so no order takes them meanwhile."""
    row = await locked_stock_row(session, sku, warehouse_id)
    return 0 if row is None else row.on_hand - row.reserved


async def hold_backordered(
    session: AsyncSession, line: WaitingLine, units: int, warehouse_id: str
) -> tuple[str, ReservedLine]:
    """Move `units` of a waiting line from backordered to held; returns (account, filled line)."""
    row = await session.get(ReservationRow, (line.order_id, line.line_no))
    order = await session.get(OrderRow, line.order_id)
    assert row is not None and order is not None, "waiting lines come from these tables"
    await take_units(session, row.sku, warehouse_id, units)
    keep_units(row, units_of(row).fill(units))
    filled = ReservedLine(
        sku=row.sku,
        quantity=units,
        warehouse_id=row.warehouse_id,
        category=row.category,
        unit_weight_kg=row.unit_weight_kg,
        line_no=row.line_no,
    )
    assert order.account_id is not None, "a backordered line belongs to an accepted order"
    return order.account_id, filled
