"""`read_once`: reference data read at most once per transaction, and afresh after a change."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import MetaData

from shared.db import ServiceDatabase, forget_reads, read_once
from shared.topics import TopicNames


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[ServiceDatabase]:
    db = ServiceDatabase(database_url, MetaData(), TopicNames("t."))
    await db.create_tables()
    yield db
    await db.dispose()


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
