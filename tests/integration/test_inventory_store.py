"""Catalog's inventory on SQLite and PostgreSQL: reserve, release, commit, backorders, races.

The units in a warehouse are counted in two places that must agree: the stock
row (`on_hand`, `reserved`) and the order lines holding them. These tests move
stock the way catalog's handlers do and check both after every step.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from services.catalog import domain, store
from services.catalog.domain import Stage
from services.catalog.store import ReservationRow, StockRow
from shared.contract import (
    Product,
    Shipment,
    ShipmentLine,
    ShipmentMode,
    StockAdjustment,
    StockLevel,
    Warehouse,
    WarehouseKind,
)
from shared.db import ServiceDatabase
from shared.rejection import Rejected
from shared.topics import TopicNames
from tools.seed import b2b_order

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[ServiceDatabase]:
    db = await open_database(database_url)
    yield db
    await db.dispose()  # before the test's event loop closes (aiosqlite's thread, asyncpg)


async def open_database(url: str) -> ServiceDatabase:
    db = ServiceDatabase(url, store.Base.metadata, TopicNames("t."))
    await db.create_tables()
    return db


async def stock_a_product(db: ServiceDatabase, sku: str, on_hand: dict[str, int]) -> None:
    """One B2B product stocked in a central DC and/or a regional warehouse."""
    async with db.transaction() as tx:
        await store.save_product(
            tx.session,
            Product.new(sku=sku, name=sku, category="fasteners/bolts", unit_weight_kg="1.5"),
        )
        for warehouse_id in on_hand:
            kind = WarehouseKind.CENTRAL_DC if warehouse_id == "dc" else WarehouseKind.REGIONAL
            await store.save_warehouse(
                tx.session,
                Warehouse.new(
                    warehouse_id=warehouse_id,
                    name=warehouse_id,
                    kind=kind,
                    country="DE",
                    postal_code="20095",
                ),
            )
        for warehouse_id, units in on_hand.items():
            await store.save_stock_level(
                tx.session, StockLevel.new(sku=sku, warehouse_id=warehouse_id, on_hand=units)
            )


async def place_order(
    db: ServiceDatabase, order_id: str, sku: str, quantity: int, backorders: bool = False
) -> list[domain.Allocation] | str:
    """What catalog does with a submitted order; returns the allocations or the reject reason."""
    order = b2b_order(order_id, [(sku, quantity)]).order()
    async with db.transaction() as tx:
        row = await store.record_order(
            tx.session, order_id, order.account_id, "b2b", Stage.RESERVED
        )
        try:
            items = await store.catalog_items(tx.session, {sku})
            stock = await store.free_stock(tx.session, {sku})
            allocations = domain.reserve_stock(order, items, stock, backorders)
            await store.hold_stock(tx.session, order_id, allocations, NOW)
        except (Rejected, store.StockTaken) as refused:
            row.state = Stage.REJECTED
            return str(refused)
    return allocations


def accepted(outcome: list[domain.Allocation] | str) -> list[domain.Allocation]:
    assert not isinstance(outcome, str), f"order refused: {outcome}"
    return outcome


async def stock_arrives(db: ServiceDatabase, sku: str, warehouse_id: str, units: int) -> int:
    """An adjustment, then waiting lines filled first come first served; returns units filled."""
    async with db.transaction() as tx:
        await store.adjust_stock(
            tx.session,
            StockAdjustment.new(sku=sku, warehouse_id=warehouse_id, delta=units, reason="delivery"),
        )
        return await fill_waiting(tx.session, sku, warehouse_id)


async def fill_waiting(session: store.AsyncSession, sku: str, warehouse_id: str) -> int:
    free = await store.free_units(session, sku, warehouse_id)
    fills = domain.fill_backorders(free, await store.waiting_lines(session, sku, warehouse_id))
    for waiting, units in fills:
        await store.hold_backordered(session, waiting, units, warehouse_id)
    return sum(units for _, units in fills)


async def release(db: ServiceDatabase, order_id: str) -> int:
    async with db.transaction() as tx:
        order = await store.find_order(tx.session, order_id)
        assert order is not None
        order.state = Stage.RELEASED
        freed = await store.release_stock(tx.session, order_id)
        for movement in freed:
            await fill_waiting(tx.session, movement.sku, movement.warehouse_id)
        return sum(f.units for f in freed)


async def ship_everything_held(
    db: ServiceDatabase, order_id: str, shipment_id: str
) -> list[store.UnitsMoved] | None:
    """Commit one shipment per call with what the order holds in its first line's warehouse."""
    async with db.transaction() as tx:
        lines = await store.reservations_of(tx.session, order_id)
        shipment = Shipment(
            shipment_id=shipment_id,
            mode=ShipmentMode.FREIGHT,
            warehouse_id=lines[0].warehouse_id,
            carrier="freight-ltl",
            service_level="scheduled",
            tracking_number="TL000000000000",
            promised_date=NOW.date(),
            weight_kg=Decimal("1"),
            lines=[
                ShipmentLine(sku=line.sku, quantity=line.held, line_no=line.line_no)
                for line in lines
                if line.held
            ],
        )
        return await store.commit_shipment(tx.session, order_id, shipment)


