"""Batches taken from a stream without a timer (`shared.intake_batches`), on plain asyncio."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from shared.intake_batches import FLOWING_WAITS, Pace, ReaderFailed, event_batches


class Source:
    """A stream stand-in: yields what the test sends, ends at None, fails at an exception."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[int | Exception | None] = asyncio.Queue()

    def send(self, *events: int | Exception | None) -> None:
        for event in events:
            self.queue.put_nowait(event)

    async def events(self) -> AsyncIterator[int]:
        while True:
            event = await self.queue.get()
            if event is None:  # the stream stops
                return
            if isinstance(event, Exception):
                raise event
            yield event


async def settle() -> None:
    """Let the reader task move everything sent so far into the batch queue."""
    for _ in range(20):
        await asyncio.sleep(0)


async def test_a_lone_event_is_a_batch_of_one_at_once() -> None:
    source = Source()
    batches = event_batches(source.events(), most=10)
    source.send(1)
    assert await asyncio.wait_for(anext(batches), 5) == [1]
    await batches.aclose()


async def test_events_queued_behind_the_first_join_its_batch_in_order_up_to_the_most() -> None:
    source = Source()
    batches = event_batches(source.events(), most=3)
    source.send(1)
    first = await asyncio.wait_for(anext(batches), 5)
    source.send(2, 3, 4, 5)  # they queue while the first batch is being handled
    await settle()
    assert first == [1]
    assert await anext(batches) == [2, 3, 4]
    assert await anext(batches) == [5]
    await batches.aclose()


async def test_while_events_flow_a_batch_waits_for_more_until_it_is_full() -> None:
    source = Source()
    readings = iter([0.0, 0.01])  # the first event came 10 ms after the agent asked
    batches = event_batches(source.events(), most=3, wait_seconds=60, clock=lambda: next(readings))
    source.send(1)
    loop = asyncio.get_running_loop()
    loop.call_later(0.05, source.send, 2)
    loop.call_later(0.1, source.send, 3)
    assert await asyncio.wait_for(anext(batches), 5) == [1, 2, 3]
    await batches.aclose()


async def test_a_batch_still_short_when_its_wait_is_up_goes_with_what_came() -> None:
    source = Source()
    readings = iter([0.0, 0.01])  # flowing, as above
    batches = event_batches(
        source.events(), most=3, wait_seconds=0.05, clock=lambda: next(readings)
    )
    source.send(1)
    assert await asyncio.wait_for(anext(batches), 5) == [1]
    await batches.aclose()


async def test_an_event_after_a_quiet_spell_goes_at_once_though_batches_may_wait() -> None:
    source = Source()
    quiet = FLOWING_WAITS * 60 + 1
    readings = iter([0.0, quiet])  # the first event came long after the agent asked
    batches = event_batches(source.events(), most=2, wait_seconds=60, clock=lambda: next(readings))
    source.send(1)
    assert await asyncio.wait_for(anext(batches), 5) == [1]  # not held 60 s for a second
    await batches.aclose()


def test_events_flow_while_the_typical_wait_for_one_is_short_and_stop_after_quiet() -> None:
    pace = Pace()
    assert not pace.flowing(0.02)  # nothing seen yet: quiet
    for _ in range(5):
        pace.waited(0.0)  # events were queued each time a batch was asked for
    assert pace.flowing(0.02)
    assert not pace.flowing(0.0)  # no waiting configured: never
    pace.waited(10.0)  # a quiet spell
    assert not pace.flowing(0.02)


async def test_a_failing_stream_fails_the_agent_with_its_error() -> None:
    source = Source()
    batches = event_batches(source.events(), most=5)
    source.send(1)
    assert await asyncio.wait_for(anext(batches), 5) == [1]
    source.send(RuntimeError("broker gone"))
    with pytest.raises(ReaderFailed, match="broker gone"):
        await asyncio.wait_for(anext(batches), 5)


async def test_a_stream_that_stops_ends_the_batches_without_an_error() -> None:
    source = Source()
    batches = event_batches(source.events(), most=5)
    source.send(1, 2, None)
    taken = [event async for batch in batches for event in batch]
    assert taken == [1, 2]
