"""Batches from a Faust stream without a timer: what arrived while the last batch was handled.

Faust's own `noack_take(n, within)` wakes every agent every `within` seconds,
busy or idle, through mode's `wait_for_stopped` (a task and a timer each
time); with eight agents per service that cost a fifth of a busy catalog's
CPU in the profile (docs/performance.md). Here a reader task moves the
stream's events into a bounded queue, and the agent takes the first event
when it comes and then, without waiting, every event already queued behind it,
up to the batch's size. Under load batches fill by themselves, since events
queue while a batch is in its transaction; when idle nothing wakes up.

`TRADELANE_BATCH_MAX_MS` (`wait_seconds`, default 0) lets a batch wait that
long for more events, but only while events flow: while the agent's typical
wait for a batch's first event (`Pace`) is under four times that. A quiet
agent handles each event at once, so a quiet system's latency is untouched.
On this project's 2-core benchmark a 20 ms wait lowered latency at a few dozen
orders a second and slowed bursts (docs/performance.md, "Seventh change"), so
it is left to ops to choose.

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


async def event_batches(
    events: AsyncIterator[Any],
    most: int,
    wait_seconds: float = 0.0,
    clock: Callable[[], float] = time.monotonic,
) -> AsyncGenerator[list[Any], None]:
    """Yield lists of up to `most` events from `events`, in order, as described above."""
    queued: asyncio.Queue[Any] = asyncio.Queue(maxsize=most)
    reader = asyncio.ensure_future(_read_into(events, queued))
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
                await _wait_for_more(queued, batch, most, wait_seconds)
            yield batch
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader


async def _read_into(events: AsyncIterator[Any], queued: asyncio.Queue[Any]) -> None:
    async for event in events:
        await queued.put(event)


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
    queued: asyncio.Queue[Any], batch: list[Any], most: int, seconds: float
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while len(batch) < most and (left := deadline - loop.time()) > 0:
        try:
            batch.append(await asyncio.wait_for(queued.get(), left))
        except TimeoutError:
            return
        _take_queued(queued, batch, most)
