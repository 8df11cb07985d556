"""The outbox relay on a real database: a row the broker refuses for good is parked, not retried.

The sender here stands in for the producer's `send` so each answer of the broker
can be chosen; the relay over the real broker is covered end to end
(tests/e2e/test_hostile_input.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError, RecordTooLargeError
from sqlalchemy import MetaData

from shared.contract import OrderState, OrderStatusChanged
from shared.db import OutboxRow, ServiceDatabase
from shared.relay import OutboxRelay
from shared.topics import ORDERS_STATUS, TopicNames


@pytest.fixture
async def database(new_database_url: Callable[[str], str]) -> AsyncIterator[ServiceDatabase]:
    db = ServiceDatabase(new_database_url("sqlite"), MetaData(), TopicNames())
    await db.create_tables()
    yield db
    await db.dispose()


async def publish(db: ServiceDatabase, *order_ids: str) -> None:
    async with db.transaction() as tx:
        for order_id in order_ids:
            status = OrderStatusChanged.new(
                order_id=order_id, status=OrderState.RECEIVED, reported_by="test"
            )
            await tx.publish(ORDERS_STATUS, status)


class Broker:
    """Answers each send as told: accepted, refused for good, or unreachable."""

    def __init__(self) -> None:
        self.accepted: list[bytes | None] = []
        self.refuse: dict[bytes, Exception] = {}
        self.late_refusal: dict[bytes, Exception] = {}
        self.away = False

    async def send(self, row: OutboxRow) -> Awaitable[object]:
        if self.away:
            raise KafkaConnectionError("broker away")
        if row.key in self.refuse:
            raise self.refuse[row.key or b""]
        delivered: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        if row.key in self.late_refusal:
            delivered.set_exception(self.late_refusal[row.key or b""])
        else:
            self.accepted.append(row.key)
            delivered.set_result(None)
        return delivered


def relay_for(db: ServiceDatabase, broker: Broker, max_row_bytes: int = 1_000_000) -> OutboxRelay:
    return OutboxRelay(
        "test", db, broker.send, lambda t: t, poll_seconds=1.0, max_row_bytes=max_row_bytes
    )


async def test_a_row_the_broker_refuses_is_parked_and_the_rows_behind_it_go_out(
    database: ServiceDatabase,
) -> None:
    await publish(database, "o-1", "o-2", "o-3", "o-4")
    broker = Broker()
    broker.refuse[b"o-2"] = MessageSizeTooLargeError("too large")
    broker.late_refusal[b"o-3"] = RecordTooLargeError("broker says too large")
    relay = relay_for(database, broker)
    await relay.send_batch()
    assert broker.accepted == [b"o-1", b"o-4"]
    assert [(row.reason.split(":")[0]) for row in await database.parked()] == [
        "MessageSizeTooLargeError",
        "RecordTooLargeError",
    ]
    assert await database.unsent(10) == []


async def test_a_row_over_the_producer_limit_is_parked_without_being_sent(
    database: ServiceDatabase,
) -> None:
    await publish(database, "o-1")
    broker = Broker()
    relay = relay_for(database, broker, max_row_bytes=100)
    await relay.send_batch()
    [parked] = await database.parked()
    assert broker.accepted == [] and "exceed the producer's limit of 100" in parked.reason


async def test_a_broker_away_keeps_the_whole_batch_for_the_next_attempt(
    database: ServiceDatabase,
) -> None:
    await publish(database, "o-1", "o-2")
    broker = Broker()
    broker.away = True
    relay = relay_for(database, broker)
    with pytest.raises(KafkaConnectionError):
        await relay.send_batch()
    assert len(await database.unsent(10)) == 2 and await database.parked() == []
    broker.away = False
    await relay.send_batch()
    assert broker.accepted == [b"o-1", b"o-2"]


async def test_the_relay_wakes_on_a_commit_without_being_told(database: ServiceDatabase) -> None:
    broker = Broker()
    relay = relay_for(database, broker)
    relay.poll_seconds = 3600  # only the commit can wake it within the test's deadline
    running = asyncio.create_task(relay.run())
    try:
        await asyncio.sleep(0)
        await publish(database, "o-1")
        async with asyncio.timeout(10):
            while broker.accepted != [b"o-1"]:
                await asyncio.sleep(0.01)
    finally:
        assert await relay.stop(10)
        await asyncio.wait_for(running, 10)
