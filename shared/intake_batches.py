"""Batches from a Faust stream without a timer: what arrived while the last batch was handled.

Faust's own `noack_take(n, within)` wakes every agent every `within` seconds,
busy or idle, through mode's `wait_for_stopped` (a task and a timer each
time); with eight agents per service that cost a fifth of a busy catalog's
CPU in the profile (docs/performance.md). Here a reader task moves the
stream's events into a bounded queue, and the agent takes the first event
when it comes and then, without waiting, every event already queued behind it,
up to the batch's size. Under load batches fill by themselves, since events
queue while a batch is in its transaction; when idle nothing wakes up, and a
lone event is handled at once. `TRADELANE_BATCH_MAX_MS`, when above 0, lets a
batch wait that long for more events before it is handled.

The events are not acknowledged here: the caller acknowledges each after its
batch commits. The queue keeps arrival order, so per-partition order holds.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any


class ReaderFailed(Exception):
    """The stream's reader task ended with an error; the agent must crash with it."""


class StreamEnded(Exception):
    """The stream stopped (the agent is being stopped): no more batches."""


async def event_batches(
    events: AsyncIterator[Any], most: int, wait_seconds: float = 0.0
) -> AsyncGenerator[list[Any], None]:
    """Yield lists of up to `most` events from `events`, in order, as described above."""
    queued: asyncio.Queue[Any] = asyncio.Queue(maxsize=most)
    reader = asyncio.ensure_future(_read_into(events, queued))
    try:
        while True:
            try:
                batch = [await _next(queued, reader)]
            except StreamEnded:
                return
            _take_queued(queued, batch, most)
            if wait_seconds > 0 and len(batch) < most:
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