async def stock_row(db: ServiceDatabase, sku: str, warehouse_id: str) -> tuple[int, int]:
    async with db.sessions() as session:
        row = await session.get(StockRow, (sku, warehouse_id))
        assert row is not None
        return row.on_hand, row.reserved


async def line_of(db: ServiceDatabase, order_id: str) -> ReservationRow:
    async with db.sessions() as session:
        [line] = await store.reservations_of(session, order_id)
        return line


# --- reserve, release, commit ------------------------------------------------------------------


async def test_holding_stock_reserves_it_and_releasing_gives_it_back(
    database: ServiceDatabase,
) -> None:
    await stock_a_product(database, "BOLT", {"dc": 10})
    [held] = accepted(await place_order(database, "o-1", "BOLT", 4))
    assert (held.warehouse_id, held.in_stock) == ("dc", 4)
    assert await stock_row(database, "BOLT", "dc") == (10, 4)
    assert await release(database, "o-1") == 4
    assert await stock_row(database, "BOLT", "dc") == (10, 0)
    line = await line_of(database, "o-1")
    assert (line.held, line.released) == (0, 4)


async def test_a_shipment_deducts_its_units_from_on_hand_once(database: ServiceDatabase) -> None:
    await stock_a_product(database, "BOLT", {"dc": 10})
    await place_order(database, "o-1", "BOLT", 4)
    moved = await ship_everything_held(database, "o-1", "o-1-1")
    assert moved is not None and [m.units for m in moved] == [4]
    assert await stock_row(database, "BOLT", "dc") == (6, 0)
    assert await ship_everything_held(database, "o-1", "o-1-1") is None  # repeated `shipped`
    assert await stock_row(database, "BOLT", "dc") == (6, 0)
    line = await line_of(database, "o-1")
    assert (line.held, line.committed) == (0, 4)


async def test_an_order_for_more_than_is_free_is_rejected_without_touching_stock(
    database: ServiceDatabase,
) -> None:
    await stock_a_product(database, "BOLT", {"dc": 3})
    refused = await place_order(database, "o-1", "BOLT", 4)
    assert (
        refused
        == "line 1: SKU 'BOLT': 4 requested, at most 3 available in one warehouse (3 in all)"
    )
    assert await stock_row(database, "BOLT", "dc") == (3, 0)


async def test_a_line_whose_stock_is_gone_when_held_gives_back_what_the_lines_before_took(
    database: ServiceDatabase,
) -> None:
    """Planned on free stock that another order then took: the order holds nothing at all."""
    await stock_a_product(database, "BOLT", {"dc": 10})
    await stock_a_product(database, "NUT", {"dc": 2})
    plan = [
        domain.Allocation(1, "BOLT", 4, "dc", "fasteners/bolts", Decimal("1.5")),
        domain.Allocation(2, "NUT", 3, "dc", "fasteners/bolts", Decimal("1.5")),
    ]
    with pytest.raises(store.StockTaken):
        async with database.transaction() as tx:
            await store.record_order(tx.session, "o-1", "acme", "b2b", Stage.RESERVED)
            try:
                await store.hold_stock(tx.session, "o-1", plan, NOW)
            finally:
                assert await store.free_units(tx.session, "BOLT", "dc") == 10
                assert await store.reservations_of(tx.session, "o-1") == []
    assert await stock_row(database, "BOLT", "dc") == (10, 0)


