"""`shared.batch_reads` on both backends: reference data read at most once per transaction and
afresh after a change; rows read ahead for a batch, found without another statement, and keys
read ahead and not found known absent only until a row with that key is added."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from shared.batch_reads import find, forget_reads, known_absent, read_ahead, read_once
from shared.db import ServiceDatabase
from shared.topics import TopicNames
from tests.integration.parts import Base, Bin, Part
from tests.support.statements import reading, statements_sent


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[ServiceDatabase]:
    db = ServiceDatabase(database_url, Base.metadata, TopicNames("t."))
    await db.create_tables()
    async with db.transaction() as tx:
        tx.session.add_all([Part(sku="bolt", units=1), Part(sku="nut", units=2)])
        tx.session.add(Bin(aisle="a", shelf="1"))
    yield db
    await db.dispose()


@pytest.fixture
def statements(database: ServiceDatabase) -> Iterator[list[str]]:
    """Every statement the database is sent while the test runs."""
    with statements_sent(database) as sent:
        yield sent


async def units(session: AsyncSession, sku: str) -> int | None:
    part = await find(session, Part, sku)
    return None if part is None else part.units


class Shelf:
    """Stands in for a table: what it holds, and every set of keys it was asked for."""

    def __init__(self, **rows: int) -> None:
        self.rows = rows
        self.asked: list[set[str]] = []

    async def load(self, keys: set[str]) -> dict[str, int]:
        self.asked.append(keys)
        return {key: self.rows[key] for key in keys if key in self.rows}


async def test_each_key_is_read_once_per_transaction_found_or_not(
    database: ServiceDatabase,
) -> None:
    shelf = Shelf(bolt=1, nut=2)
    async with database.transaction() as tx:
        assert await read_once(tx.session, "parts", {"bolt", "gone"}, shelf.load) == {"bolt": 1}
        assert await read_once(tx.session, "parts", ["bolt", "nut", "gone"], shelf.load) == {
            "bolt": 1,
            "nut": 2,
        }
        assert await read_once(tx.session, "other", {"bolt"}, shelf.load) == {"bolt": 1}
    assert shelf.asked == [{"bolt", "gone"}, {"nut"}, {"bolt"}]

    async with database.transaction() as tx:  # a new transaction reads again
        await read_once(tx.session, "parts", {"bolt"}, shelf.load)
    assert shelf.asked[-1] == {"bolt"}


async def test_after_forget_reads_the_changed_data_is_read_again(
    database: ServiceDatabase,
) -> None:
    shelf = Shelf(bolt=1)
    async with database.transaction() as tx:
        assert await read_once(tx.session, "parts", {"bolt"}, shelf.load) == {"bolt": 1}
        shelf.rows["bolt"] = 5
        forget_reads(tx.session, "parts")
        assert await read_once(tx.session, "parts", {"bolt"}, shelf.load) == {"bolt": 5}
    assert len(shelf.asked) == 2


async def test_rows_read_ahead_and_keys_not_found_are_answered_without_a_statement(
    database: ServiceDatabase, statements: list[str]
) -> None:
    async with database.transaction() as tx:
        assert await read_ahead(tx.session, Part, {"bolt", "gone"}) == {"bolt"}
        assert await read_ahead(tx.session, Bin, {("a", "1"), ("a", "2")}) == {("a", "1")}
        read = len(statements)

        assert await units(tx.session, "bolt") == 1
        assert await units(tx.session, "gone") is None
        assert (await find(tx.session, Bin, ("a", "1"))) is not None
        assert await find(tx.session, Bin, ("a", "2")) is None
        assert len(statements) == read

        assert await units(tx.session, "nut") == 2  # not read ahead: asked for
        assert len(statements) == read + 1


async def test_keys_known_absent_are_answered_without_a_statement_until_a_row_is_added(
    database: ServiceDatabase, statements: list[str]
) -> None:
    async with database.transaction() as tx:
        known_absent(tx.session, Part, {"washer"})
        read = len(statements)
        assert await units(tx.session, "washer") is None
        assert len(statements) == read
        tx.session.add(Part(sku="washer", units=7))
        assert await units(tx.session, "washer") == 7


async def test_a_row_added_after_the_read_ahead_is_found(database: ServiceDatabase) -> None:
    async with database.transaction() as tx:
        await read_ahead(tx.session, Part, {"washer"})
        tx.session.add(Part(sku="washer", units=7))
        assert await units(tx.session, "washer") == 7
    async with database.transaction() as tx:
        assert await units(tx.session, "washer") == 7


async def test_a_row_added_in_a_savepoint_that_rolled_back_is_absent_again(
    database: ServiceDatabase,
) -> None:
    async with database.transaction() as tx:
        await read_ahead(tx.session, Part, {"washer"})
        with pytest.raises(RuntimeError):
            async with tx.savepoint():
                tx.session.add(Part(sku="washer", units=7))
                await tx.session.flush()
                raise RuntimeError("the event's handler failed")
        assert await units(tx.session, "washer") is None


async def test_what_was_read_ahead_ends_with_its_transaction(
    database: ServiceDatabase, statements: list[str]
) -> None:
    async with database.transaction() as tx:
        await read_ahead(tx.session, Part, {"washer"})
    async with database.transaction() as tx:
        tx.session.add(Part(sku="washer", units=3))
    async with database.transaction() as tx:
        before = len(statements)
        assert await units(tx.session, "washer") == 3
        assert len(statements) > before


async def test_a_savepoint_rolled_back_forgets_what_was_read_in_it(
    database: ServiceDatabase,
) -> None:
    """Read inside an event's undone work, a value may be one the rollback took back."""
    shelf = Shelf(bolt=1)
    async with database.transaction() as tx:
        await read_ahead(tx.session, Part, {"washer"})
        with pytest.raises(RuntimeError):
            async with tx.savepoint():
                assert await read_once(tx.session, "parts", {"bolt"}, shelf.load) == {"bolt": 1}
                raise RuntimeError("the event's handler failed")
        shelf.rows["bolt"] = 2
        assert await read_once(tx.session, "parts", {"bolt"}, shelf.load) == {"bolt": 2}
        tx.session.add(Part(sku="washer", units=4))
        assert await units(tx.session, "washer") == 4


async def test_on_postgresql_every_batch_size_is_read_ahead_with_one_statement(
    new_database_url: Callable[[str], str],
) -> None:
    """The same text for one key and for three: prepared once per connection, not per size."""
    db = ServiceDatabase(new_database_url("postgresql"), Base.metadata, TopicNames("t."))
    await db.create_tables()
    try:
        with statements_sent(db, matching=reading("parts")) as sent:
            async with db.transaction() as tx:
                await read_ahead(tx.session, Part, {"bolt"})
                await read_ahead(tx.session, Part, {"nut", "washer", "screw"})
        first, second = sent
        assert first == second
    finally:
        await db.dispose()
