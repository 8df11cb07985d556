"""Batches from a Faust stream: what arrived while the last batch was handled, idle costing nothing.

Faust's own `noack_take(n, within)` wakes every agent every `within` seconds,
busy or idle, through mode's `wait_for_stopped` (a task and a timer each
time); with eight agents per service that cost a fifth of a busy catalog's
CPU in the profile (docs/performance.md). Here a reader task moves the
stream's events into a bounded queue, and the agent takes the first event
when it comes and then, without waiting, every event already queued behind it,
up to the batch's size. Under load batches fill by themselves, since events
queue while a batch is in its transaction; when idle nothing wakes up.

`TRADELANE_BATCH_MAX_MS` (`wait_seconds`, default 20) lets a batch wait that
long for more events, but only while events flow: while the agent's typical
wait for a batch's first event (`Pace`) is under four times that. A quiet
agent handles each event at once, so a quiet system's latency is untouched;
at a few dozen orders a second, where each event would otherwise be a
transaction of its own on a contended machine, the wait roughly halved the
latency (docs/performance.md, "Eighth change"). The waiting batch sleeps on
one future that the reader settles once enough events are queued, and one
timer: nothing per event.

The events are not acknowledged here: the caller acknowledges each after its
batch commits. The queue keeps arrival order, so per-partition order holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any


class ReaderFailed(Exception):
    """The stream's reader task ended with an error; the agent must crash with it."""


class StreamEnded(Exception):
    """The stream stopped (the agent is being stopped): no more batches."""


FLOWING_WAITS = 4.0
"""Events flow while an agent's typical wait for a batch's first event is under this many
batch waits (`wait_seconds`): at 20 ms, from about a dozen events a second."""
PACE_WEIGHT = 0.2
"""How much the latest wait moves the typical one (an exponentially weighted average)."""


class Pace:
    """How long an agent has typically waited for the first event of a batch."""

    def __init__(self) -> None:
        self.typical_wait = math.inf  # quiet until events show otherwise

    def waited(self, seconds: float) -> None:
        if math.isinf(self.typical_wait):
            self.typical_wait = seconds
        else:
            self.typical_wait += PACE_WEIGHT * (seconds - self.typical_wait)

    def flowing(self, wait_seconds: float) -> bool:
        return self.typical_wait < FLOWING_WAITS * wait_seconds


class Wanted:
    """What a waiting batch lacks: the reader wakes it once that many events are queued."""

    def __init__(self) -> None:
        self.count = 0
        self.enough: asyncio.Future[None] | None = None

    def queued(self, count: int) -> None:
        if self.enough is not None and count >= self.count:
            _settle(self.enough)


async def event_batches(
    events: AsyncIterator[Any],
    most: int,
    wait_seconds: float = 0.0,
    clock: Callable[[], float] = time.monotonic,
) -> AsyncGenerator[list[Any], None]:
    """Yield lists of up to `most` events from `events`, in order, as described above."""
    queued: asyncio.Queue[Any] = asyncio.Queue(maxsize=most)
    wanted = Wanted()
    reader = asyncio.ensure_future(_read_into(events, queued, wanted))
    pace = Pace()
    try:
        while True:
            asked = clock()
            try:
                batch = [await _next(queued, reader)]
            except StreamEnded:
                return
            pace.waited(clock() - asked)
            _take_queued(queued, batch, most)
            if pace.flowing(wait_seconds) and len(batch) < most:
                await _wait_for_more(queued, batch, most, wait_seconds, wanted)
            yield batch
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader


async def _read_into(
    events: AsyncIterator[Any], queued: asyncio.Queue[Any], wanted: Wanted
) -> None:
    async for event in events:
        await queued.put(event)
        wanted.queued(queued.qsize())


async def _next(queued: asyncio.Queue[Any], reader: asyncio.Future[None]) -> Any:
    """The next event; the reader's error if it stopped (a stream never ends by itself)."""
    if not queued.empty():
        return queued.get_nowait()
    getting = asyncio.ensure_future(queued.get())
    try:
        await asyncio.wait({getting, reader}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not getting.done():
            getting.cancel()
    if getting.done() and not getting.cancelled():
        return getting.result()
    error = None if reader.cancelled() else reader.exception()
    if error is None:  # the stream ended or was stopped: the agent is stopping
        raise StreamEnded
    raise ReaderFailed(f"the stream's reader failed: {error!r}") from error


def _take_queued(queued: asyncio.Queue[Any], batch: list[Any], most: int) -> None:
    while len(batch) < most and not queued.empty():
        batch.append(queued.get_nowait())


async def _wait_for_more(
    queued: asyncio.Queue[Any], batch: list[Any], most: int, seconds: float, wanted: Wanted
) -> None:
    """Wait until the queue holds what the batch lacks, or `seconds`, then take it.

    A task and a timer for every event that arrived during the wait (what
    `asyncio.wait_for` on each `get` costs) is work a busy agent cannot spare.
    """
    lacking = most - len(batch)
    if queued.qsize() < lacking:
        loop = asyncio.get_running_loop()
        enough: asyncio.Future[None] = loop.create_future()
        wanted.count, wanted.enough = lacking, enough
        timer = loop.call_later(seconds, _settle, enough)
        try:
            await enough
        finally:
            timer.cancel()
            wanted.enough = None
    _take_queued(queued, batch, most)


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
