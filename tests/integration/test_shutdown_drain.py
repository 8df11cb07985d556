"""Graceful shutdown in-process on SQLite: the relay's flush on stop and the drain's order.

The broker is a stand-in for the producer (as in test_outbox_relay.py); SIGTERM
over the real broker and real processes is tests/e2e/test_shutdown.py.
"""

from __future__ import annotations

import asyncio

import faust
import pytest

from shared.db import ServiceDatabase
from shared.relay import BATCH_ROWS
from shared.shutdown import Intake, drain
from tests.integration.test_outbox_relay import Broker, database, publish, relay_for

__all__ = ["database"]  # the fixture, imported for this module's tests


async def finished(*tasks: asyncio.Task[None]) -> None:
    """Cancel the test's own tasks and wait for them, so none touches the database after
    the test's event loop is closed (aiosqlite's thread would answer a closed loop)."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_stop_sends_every_committed_row_once_then_the_relay_ends(
    database: ServiceDatabase,
) -> None:
    broker = Broker()
    relay = relay_for(database, broker)
    relay.poll_seconds = 3600  # only commits and `stop` wake it
    running = asyncio.create_task(relay.run())
    order_ids = [f"o-{n}" for n in range(BATCH_ROWS + 20)]  # more than one batch
    await publish(database, *order_ids)

    assert await relay.stop(10)

    await asyncio.wait_for(running, 1)
    assert broker.accepted == [o.encode() for o in order_ids]
    assert await database.count_unsent() == 0
    assert not relay.state.running


async def test_stop_without_a_running_relay_still_sends_the_rows(
    database: ServiceDatabase,
) -> None:
    await publish(database, "o-1", "o-2")
    broker = Broker()

    assert await relay_for(database, broker).stop(10)

    assert broker.accepted == [b"o-1", b"o-2"]


async def test_stop_gives_up_after_its_timeout_and_keeps_the_rows(
    database: ServiceDatabase,
) -> None:
    await publish(database, "o-1")
    broker = Broker()
    broker.away = True
    relay = relay_for(database, broker)
    running = asyncio.create_task(relay.run())

    assert not await relay.stop(0.3)

    assert await database.count_unsent() == 1  # sent at the next start
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running


async def test_drain_finishes_the_message_in_hand_before_committing_and_sending(
    database: ServiceDatabase,
) -> None:
    broker = Broker()
    relay = relay_for(database, broker)
    relay_task = asyncio.create_task(relay.run())
    intake = Intake()
    steps: list[str] = []
    handler_may_finish = asyncio.Event()

    async def agent() -> None:
        with intake.holding("orders.submitted partition 0 offset 7"):
            steps.append("handling")
            await handler_may_finish.wait()
            await publish(database, "in-hand")
            steps.append("acked")
        assert not intake.open  # the next message is not taken
        steps.append("idle")
        await intake.closed()

    async def commit() -> None:
        steps.append("commit")

    agent_task = asyncio.create_task(agent())
    await asyncio.sleep(0)
    draining = asyncio.create_task(
        drain(intake, relay, pause=lambda: steps.append("pause"), commit=commit, seconds=10)
    )
    await asyncio.sleep(0.05)
    assert steps == ["handling", "pause"]  # waiting for the message in hand
    handler_may_finish.set()

    assert await draining == []

    assert steps == ["handling", "pause", "acked", "idle", "commit"]
    assert broker.accepted == [b"in-hand"]
    await asyncio.wait_for(relay_task, 1)
    await finished(agent_task)


async def test_drain_names_what_is_still_pending_when_time_runs_out(
    database: ServiceDatabase,
) -> None:
    await publish(database, "o-1", "o-2")
    broker = Broker()
    broker.away = True
    relay = relay_for(database, broker)
    relay_task = asyncio.create_task(relay.run())  # failing to reach the broker
    intake = Intake()
    stuck = asyncio.Event()

    async def agent() -> None:
        with intake.holding("orders.submitted partition 1 offset 42"):
            await stuck.wait()  # a database that does not come back, say

    async def commit() -> None:
        pass

    agent_task = asyncio.create_task(agent())
    await asyncio.sleep(0)

    pending = await drain(intake, relay, pause=lambda: None, commit=commit, seconds=0.5)

    assert pending[0] == "message in hand: orders.submitted partition 1 offset 42"
    assert pending[1].startswith("2 outbox rows unsent (KafkaConnectionError: ")
    await finished(agent_task, relay_task)


def test_faust_still_has_the_signal_hook_the_service_overrides() -> None:
    """`Service.run` finishes the drain inside mode's `Worker._stop_on_signal`: a mode
    upgrade that renames it must fail here, not silently skip the drain."""
    assert callable(getattr(faust.Worker, "_stop_on_signal", None))
