"""Graceful shutdown: on SIGTERM a service finishes what it holds, sends what it committed, exits.

The order matters and is the same for every service (`Service.run` wires it):

1. stop taking messages: the agents' intake closes and the partitions are paused;
   a message an agent has taken but not started stays unacknowledged, so Kafka
   redelivers it to whoever owns the partition next;
2. the messages in hand finish their transaction and are acknowledged;
3. the acknowledged offsets are committed;
4. the outbox relay sends every row committed so far, then stops;
5. Faust stops (consumer, web server, producer), the database engine is disposed,
   and the process exits 0.

All of it within `TRADELANE_SHUTDOWN_SECONDS` (the pod's grace period must be
longer). Whatever is still pending when the bound runs out is logged and the
process exits with `EXIT_UNFINISHED`: nothing is lost by that, since an
unacknowledged message is redelivered (the inbox drops a repeat) and an unsent
outbox row is sent at the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from shared.relay import OutboxRelay

log = logging.getLogger(__name__)

EXIT_UNFINISHED = 3
"""Exit code of a shutdown that ran out of time; the log line before it says what was pending."""

FAUST_STOP_SECONDS = 5.0
"""Kept back from the bound for Faust's own stop after the drain (about 2 to 3 s measured)."""


class Intake:
    """Whether the agents may take another message, and which messages they hold."""

    def __init__(self) -> None:
        self._open = True
        self._in_hand: dict[int, str] = {}
        self._next = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._never = asyncio.Event()

    @property
    def open(self) -> bool:
        return self._open

    def close(self) -> None:
        """Take no new message from now on; those in hand still finish."""
        self._open = False

    @contextlib.contextmanager
    def holding(self, what: str) -> Iterator[None]:
        """Mark a message as in hand (from before its transaction until it is acknowledged)."""
        key, self._next = self._next, self._next + 1
        self._in_hand[key] = what
        self._idle.clear()
        try:
            yield
        finally:
            del self._in_hand[key]
            if not self._in_hand:
                self._idle.set()

    async def closed(self) -> None:
        """Where an agent waits once the intake is closed, until Faust stops it."""
        await self._never.wait()

    async def until_idle(self, timeout: float) -> bool:
        """Wait until no message is in hand; False if some still are after `timeout`."""
        try:
            await asyncio.wait_for(self._idle.wait(), max(timeout, 0.0))
        except TimeoutError:
            return False
        return True

    def in_hand(self) -> list[str]:
        return list(self._in_hand.values())


async def drain(
    intake: Intake,
    relay: OutboxRelay,
    *,
    pause: Callable[[], None],
    commit: Callable[[], Awaitable[object]],
    seconds: float,
) -> list[str]:
    """Steps 1 to 4 above within `seconds`; what is still pending afterwards (empty: all done)."""
    deadline = time.monotonic() + seconds

    def remaining() -> float:
        return max(deadline - time.monotonic(), 0.0)

    pending: list[str] = []
    intake.close()
    try:
        pause()
    except Exception as error:  # not assigned yet, say: the closed intake is enough
        log.warning("pausing the partitions failed (%s); the closed intake holds them", error)
    if not await intake.until_idle(remaining()):
        pending.extend(f"message in hand: {what}" for what in intake.in_hand())
    # Even out of time: committing what was acknowledged spares redeliveries.
    committing = asyncio.ensure_future(commit())
    if not await _finished_within(committing, max(remaining(), 1.0)):
        pending.append("offset commit: no answer from the broker (Faust tries again as it stops)")
    elif (failure := committing.exception()) is not None:
        pending.append(f"offset commit: {type(failure).__name__}: {first_line(failure)}")
    if not await relay.stop(remaining()):
        pending.append(await _unsent(relay))
    return pending


async def _unsent(relay: OutboxRelay) -> str:
    counting = asyncio.ensure_future(relay.db.count_unsent())
    count: object = "some"  # the database may be the reason: then say so without the count
    if await _finished_within(counting, 2.0) and counting.exception() is None:
        count = counting.result()
    reason = first_line(relay.state.last_error) if relay.state.last_error else "still sending"
    return f"{count} outbox rows unsent ({reason})"


async def _finished_within(task: asyncio.Future[Any], timeout: float) -> bool:
    """Whether `task` finished within `timeout`; if not it is cancelled but not waited for.

    Not `asyncio.wait_for`: that waits for the cancellation to complete, and a
    database call stuck on a lock may not let go for seconds.
    """
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        task.cancel()
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # nothing to report
    return bool(done)


def first_line(error: object) -> str:
    """An error's first line (SQLAlchemy's go on with the SQL and a link)."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
