"""The outbox relay: publishes what transactions wrote, in order; one bad row never blocks it.

Rows are sent oldest first and marked sent in the transaction that locked
them. A row the broker refuses for good (too large, an invalid topic) is
*parked*: set aside with the broker's reason, counted, shown on `/health`,
and left for ops to retry or drop (`tradelane outbox`), while the rows behind
it go out. Anything else (the broker away, a timeout) keeps the batch
unsent and retries it with back-off: at-least-once, which the consumers'
inboxes turn into once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiokafka.errors import (
    CorruptRecordException,
    InvalidTopicError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
    UnsupportedForMessageFormatError,
)

from shared import metrics
from shared.db import OutboxBatch, OutboxRow, ServiceDatabase

log = logging.getLogger(__name__)

BATCH_ROWS = 500
RETRY_FIRST_SECONDS = 0.5
RETRY_MAX_SECONDS = 30.0
FAILING_AFTER_SECONDS = 60.0
"""A relay that has not managed to send for this long is reported on `/health`."""

REFUSED_FOR_GOOD = (
    MessageSizeTooLargeError,
    RecordTooLargeError,
    RecordListTooLargeError,
    InvalidTopicError,
    CorruptRecordException,
    UnsupportedForMessageFormatError,
)
"""Errors about the record itself: sending it again would fail again."""

Send = Callable[[OutboxRow], Awaitable[Awaitable[object]]]
"""Hand a row to the producer; the awaitable it returns resolves once the broker has it."""


@dataclass
class RelayState:
    running: bool = False
    failing_since: float | None = None
    last_error: str = ""


class OutboxRelay:
    """Publishes one service's outbox; woken by every commit that wrote to it."""

    def __init__(
        self,
        service: str,
        db: ServiceDatabase,
        send: Send,
        logical_topic: Callable[[str], str],
        *,
        poll_seconds: float,
        max_row_bytes: int,
    ) -> None:
        self.service = service
        self.db = db
        self.send = send
        self.logical_topic = logical_topic
        self.poll_seconds = poll_seconds
        self.max_row_bytes = max_row_bytes
        self.state = RelayState()
        self._stopping = False
        self._finished = asyncio.Event()

    async def run(self) -> None:
        """Send rows as transactions commit them, until `stop` asks for the last of them."""
        self.state.running = True
        self._finished.clear()
        delay = RETRY_FIRST_SECONDS
        try:
            while True:
                if not self._stopping:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.db.outbox_written.wait(), self.poll_seconds)
                self.db.outbox_written.clear()
                try:
                    while await self.send_batch():
                        pass
                except Exception as error:  # broker or database away: keep the rows, try again
                    self._failed(error)
                    log.warning(
                        "%s: outbox relay failed (%s); retrying in %.1fs",
                        self.service,
                        error,
                        delay,
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX_SECONDS)
                    continue
                self.state.failing_since = None
                delay = RETRY_FIRST_SECONDS
                if self._stopping:
                    return  # every row committed before `stop` was called is sent
        finally:
            self.state.running = False
            self._finished.set()

    async def stop(self, timeout: float) -> bool:
        """Send every row committed so far, then stop; False if that takes over `timeout`.

        The relay's own loop does the sending (one sender, so no row goes out
        twice); if it is not running, a loop is started for the purpose.
        """
        self._stopping = True
        self.db.outbox_written.set()
        own = None
        if not self.state.running:
            self._finished.clear()
            own = asyncio.ensure_future(self.run())
        try:
            await asyncio.wait_for(self._finished.wait(), max(timeout, 0.0))
        except TimeoutError:
            if own is not None:  # not waited for: a send stuck on the database may not let go
                own.cancel()
            return False
        return True

    async def send_batch(self) -> bool:
        """Send the oldest unsent rows; True if there may be more waiting."""
        started = time.perf_counter()
        async with self.db.sending(BATCH_ROWS) as batch:
            await self._deliver(batch)
        for row in batch.sent:
            metrics.EVENTS_PRODUCED.labels(self.service, self.logical_topic(row.topic)).inc()
        for row in batch.rows:
            if row.id in batch.parked:
                self._report_parked(row, batch.parked[row.id])
        if batch.rows:
            metrics.OUTBOX_RELAY_SECONDS.labels(self.service).observe(time.perf_counter() - started)
        return len(batch.rows) == BATCH_ROWS

    async def _deliver(self, batch: OutboxBatch) -> None:
        """Send every row; park those refused for good, raise if any other failure happened."""
        pending: list[tuple[OutboxRow, Awaitable[object]]] = []
        for row in batch.rows:
            if row.size > self.max_row_bytes:
                batch.park(
                    row, f"{row.size} bytes exceed the producer's limit of {self.max_row_bytes}"
                )
                continue
            try:
                pending.append((row, await self.send(row)))
            except REFUSED_FOR_GOOD as refused:
                batch.park(row, f"{type(refused).__name__}: {refused}")
        outcomes = await asyncio.gather(*(d for _, d in pending), return_exceptions=True)
        for (row, _), outcome in zip(pending, outcomes, strict=True):
            if isinstance(outcome, REFUSED_FOR_GOOD):
                batch.park(row, f"{type(outcome).__name__}: {outcome}")
            elif isinstance(outcome, BaseException):
                raise outcome

    def _report_parked(self, row: OutboxRow, reason: str) -> None:
        topic = self.logical_topic(row.topic)
        metrics.OUTBOX_PARKED_TOTAL.labels(self.service, topic).inc()
        log.error(
            "%s: outbox row %d for %s parked (%s); see `tradelane outbox list --service %s`",
            self.service,
            row.id,
            topic,
            reason,
            self.service,
        )

    def _failed(self, error: Exception) -> None:
        self.state.last_error = f"{type(error).__name__}: {error}"[:300]
        if self.state.failing_since is None:
            self.state.failing_since = time.monotonic()

    def problems(self) -> list[str]:
        found = []
        if not self.state.running:
            found.append("outbox relay is not running")
        failing = self.state.failing_since
        if failing is not None and time.monotonic() - failing > FAILING_AFTER_SECONDS:
            found.append(
                f"outbox relay has not sent for {time.monotonic() - failing:.0f}s: "
                f"{self.state.last_error}"
            )
        return found