async def test_an_adjustment_below_zero_is_refused_with_the_levels(
    database: ServiceDatabase,
) -> None:
    await stock_a_product(database, "BOLT", {"dc": 3})
    with pytest.raises(domain.NegativeStock, match="from 3 to -2"):
        await stock_arrives(database, "BOLT", "dc", -5)
    assert await stock_row(database, "BOLT", "dc") == (3, 0)


async def test_a_wms_level_replaces_on_hand_and_keeps_reservations(
    database: ServiceDatabase,
) -> None:
    await stock_a_product(database, "BOLT", {"dc": 10})
    await place_order(database, "o-1", "BOLT", 4)
    await stock_a_product(database, "BOLT", {"dc": 25})
    assert await stock_row(database, "BOLT", "dc") == (25, 4)


# --- backorders --------------------------------------------------------------------------------


async def test_a_backordered_line_is_filled_when_stock_arrives(database: ServiceDatabase) -> None:
    await stock_a_product(database, "BOLT", {"dc": 2})
    [held] = accepted(await place_order(database, "o-1", "BOLT", 5, backorders=True))
    assert (held.in_stock, held.backordered) == (2, 3)
    assert await stock_arrives(database, "BOLT", "dc", 1) == 1
    line = await line_of(database, "o-1")
    assert (line.held, line.backordered, line.waiting_since is not None) == (3, 2, True)
    assert await stock_arrives(database, "BOLT", "dc", 10) == 2
    line = await line_of(database, "o-1")
    assert (line.held, line.backordered, line.waiting_since) == (5, 0, None)
    assert await stock_row(database, "BOLT", "dc") == (13, 5)


async def test_backorders_are_filled_first_come_first_served(database: ServiceDatabase) -> None:
    await stock_a_product(database, "BOLT", {"dc": 0})
    async with database.transaction() as tx:  # o-1 started waiting earlier than o-2
        await place_in_session(tx.session, "o-2", 3, NOW)
        await place_in_session(tx.session, "o-1", 3, NOW - timedelta(minutes=5))
    assert await stock_arrives(database, "BOLT", "dc", 4) == 4
    assert ((await line_of(database, "o-1")).held, (await line_of(database, "o-2")).held) == (3, 1)


async def place_in_session(
    session: store.AsyncSession, order_id: str, quantity: int, waiting_since: datetime
) -> None:
    order = b2b_order(order_id, [("BOLT", quantity)]).order()
    await store.record_order(session, order_id, order.account_id, "b2b", Stage.RESERVED)
    items = await store.catalog_items(session, {"BOLT"})
    allocations = domain.reserve_stock(
        order, items, await store.free_stock(session, {"BOLT"}), True
    )
    await store.hold_stock(session, order_id, allocations, waiting_since)


async def test_released_stock_goes_to_a_waiting_backorder(database: ServiceDatabase) -> None:
    await stock_a_product(database, "BOLT", {"dc": 4})
    await place_order(database, "o-1", "BOLT", 4)
    await place_order(database, "o-2", "BOLT", 3, backorders=True)
    assert (await line_of(database, "o-2")).backordered == 3
    await release(database, "o-1")
    assert ((await line_of(database, "o-2")).held, await stock_row(database, "BOLT", "dc")) == (
        3,
        (4, 3),
    )


async def test_a_rejected_order_stops_waiting(database: ServiceDatabase) -> None:
    await stock_a_product(database, "BOLT", {"dc": 0})
    await place_order(database, "o-1", "BOLT", 3, backorders=True)
    await release(database, "o-1")
    assert await stock_arrives(database, "BOLT", "dc", 5) == 0
    line = await line_of(database, "o-1")
    assert (line.backordered, line.released) == (0, 3)


# --- two workers, the last unit ------------------------------------------------------------------


async def test_two_workers_racing_for_the_last_unit_never_both_get_it(database_url: str) -> None:
    """Two engines, like two catalog processes: each plans against the same free unit at once."""
    first, second = await open_database(database_url), await open_database(database_url)
    try:
        await stock_a_product(first, "LAST", {"dc": 1})
        outcomes = await asyncio.gather(
            place_order(first, "o-1", "LAST", 1), place_order(second, "o-2", "LAST", 1)
        )
        winners = [o for o in outcomes if isinstance(o, list)]
        losers = [o for o in outcomes if isinstance(o, str)]
        assert len(winners) == 1 and len(losers) == 1
        assert "1 requested, at most 0 available" in losers[0]
        assert await stock_row(first, "LAST", "dc") == (1, 1)
    finally:
        await first.dispose()
        await second.dispose()


