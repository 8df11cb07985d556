"""Batches taken from a stream without a timer (`shared.intake_batches`), on plain asyncio."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from shared.intake_batches import ReaderFailed, event_batches


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


async def test_a_batch_may_wait_for_more_until_it_is_full() -> None:
    source = Source()
    batches = event_batches(source.events(), most=2, wait_seconds=60)
    source.send(1)
    asyncio.get_running_loop().call_soon(source.send, 2)
    assert await asyncio.wait_for(anext(batches), 5) == [1, 2]
    await batches.aclose()


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
