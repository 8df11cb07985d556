"""Batches on a real PostgreSQL: a failed transaction is run again whole, a deadlock resolves.

A batch is one transaction, so the database can fail it as a whole: the
connection dies mid-batch, or two workers' batches lock the same rows in
opposite orders and PostgreSQL aborts one of them (deadlock_detected). Either
way every event must take effect exactly once in the end.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, select, text, update

from shared.consume import Handler
from shared.contract import OrderState, OrderStatusChanged
from shared.db import ServiceDatabase, Transaction
from shared.topics import ORDERS_STATUS, TopicNames
from tests.support.bench import ServiceBench
from tests.support.postgres import drop_connections_to

WAIT_SECONDS = 60.0


def tally_tables() -> tuple[MetaData, Table]:
    metadata = MetaData()
    tally = Table(
        "tally",
        metadata,
        Column("name", String(64), primary_key=True),
        Column("count", Integer, nullable=False),
    )
    return metadata, tally


def status(name: str) -> OrderStatusChanged:
    return OrderStatusChanged.new(order_id=name, status=OrderState.RECEIVED, reported_by="test")


async def count(tx: Transaction, tally: Table, name: str) -> None:
    await tx.session.execute(
        update(tally).where(tally.c.name == name).values(count=tally.c.count + 1)
    )


@asynccontextmanager
async def bench_on(
    url: str, metadata: MetaData, tally: Table, handler: Handler[OrderStatusChanged]
) -> AsyncIterator[ServiceBench]:
    bench = await ServiceBench("svc", metadata, {ORDERS_STATUS: handler}, url).start()
    try:
        yield bench
    finally:
        await bench.dispose()


async def seed_tally(db: ServiceDatabase, tally: Table, *names: str) -> None:
    async with db.transaction() as tx:
        for name in names:
            await tx.session.execute(tally.insert().values(name=name, count=0))


async def tallies(db: ServiceDatabase, tally: Table) -> dict[str, int]:
    async with db.sessions() as session:
        return {name: n for name, n in await session.execute(select(tally.c.name, tally.c.count))}


async def inbox_size(db: ServiceDatabase) -> int:
    async with db.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(db.inbox)) or 0)


async def test_a_batch_whose_connection_dies_mid_way_is_run_again_whole(
    new_database_url: Callable[[str], str],
) -> None:
    metadata, tally = tally_tables()
    url = new_database_url("postgresql")
    admin = ServiceDatabase(url, MetaData(), TopicNames())
    attempts: list[str] = []

    async def count_and_lose_the_connection_once(
        event: OrderStatusChanged, tx: Transaction
    ) -> None:
        attempts.append(event.order_id)
        await count(tx, tally, event.order_id)
        if event.order_id == "c" and attempts.count("c") == 1:
            pid = await tx.session.scalar(text("SELECT pg_backend_pid()"))
            async with admin.engine.connect() as connection:
                await connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            await tx.session.execute(text("SELECT 1"))  # the connection is gone

    try:
        async with bench_on(url, metadata, tally, count_and_lose_the_connection_once) as bench:
            await seed_tally(bench.db, tally, "a", "b", "c", "d")
            async with asyncio.timeout(WAIT_SECONDS):
                await bench.deliver_batch(ORDERS_STATUS, [status(n) for n in "abcd"])

            assert attempts == ["a", "b", "c", "a", "b", "c", "d"]
            assert await tallies(bench.db, tally) == {"a": 1, "b": 1, "c": 1, "d": 1}
            assert await inbox_size(bench.db) == 4
            assert await bench.dead_letters(ORDERS_STATUS) == []
    finally:
        await admin.dispose()


async def test_connections_the_database_dropped_while_idle_cost_a_rerun_not_an_event(
    new_database_url: Callable[[str], str], caplog: pytest.LogCaptureFixture
) -> None:
    """What a database restart does to the pool: every idle connection is gone. Nothing
    pings a connection before use (three round trips per transaction), so the first batch
    fails on one; the pool is then renewed and the batch runs again, whole and once."""
    metadata, tally = tally_tables()
    url = new_database_url("postgresql")
    attempts: list[str] = []

    async def counted(event: OrderStatusChanged, tx: Transaction) -> None:
        attempts.append(event.order_id)
        await count(tx, tally, event.order_id)

    async with bench_on(url, metadata, tally, counted) as bench:
        await seed_tally(bench.db, tally, "a", "b")
        await bench.deliver_batch(ORDERS_STATUS, [status("a")])
        assert await drop_connections_to(url), "the service's pool held no connection to drop"
        async with asyncio.timeout(WAIT_SECONDS):
            await bench.deliver_batch(ORDERS_STATUS, [status("b")])

        assert "database unavailable" in caplog.text  # the dropped connection was met
        assert await tallies(bench.db, tally) == {"a": 1, "b": 1}
        assert await inbox_size(bench.db) == 2
        assert await bench.dead_letters(ORDERS_STATUS) == []


async def test_two_batches_that_deadlock_both_commit_exactly_once(
    new_database_url: Callable[[str], str], caplog: pytest.LogCaptureFixture
) -> None:
    """Two workers, two batches locking rows `x` and `y` in opposite orders, both held at
    once: PostgreSQL aborts one, which runs again after the other committed."""
    metadata, tally = tally_tables()
    url = new_database_url("postgresql")
    both_hold_their_first_row = asyncio.Barrier(2)
    met = asyncio.Event()
    caplog.set_level(logging.INFO, logger="shared.consume")

    async def count_after_the_other_worker_locked(
        event: OrderStatusChanged, tx: Transaction
    ) -> None:
        row, turn = event.order_id.split(":")
        await count(tx, tally, row)
        if turn == "first" and not met.is_set():  # only the first attempts meet
            async with asyncio.timeout(WAIT_SECONDS):
                await both_hold_their_first_row.wait()
            met.set()

    async with (
        bench_on(url, metadata, tally, count_after_the_other_worker_locked) as one,
        bench_on(url, metadata, tally, count_after_the_other_worker_locked) as other,
    ):
        await seed_tally(one.db, tally, "x", "y")
        x_then_y = [status("x:first"), status("y:second")]
        y_then_x = [status("y:first"), status("x:second")]
        async with asyncio.timeout(WAIT_SECONDS):
            await asyncio.gather(
                one.deliver_batch(ORDERS_STATUS, x_then_y),
                other.deliver_batch(ORDERS_STATUS, y_then_x),
            )
        assert "deadlock detected" in caplog.text  # PostgreSQL did abort one of them
        assert await tallies(one.db, tally) == {"x": 2, "y": 2}
        assert await inbox_size(one.db) == 4
        assert await one.dead_letters(ORDERS_STATUS) == []


async def test_two_workers_given_the_same_batch_at_once_take_each_event_once(
    new_database_url: Callable[[str], str],
) -> None:
    """A rebalance can hand a batch to a second worker while the first is still in it: the
    second's inbox insert waits for the first's rows, then finds every event taken."""
    metadata, tally = tally_tables()
    url = new_database_url("postgresql")
    admin = ServiceDatabase(url, MetaData(), TopicNames())
    first_in = asyncio.Event()

    async def others_waiting_on_a_lock() -> int:
        async with admin.engine.connect() as connection:
            waiting = await connection.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE wait_event_type = 'Lock' AND datname = current_database()"
                )
            )
        return int(waiting or 0)

    async def count_and_hold_until_the_other_waits(
        event: OrderStatusChanged, tx: Transaction
    ) -> None:
        await count(tx, tally, event.order_id)
        if not first_in.is_set():
            first_in.set()
            while await others_waiting_on_a_lock() == 0:
                await asyncio.sleep(0.05)

    batch = [status(n) for n in "abc"]
    try:
        async with (
            bench_on(url, metadata, tally, count_and_hold_until_the_other_waits) as one,
            bench_on(url, metadata, tally, count_and_hold_until_the_other_waits) as other,
        ):
            await seed_tally(one.db, tally, "a", "b", "c")

            async def second_worker() -> None:
                await first_in.wait()
                await other.deliver_batch(ORDERS_STATUS, batch)

            async with asyncio.timeout(WAIT_SECONDS):
                await asyncio.gather(one.deliver_batch(ORDERS_STATUS, batch), second_worker())

            assert await tallies(one.db, tally) == {"a": 1, "b": 1, "c": 1}
            assert await inbox_size(one.db) == 3
    finally:
        await admin.dispose()