# --- the property: no unit is lost or promised twice ---------------------------------------------


@dataclass
class Ledger:
    """What the test itself knows went in and out, to compare with what the store says."""

    put_in: int
    orders: list[str] = field(default_factory=list)
    shipments: int = 0


Step = tuple[str, int, bool]
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("order"), st.integers(1, 6), st.booleans()),
        st.tuples(st.just("release"), st.integers(0, 20), st.just(False)),
        st.tuples(st.just("ship"), st.integers(0, 20), st.booleans()),
        st.tuples(st.just("arrive"), st.integers(1, 5), st.booleans()),
    ),
    min_size=1,
    max_size=25,
)


async def run_steps(url: str, start: tuple[int, int], steps: list[Step]) -> None:
    db = await open_database(url)
    sku = f"P-{uuid.uuid4().hex[:12]}"
    try:
        await stock_a_product(db, sku, {"dc": start[0], "berlin": start[1]})
        ledger = Ledger(put_in=sum(start))
        for kind, number, flag in steps:
            await apply_step(db, sku, ledger, kind, number, flag)
            await check_every_unit(db, sku, ledger)
    finally:
        await db.dispose()


async def apply_step(
    db: ServiceDatabase, sku: str, ledger: Ledger, kind: str, number: int, flag: bool
) -> None:
    if kind == "order":
        order_id = f"{sku}-o{len(ledger.orders)}"
        ledger.orders.append(order_id)
        await place_order(db, order_id, sku, number, backorders=flag)
    elif kind == "arrive":
        await stock_arrives(db, sku, "dc" if flag else "berlin", number)
        ledger.put_in += number
    elif ledger.orders:
        order_id = ledger.orders[number % len(ledger.orders)]
        if not await holds_lines(db, order_id):
            return
        if kind == "release":
            await release(db, order_id)
        else:
            ledger.shipments += 1
            await ship_everything_held(db, order_id, f"{order_id}-s{ledger.shipments}")
            if flag:  # the same `shipped` delivered again
                await ship_everything_held(db, order_id, f"{order_id}-s{ledger.shipments}")


async def holds_lines(db: ServiceDatabase, order_id: str) -> bool:
    async with db.sessions() as session:
        order = await store.find_order(session, order_id)
        lines = await store.reservations_of(session, order_id)
    return order is not None and order.state == Stage.RESERVED and any(line.held for line in lines)


async def check_every_unit(db: ServiceDatabase, sku: str, ledger: Ledger) -> None:
    async with db.sessions() as session:
        rows = list(await session.scalars(select(StockRow).where(StockRow.sku == sku)))
        lines = list(await session.scalars(select(ReservationRow).where(ReservationRow.sku == sku)))
    for row in rows:
        held_here = sum(line.held for line in lines if line.warehouse_id == row.warehouse_id)
        assert row.reserved == held_here, f"{row.warehouse_id}: reserved {row.reserved}"
        assert 0 <= row.reserved <= row.on_hand, f"{row.warehouse_id} promised more than it has"
    for line in lines:
        parts = (line.held, line.backordered, line.committed, line.released)
        assert min(parts) >= 0 and sum(parts) == line.quantity, f"{line.order_id}: {parts}"
    shipped = sum(line.committed for line in lines)
    assert sum(row.on_hand for row in rows) + shipped == ledger.put_in, "units lost or invented"


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(start=st.tuples(st.integers(0, 6), st.integers(0, 6)), steps=STEPS)
def test_reserve_release_commit_never_oversell_or_lose_units(
    database_url: str, start: tuple[int, int], steps: list[Step]
) -> None:
    """Any sequence of orders (with and without backorders), releases, shipments (some
    delivered twice) and stock arrivals keeps stock rows and order lines in agreement.

    Every example uses a SKU of its own in the test's one database.
    """
    asyncio.run(run_steps(database_url, start, steps))
