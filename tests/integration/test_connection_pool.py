"""A worker's PostgreSQL connections: bounded by its settings, and never a reason to reject.

Ops size the server's `max_connections` from `TRADELANE_DATABASE_POOL_SIZE` and
`_MAX_OVERFLOW`, so the bound must hold; and a worker whose pool is momentarily
exhausted must wait for a connection like for a database outage, not fail the order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest
from sqlalchemy import MetaData

from shared.contract import OrderState, OrderStatusChanged
from shared.db import ConnectionPool, ServiceDatabase, Transaction
from shared.topics import ORDERS_STATUS, TopicNames
from tests.support.bench import ServiceBench

WAIT_SECONDS = 30.0


async def test_a_worker_holds_at_most_its_pool_and_overflow(
    new_database_url: Callable[[str], str],
) -> None:
    db = ServiceDatabase(
        new_database_url("postgresql"), MetaData(), TopicNames("t."), pool=ConnectionPool(2, 1)
    )
    try:
        connections = [await db.engine.connect() for _ in range(3)]
        assert db.engine.pool.checkedout() == 3  # type: ignore[attr-defined]
        for connection in connections:
            await connection.close()
        assert db.engine.pool.checkedin() == 2  # type: ignore[attr-defined]  # overflow closed
    finally:
        await db.dispose()


async def test_an_exhausted_pool_delays_an_event_and_never_fails_it(
    new_database_url: Callable[[str], str], caplog: pytest.LogCaptureFixture
) -> None:
    handled: list[str] = []

    async def note_status(event: OrderStatusChanged, tx: Transaction) -> None:
        handled.append(event.order_id)

    bench = ServiceBench(
        "svc",
        MetaData(),
        {ORDERS_STATUS: note_status},
        new_database_url("postgresql"),
        pool=ConnectionPool(size=1, overflow=0, wait_seconds=0.1),
    )
    await bench.start()
    caplog.set_level(logging.WARNING, logger="shared.consume")
    try:
        busy = await bench.db.engine.connect()  # the pool's only connection
        status = OrderStatusChanged.new(
            order_id="o-1", status=OrderState.RECEIVED, reported_by="test"
        )
        delivering = asyncio.create_task(bench.deliver(ORDERS_STATUS, status))
        async with asyncio.timeout(WAIT_SECONDS):
            while "database unavailable" not in caplog.text:
                await asyncio.sleep(0.05)
        assert handled == [] and not delivering.done()
        await busy.close()
        async with asyncio.timeout(WAIT_SECONDS):
            await delivering
        assert handled == ["o-1"]
        assert await bench.dead_letters(ORDERS_STATUS) == []
    finally:
        await bench.dispose()
