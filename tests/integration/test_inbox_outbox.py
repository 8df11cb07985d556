"""The unit of work on real SQLite and PostgreSQL: inbox dedup, outbox atomic with the change."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import Column, MetaData, String, Table, select
from sqlalchemy.exc import OperationalError

from shared.contract import OrderState, OrderStatusChanged
from shared.db import SchemaMismatch, ServiceDatabase
from shared.topics import ORDERS_STATUS, TopicNames


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    """Every test here runs on both databases a service may be given."""
    backend: str = request.param
    return backend


@pytest.fixture
async def database(
    backend: str, new_database_url: Callable[[str], str]
) -> AsyncIterator[ServiceDatabase]:
    db = ServiceDatabase(new_database_url(backend), MetaData(), TopicNames("t."))
    await db.create_tables()
    yield db
    await db.dispose()  # before the test's event loop closes (aiosqlite's thread, asyncpg)


def a_status(order_id: str = "o-1") -> OrderStatusChanged:
    return OrderStatusChanged.new(order_id=order_id, status=OrderState.RECEIVED, reported_by="test")


async def test_an_event_id_is_accepted_once(database: ServiceDatabase) -> None:
    event_id = uuid.uuid4()
    async with database.transaction() as tx:
        assert await database.first_delivery(tx, event_id, "orders.submitted")
    async with database.transaction() as tx:
        assert not await database.first_delivery(tx, event_id, "orders.submitted")


async def test_outgoing_events_wait_in_the_outbox_until_marked_sent(
    database: ServiceDatabase,
) -> None:
    status = a_status()
    async with database.transaction() as tx:
        await tx.publish(ORDERS_STATUS, status)
    async with database.sending(10) as batch:
        [row] = batch.rows
        assert row.topic == "t.orders.status" and row.key == b"o-1"
        assert OrderStatusChanged.model_validate_json(row.value) == status
    assert await database.unsent(10) == []


async def test_a_batch_whose_sending_failed_stays_unsent(database: ServiceDatabase) -> None:
    async with database.transaction() as tx:
        await tx.publish(ORDERS_STATUS, a_status())
    with pytest.raises(ConnectionError):
        async with database.sending(10):
            raise ConnectionError("broker away")
    assert len(await database.unsent(10)) == 1


async def test_two_relays_on_one_database_never_send_a_row_twice(
    database: ServiceDatabase,
) -> None:
    """Two workers of a service share its database: each row goes out in one batch only."""
    async with database.transaction() as tx:
        for n in range(20):
            await tx.publish(ORDERS_STATUS, a_status(f"o-{n}"))
    other = ServiceDatabase(database.url, MetaData(), TopicNames("t."))
    sent: list[list[int]] = []

    async def relay(db: ServiceDatabase) -> None:
        while True:
            async with db.sending(7) as batch:
                await asyncio.sleep(0)  # let the other relay try while this one holds rows
                if not batch.rows:
                    return
                sent.append([row.id for row in batch.rows])

    try:
        await asyncio.gather(relay(database), relay(other))
    finally:
        await other.dispose()
    ids = [row_id for batch in sent for row_id in batch]
    assert sorted(ids) == ids and len(set(ids)) == len(ids) == 20


async def test_a_failed_transaction_leaves_neither_inbox_nor_outbox_rows(
    database: ServiceDatabase,
) -> None:
    event_id = uuid.uuid4()
    with pytest.raises(RuntimeError):
        async with database.transaction() as tx:
            await database.first_delivery(tx, event_id, "orders.submitted")
            await tx.publish(ORDERS_STATUS, a_status())
            raise RuntimeError("handler failed")
    assert await database.unsent(10) == []
    async with database.sessions() as session:
        assert (await session.execute(select(database.inbox))).all() == []


async def test_unsent_rows_survive_a_restart(database: ServiceDatabase) -> None:
    async with database.transaction() as tx:
        await tx.publish(ORDERS_STATUS, a_status())
    await database.dispose()  # the process dies before the relay ran

    reopened = ServiceDatabase(database.url, MetaData(), TopicNames("t."))
    assert len(await reopened.unsent(10)) == 1
    await reopened.dispose()


async def test_a_database_of_an_older_layout_stops_the_service_with_what_is_missing(
    backend: str, new_database_url: Callable[[str], str]
) -> None:
    url = new_database_url(backend)
    old = MetaData()
    Table("orders", old, Column("order_id", String(64), primary_key=True))
    first = ServiceDatabase(url, old, TopicNames("t."))
    await first.create_tables()
    await first.dispose()

    new = MetaData()
    Table("orders", new, Column("order_id", String(64), primary_key=True), Column("state", String))
    second = ServiceDatabase(url, new, TopicNames("t."))
    with pytest.raises(SchemaMismatch, match=r"older layout \(missing orders\.state\)"):
        await second.create_tables()
    await second.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_two_workers_starting_together_both_create_the_tables(
    backend: str, new_database_url: Callable[[str], str]
) -> None:
    """Workers of one service start at once on an empty database; neither may fail."""
    url = new_database_url(backend)
    workers = [ServiceDatabase(url, MetaData(), TopicNames("t.")) for _ in range(3)]
    try:
        await asyncio.gather(*(worker.create_tables() for worker in workers))
        async with workers[0].transaction() as tx:
            await tx.publish(ORDERS_STATUS, a_status())
        assert len(await workers[1].unsent(10)) == 1
    finally:
        for worker in workers:
            await worker.dispose()


async def test_workers_opening_a_new_sqlite_file_at_once_all_switch_it_to_wal(
    new_database_url: Callable[[str], str],
) -> None:
    """Two connections asking for WAL at once: SQLite answers one of them `database is locked`
    at once, without waiting out the busy timeout; every one of them must still get in."""
    for _ in range(25):
        url = new_database_url("sqlite")
        workers = [ServiceDatabase(url, MetaData(), TopicNames("t.")) for _ in range(4)]
        try:
            connections = await asyncio.gather(*(w.engine.connect() for w in workers))
            for connection in connections:
                mode = await connection.exec_driver_sql("PRAGMA journal_mode")
                assert mode.scalar_one() == "wal"
                await connection.close()
        finally:
            for worker in workers:
                await worker.dispose()


async def test_a_parked_row_no_longer_holds_up_the_rows_behind_it(
    database: ServiceDatabase,
) -> None:
    async with database.transaction() as tx:
        for n in range(3):
            await tx.publish(ORDERS_STATUS, a_status(f"o-{n}"))
    async with database.sending(10) as batch:
        first, *_ = batch.rows
        batch.park(first, "MessageSizeTooLargeError: too big")
    assert await database.unsent(10) == []
    [parked] = await database.parked()
    assert parked.id == first.id and parked.reason == "MessageSizeTooLargeError: too big"
    assert await database.count_parked() == 1


async def test_ops_retry_a_parked_row_back_into_line_or_drop_it(
    database: ServiceDatabase,
) -> None:
    async with database.transaction() as tx:
        await tx.publish(ORDERS_STATUS, a_status("o-1"))
        await tx.publish(ORDERS_STATUS, a_status("o-2"))
    async with database.sending(10) as batch:
        for row in batch.rows:
            batch.park(row, "refused")
    one, two = (row.id for row in await database.parked())
    database.outbox_written.clear()
    assert await database.retry_parked([one]) == 1
    assert database.outbox_written.is_set()  # the relay wakes for it
    assert [row.id for row in await database.unsent(10)] == [one]
    assert await database.drop_parked([two, one]) == 1  # only parked rows are dropped
    assert await database.parked() == [] and len(await database.unsent(10)) == 1


async def test_old_inbox_entries_and_sent_rows_are_forgotten_new_ones_kept(
    database: ServiceDatabase,
) -> None:
    old_id, new_id = uuid.uuid4(), uuid.uuid4()
    async with database.transaction() as tx:
        await database.first_delivery(tx, old_id, "orders.submitted")
        await tx.publish(ORDERS_STATUS, a_status("o-old"))
    async with database.sending(10):
        pass
    cut = datetime.now(UTC)
    async with database.transaction() as tx:
        await database.first_delivery(tx, new_id, "orders.submitted")
        await tx.publish(ORDERS_STATUS, a_status("o-new"))
    assert await database.forget_before(cut) == 2
    async with database.transaction() as tx:
        assert await database.first_delivery(tx, old_id, "orders.submitted")  # forgotten
        assert not await database.first_delivery(tx, new_id, "orders.submitted")
    assert len(await database.unsent(10)) == 1  # an unsent row is never forgotten


async def test_commit_actions_run_after_commit_and_never_after_a_rollback(
    database: ServiceDatabase,
) -> None:
    ran: list[str] = []
    with pytest.raises(RuntimeError):
        async with database.transaction() as tx:
            tx.on_commit(lambda: ran.append("rolled back"))
            raise RuntimeError("database away mid-transaction")
    async with database.transaction() as tx:
        tx.on_commit(lambda: ran.append("committed"))
        assert ran == []
    assert ran == ["committed"]


async def test_a_report_in_a_transaction_that_rolls_back_is_not_counted(
    database: ServiceDatabase,
) -> None:
    """A transaction retried after a database outage must count its order once, not twice."""
    labels = {"service": "tradelane", "channel": "unknown", "outcome": "received"}

    def counted() -> float:
        return REGISTRY.get_sample_value("tradelane_orders_total", labels) or 0.0

    before = counted()
    with pytest.raises(OperationalError):
        async with database.transaction() as tx:
            await tx.report(a_status("o-lost"), OrderState.RECEIVED)
            raise OperationalError("COMMIT", {}, Exception("database went away"))
    assert counted() == before
    async with database.transaction() as tx:
        await tx.report(a_status("o-kept"), OrderState.RECEIVED)
    assert counted() == before + 1
