"""`shared.reference_cache` on both backends: reference rows remembered across transactions,
forgotten when this worker commits a change to them, and another worker's change read once
what was remembered has expired (a clock the test moves, not a sleep)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.batch_reads import forget_reads
from shared.db import ServiceDatabase
from shared.reference_cache import read_reference
from shared.topics import TopicNames
from tests.integration.parts import Base, Part
from tests.support.statements import reading, statements_sent

PARTS = "parts"


class Clock:
    """The cache's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def worker(url: str, seconds: float = 5.0) -> ServiceDatabase:
    """One worker's view of the service's database, with a clock of the test's."""
    db = ServiceDatabase(url, Base.metadata, TopicNames("t."), reference_seconds=seconds)
    db.reference.clock = Clock()
    return db


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[ServiceDatabase]:
    db = worker(database_url)
    await db.create_tables()
    async with db.transaction() as tx:
        tx.session.add_all([Part(sku="bolt", units=1), Part(sku="nut", units=2)])
    yield db
    await db.dispose()


@pytest.fixture
def part_reads(database: ServiceDatabase) -> Iterator[list[str]]:
    """Every statement reading the parts table this worker sends while the test runs."""
    with statements_sent(database, matching=reading(PARTS)) as sent:
        yield sent


async def load_parts(session: AsyncSession, skus: set[str]) -> dict[str, int]:
    rows = await session.execute(select(Part.sku, Part.units).where(Part.sku.in_(skus)))
    return {sku: units for sku, units in rows}


async def units(db: ServiceDatabase, *skus: str) -> dict[str, int]:
    async with db.transaction() as tx:
        return await read_parts(tx.session, *skus)


async def read_parts(session: AsyncSession, *skus: str) -> dict[str, int]:
    return await read_reference(session, PARTS, skus, lambda keys: load_parts(session, keys))


async def change_units(session: AsyncSession, sku: str, to: int) -> None:
    """What a handler applying a reference event does: say the kind changes, then change it."""
    forget_reads(session, PARTS)
    await session.execute(update(Part).where(Part.sku == sku).values(units=to))


async def test_a_later_transaction_is_answered_from_what_an_earlier_one_read(
    database: ServiceDatabase, part_reads: list[str]
) -> None:
    assert await units(database, "bolt", "nut") == {"bolt": 1, "nut": 2}
    assert await units(database, "bolt") == {"bolt": 1}
    assert await units(database, "nut", "bolt") == {"bolt": 1, "nut": 2}
    assert len(part_reads) == 1


async def test_a_key_not_found_is_remembered_as_absent_too(
    database: ServiceDatabase, part_reads: list[str]
) -> None:
    assert await units(database, "washer") == {}
    assert await units(database, "washer") == {}
    assert len(part_reads) == 1


async def test_a_change_this_worker_commits_is_read_by_its_very_next_transaction(
    database: ServiceDatabase,
) -> None:
    assert await units(database, "bolt") == {"bolt": 1}
    async with database.transaction() as tx:
        await change_units(tx.session, "bolt", 5)
    assert await units(database, "bolt") == {"bolt": 5}


async def test_a_part_this_worker_adds_is_found_though_it_was_remembered_absent(
    database: ServiceDatabase,
) -> None:
    assert await units(database, "washer") == {}
    async with database.transaction() as tx:
        forget_reads(tx.session, PARTS)
        tx.session.add(Part(sku="washer", units=9))
    assert await units(database, "washer") == {"washer": 9}


async def test_a_transaction_that_changes_a_kind_reads_its_own_change(
    database: ServiceDatabase,
) -> None:
    assert await units(database, "bolt") == {"bolt": 1}
    async with database.transaction() as tx:
        await change_units(tx.session, "bolt", 5)
        assert await read_parts(tx.session, "bolt") == {"bolt": 5}


async def test_a_change_that_rolls_back_leaves_what_was_remembered_right(
    database: ServiceDatabase,
) -> None:
    assert await units(database, "bolt") == {"bolt": 1}
    with pytest.raises(RuntimeError):
        async with database.transaction() as tx:
            await change_units(tx.session, "bolt", 5)
            raise RuntimeError("the handler failed after the change")
    assert await units(database, "bolt") == {"bolt": 1}


async def test_another_workers_change_is_read_once_what_was_remembered_expires(
    database: ServiceDatabase, database_url: str
) -> None:
    other = worker(database_url)
    try:
        assert await units(database, "bolt") == {"bolt": 1}
        async with other.transaction() as tx:
            await change_units(tx.session, "bolt", 7)
        clock = database.reference.clock
        assert isinstance(clock, Clock)
        clock.now += 4.9
        assert await units(database, "bolt") == {"bolt": 1}, "within the 5 s it may answer"
        clock.now += 0.2
        assert await units(database, "bolt") == {"bolt": 7}
    finally:
        await other.dispose()


async def test_with_no_time_to_remember_every_transaction_reads(database_url: str) -> None:
    db = worker(database_url, seconds=0)
    await db.create_tables()
    try:
        async with db.transaction() as tx:
            tx.session.add(Part(sku="bolt", units=1))
        with statements_sent(db, matching=reading(PARTS)) as reads:
            assert await units(db, "bolt") == {"bolt": 1}
            assert await units(db, "bolt") == {"bolt": 1}
        assert len(reads) == 2
    finally:
        await db.dispose()
