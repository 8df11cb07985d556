"""The one way an event reaches a handler: guarded, exactly once in effect, never lost.

Everything between a broker's message and a service's handler lives here,
once, with no Faust and no Kafka in sight (the service wires a Faust agent to
`EventConsumer.consume_batch`; tests call it directly):

- a message larger than its topic's limit is dead-lettered unread;
- the raw bytes are validated strictly against the topic's model; a message
  that is not valid goes to `<topic>.dlq` (and, for order topics, the order is
  rejected with `invalid_event`) — nothing a message contains escapes this;
- messages come in batches, one transaction per batch: every event id goes
  into the inbox in one statement, the handlers run one after another, and
  the outgoing events are written in one statement at the commit, so a
  redelivery changes nothing;
- when a handler refuses or fails an event, that transaction is undone and
  the batch runs again with a savepoint per message: whatever one message
  does, only its own savepoint rolls back, and its dead letter is written in
  the batch's transaction beside its neighbours;
- a handler that refuses the event (`Refused`) sends it to the DLQ untouched;
  one that fails rejects the order `processing_failed` and holds nothing;
- a database outage is retried (the partition waits), never dead-lettered; so
  is a batch PostgreSQL aborted to break a deadlock, a few times, before its
  messages are taken one transaction each;
- a service never handles its own order reports (`shared.topics.REPEATING_TOPICS`
  carry them back to it): they pass by without an inbox row;
- a handler may look at the whole batch first (`ReadingAhead`) and load what
  its events will look up in one statement per table.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Generic, TypeVar

from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolExhausted

from shared import metrics
from shared.contract import (
    Channel,
    DeadLetter,
    Event,
    Order,
    OrderState,
    OrderStatusChanged,
    Reason,
    ReasonCode,
)
from shared.contract.orders import ID_MAX_LENGTH
from shared.db import ServiceDatabase, Transaction, lost_a_race
from shared.lag import ConsumerProgress
from shared.rejection import Refused
from shared.shutdown import first_line
from shared.topics import TopicNames, TopicSpec

log = logging.getLogger(__name__)

E = TypeVar("E", bound=Event)
Handler = Callable[[E, Transaction], Awaitable[None]]

RETRY_FIRST_SECONDS = 0.5
RETRY_MAX_SECONDS = 30.0
BATCH_RACES = 5
"""Times a batch that lost a race (a deadlock, a serialization conflict) is run again whole
before its messages are taken one transaction each."""
RACE_PAUSE_SECONDS = 0.05
"""The longest random pause before a lost race's first rerun (longer after each loss)."""


class NeedsSavepoints(Exception):
    """A handler refused or failed an event in a batch run without savepoints: the batch
    is undone and runs again with one savepoint per event, so the event goes alone."""


@dataclass(frozen=True)
class Unreadable:
    """A message that never becomes an event (too large, or not valid): it is dead-lettered."""

    problem: str
    refusal: Refusal | None = None


@dataclass(frozen=True)
class ReadingAhead(Generic[E]):
    """A handler that first sees the whole batch: `read_ahead` loads, one statement per
    table, the rows every event of the batch will look up (`shared.batch_reads`), so a
    hundred new orders cost one look-up, not a hundred. It only reads, and runs in the
    batch's transaction before the first handler, outside any event's savepoint.
    """

    handler: Handler[E]
    read_ahead: Callable[[Sequence[E], Transaction], Awaitable[None]]

    async def __call__(self, event: E, tx: Transaction) -> None:
        await self.handler(event, tx)


@dataclass(frozen=True)
class Delivery:
    """One message as the broker handed it over."""

    value: bytes | None
    key: bytes | None
    partition: int
    offset: int
    timestamp: float | None = None
    """The record's timestamp in epoch seconds (Kafka's, as Faust reads it), for the lag."""


def partition_ends(deliveries: Sequence[Delivery]) -> tuple[list[Delivery], list[Delivery]]:
    """The first and the last delivery of each partition in a batch (arrival order)."""
    first: dict[int, Delivery] = {}
    last: dict[int, Delivery] = {}
    for delivery in deliveries:
        first.setdefault(delivery.partition, delivery)
        last[delivery.partition] = delivery
    return list(first.values()), list(last.values())


def database_trouble(error: BaseException) -> bool:
    """The database, not the event, is why this failed: away, out of connections, or a lost
    race. The cure is to run the transaction again, never to dead-letter the event."""
    if isinstance(error, PoolExhausted) or lost_a_race(error):
        return True
    return isinstance(error, DBAPIError) and (
        isinstance(error, OperationalError) or error.connection_invalidated
    )


def describe_validation_error(error: ValidationError) -> str:
    """One line per problem: which field, what was wrong, e.g. `lines.0.quantity: …`."""
    parts = []
    for problem in error.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in problem["loc"]) or "(message)"
        parts.append(f"{where}: {problem['msg']}")
    return "; ".join(parts)


def readable_ids(raw: bytes) -> tuple[str | None, str | None]:
    """Best effort: the order id and account id of a message that failed validation.

    Whatever the message holds, this answers: JSON nested past the parser's
    depth, broken UTF-8 or a number with a million digits is simply unreadable.
    """
    try:
        body = json.loads(raw)
    except Exception:  # RecursionError, ValueError, UnicodeDecodeError, …: no ids to read
        return None, None
    if not isinstance(body, dict):
        return None, None
    if isinstance(body.get("order"), dict):
        body = body["order"]
    order_id, account_id = body.get("order_id"), body.get("account_id")
    return (
        order_id if _usable_id(order_id) else None,
        account_id if _usable_id(account_id) else None,
    )


def _usable_id(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= ID_MAX_LENGTH


def order_named_by(event: Event) -> Refusal | None:
    """The order a valid order-topic event is about (`order_id` on it or on its `order`)."""
    nested = getattr(event, "order", None)  # `OrderSubmitted.order` is a method, not an Order
    order = nested if isinstance(nested, Order) else event
    order_id = getattr(order, "order_id", None)
    if not isinstance(order_id, str):
        return None
    channel = getattr(order, "channel", None)
    return Refusal(
        order_id,
        getattr(order, "account_id", None),
        channel if isinstance(channel, Channel) else None,
        ReasonCode.PROCESSING_FAILED,
        "",
    )


@dataclass(frozen=True)
class Refusal:
    """The order a dead letter is about, and why it is rejected."""

    order_id: str
    account_id: str | None
    channel: Channel | None
    code: ReasonCode
    message: str


Admitted = Event | Unreadable | None
"""What a message is once read: an event to handle, one to dead-letter, or one to pass by."""

OrderRefused = Callable[[Transaction, Refusal], Awaitable[bool]]
"""A service's say on rejecting an order: may the rejection be published? (It may record it.)"""


async def publish_every_refusal(tx: Transaction, refusal: Refusal) -> bool:
    return True


class EventConsumer:
    """Takes a batch of deliveries to their handler inside one transaction with the inbox."""

    def __init__(
        self,
        name: str,
        db: ServiceDatabase,
        names: TopicNames,
        order_refused: OrderRefused = publish_every_refusal,
    ) -> None:
        self.name = name
        self.db = db
        self.names = names
        self.order_refused = order_refused
        self.progress = ConsumerProgress()
        """Per topic and partition, the message in hand and the last one done: the lag's input."""

    async def consume(self, spec: TopicSpec, handler: Handler[Any], delivery: Delivery) -> None:
        """Handle one message: a batch of one."""
        await self.consume_batch(spec, handler, [delivery])

    async def consume_batch(
        self, spec: TopicSpec, handler: Handler[Any], deliveries: Sequence[Delivery]
    ) -> None:
        """Handle messages of one topic in arrival order, in one transaction; nothing escapes.

        One commit per batch instead of one per message is where the throughput
        comes from. Each message runs in a savepoint of its own, so a bad one
        is dead-lettered alone and its neighbours still commit; when this
        returns, every message is committed: handled, skipped or dead-lettered.
        """
        if not deliveries:
            return
        labels = (self.name, spec.name)
        metrics.EVENTS_CONSUMED.labels(*labels).inc(len(deliveries))
        metrics.BATCH_EVENTS.labels(*labels).observe(len(deliveries))
        first, last = partition_ends(deliveries)
        for delivery in first:
            self.progress.started(
                spec.name, delivery.partition, delivery.offset, delivery.timestamp
            )
        started = time.perf_counter()
        await self._handle(spec, handler, deliveries)
        elapsed = time.perf_counter() - started
        metrics.BATCH_SECONDS.labels(*labels).observe(elapsed)
        processing = metrics.PROCESSING_SECONDS.labels(*labels)
        for _ in deliveries:  # each event waited for the batch's commit
            processing.observe(elapsed)
        for delivery in last:
            self.progress.finished(
                spec.name, delivery.partition, delivery.offset, delivery.timestamp
            )

    async def _handle(
        self, spec: TopicSpec, handler: Handler[Any], deliveries: Sequence[Delivery]
    ) -> None:
        """The batch in one transaction, run again whole after an outage or a lost race.

        It runs first without savepoints, the cheap way; if a handler refuses or
        fails an event, it runs again with a savepoint per event. A batch that
        still fails — a race lost again and again, or a defect no single event's
        savepoint caught — is taken one transaction per event, so one event can
        neither livelock its batch nor take its neighbours down.
        """
        alone = len(deliveries) == 1
        races = None if alone else BATCH_RACES
        try:
            try:
                await self._retrying(
                    partial(self._apply_batch, spec, handler, deliveries, careful=False), races
                )
            except NeedsSavepoints:
                await self._retrying(
                    partial(self._apply_batch, spec, handler, deliveries, careful=True), races
                )
        except Exception as error:
            if not alone:
                log.warning(
                    "%s: a batch of %d %s messages failed (%s); taking them one at a time",
                    self.name,
                    len(deliveries),
                    spec.name,
                    first_line(error),
                )
                for delivery in deliveries:
                    await self._handle(spec, handler, [delivery])
                return
            delivery = deliveries[0]
            log.exception(
                "%s: %s offset %s could not be handled", self.name, spec.name, delivery.offset
            )
            await self._last_resort(spec, delivery, f"unhandled: {type(error).__name__}")

    async def _last_resort(self, spec: TopicSpec, delivery: Delivery, problem: str) -> None:
        """A bug on the failure path itself: park the bare message in a transaction of its own."""

        async def park() -> None:
            async with self.db.transaction() as tx:
                await self._dead_letter(tx, spec, delivery, problem)

        try:
            await self._retrying(park)
        except Exception:  # the agent must go on; the log and the metric are all that is left
            log.exception("%s: %s offset %s lost", self.name, spec.name, delivery.offset)
            metrics.PROCESSING_FAILURES.labels(self.name, spec.name).inc()

    async def _apply_batch(
        self,
        spec: TopicSpec,
        handler: Handler[Any],
        deliveries: Sequence[Delivery],
        *,
        careful: bool,
    ) -> None:
        """Every message in arrival order, in one transaction.

        Without `careful`, the batch's event ids go into the inbox in one
        statement and the handlers run bare: the cost per event is the
        handler's own statements. A handler that refuses or fails raises
        `NeedsSavepoints`, and the caller runs the batch again `careful`.
        """
        admitted = [(delivery, self._admit(spec, handler, delivery)) for delivery in deliveries]
        async with self.db.transaction() as tx:
            fresh = set() if careful else await self._record_batch(tx, spec, admitted)
            if isinstance(handler, ReadingAhead):
                events = [
                    item
                    for _, item in admitted
                    if isinstance(item, Event) and (careful or str(item.event_id) in fresh)
                ]
                if events:
                    await handler.read_ahead(events, tx)
            for delivery, item in admitted:
                if item is None:
                    continue
                if isinstance(item, Unreadable):
                    await self._dead_letter(tx, spec, delivery, item.problem, item.refusal)
                elif careful:
                    await self._take_carefully(tx, spec, handler, delivery, item)
                elif str(item.event_id) in fresh:
                    fresh.discard(str(item.event_id))  # the same id later in the batch is a repeat
                    await self._take_bare(tx, spec, handler, item)
                else:
                    tx.on_commit(metrics.DUPLICATES_SKIPPED.labels(self.name, spec.name).inc)

    async def _record_batch(
        self, tx: Transaction, spec: TopicSpec, admitted: Sequence[tuple[Delivery, Admitted]]
    ) -> set[str]:
        """Put the batch's event ids in the inbox at once; the ones that were not there yet."""
        event_ids = {str(item.event_id): None for _, item in admitted if isinstance(item, Event)}
        return await self.db.first_deliveries(tx, list(event_ids), spec.name)

    def _admit(self, spec: TopicSpec, handler: Handler[Any], delivery: Delivery) -> Admitted:
        """What a message is, before any database work: an event for the handler, a message
        to dead-letter, or None when it is to pass by (a tombstone, an unheeded report)."""
        if delivery.value is None and spec.compacted:
            log.info("%s: tombstone for %s on %s ignored", self.name, delivery.key, spec.name)
            return None  # deleting reference data is not supported yet: rows stay as last sent
        raw: bytes = delivery.value or b""
        if len(raw) > spec.max_bytes:
            return Unreadable(
                f"message of {len(raw)} bytes exceeds the {spec.max_bytes}-byte limit "
                f"of {spec.name}"
            )
        try:
            event = spec.parse(raw)
        except Exception as invalid:  # ValidationError, or anything else the parser met
            problem = (
                describe_validation_error(invalid)
                if isinstance(invalid, ValidationError)
                else f"unreadable message: {type(invalid).__name__}"
            )
            return Unreadable(problem, self._invalid_refusal(spec, raw, problem))
        if isinstance(event, OrderStatusChanged) and event.reported_by == self.name:
            return None  # a service's own report tells it nothing new
        return event

    async def _take_bare(
        self, tx: Transaction, spec: TopicSpec, handler: Handler[Any], event: Event
    ) -> None:
        try:
            await handler(event, tx)
        except Exception as error:
            if database_trouble(error):
                raise  # not the event's fault: the whole batch is run again
            log.info(
                "%s: %s %s refused or failed (%s); the batch runs again with savepoints",
                self.name,
                spec.name,
                event.event_id,
                first_line(error),
            )
            raise NeedsSavepoints from error

    async def _take_carefully(
        self,
        tx: Transaction,
        spec: TopicSpec,
        handler: Handler[Any],
        delivery: Delivery,
        event: Event,
    ) -> None:
        """One event in a savepoint of its own; raises only for the database's trouble."""
        labels = (self.name, spec.name)
        try:
            async with tx.savepoint():
                if not await self.db.first_delivery(tx, event.event_id, spec.name):
                    tx.on_commit(metrics.DUPLICATES_SKIPPED.labels(*labels).inc)
                    return
                await handler(event, tx)
        except Refused as refused:
            event_id = str(event.event_id)
            await self._dead_letter(tx, spec, delivery, str(refused), event_id=event_id)
            tx.on_commit(metrics.REFUSED_EVENTS.labels(*labels, refused.why).inc)
        except Exception as error:
            if database_trouble(error):
                raise  # not the event's fault: the whole batch is run again
            await self._processing_failed(tx, spec, delivery, event, error)

    def _invalid_refusal(self, spec: TopicSpec, raw: bytes, problem: str) -> Refusal | None:
        if not spec.invalid_rejects_order:
            return None
        order_id, account_id = readable_ids(raw)
        if order_id is None:
            return None
        return Refusal(order_id, account_id, None, ReasonCode.INVALID_EVENT, problem)

    async def _processing_failed(
        self,
        tx: Transaction,
        spec: TopicSpec,
        delivery: Delivery,
        event: Event,
        error: Exception,
    ) -> None:
        """A valid event whose handling raised: dead-letter it, reject its order, hold nothing."""
        log.error("%s: handling %s %s failed", self.name, spec.name, event.event_id, exc_info=error)
        problem = f"processing failed: {type(error).__name__}: {error}"
        order = order_named_by(event) if spec.invalid_rejects_order else None
        refusal = order and replace(
            order,
            message=f"{self.name} could not process this order ({type(error).__name__}); "
            f"the event is in {spec.name}.dlq for the operators",
        )
        await self._dead_letter(tx, spec, delivery, problem, refusal, str(event.event_id))
        tx.on_commit(metrics.PROCESSING_FAILURES.labels(self.name, spec.name).inc)

    async def _retrying(
        self, attempt: Callable[[], Awaitable[Any]], races: int | None = None
    ) -> Any:
        """Retry while the database is unreachable: the partition waits, nothing is skipped.

        A pool with no free connection (`PoolExhausted`) is the same kind of wait: the
        event is fine, the worker is only busy, and rejecting the order would be wrong.
        A transaction the database aborted to resolve a deadlock or a serialization
        conflict is run again after a short random pause, at most `races` times
        (None: for as long as it takes).
        """
        delay = RETRY_FIRST_SECONDS
        lost = 0
        while True:
            try:
                return await attempt()
            except (DBAPIError, PoolExhausted) as error:
                if lost_a_race(error):
                    lost += 1
                    if races is not None and lost > races:
                        raise
                    log.info("%s: %s; running the transaction again", self.name, first_line(error))
                    await asyncio.sleep(random.uniform(0, RACE_PAUSE_SECONDS * min(lost, 10)))
                    continue
                if not database_trouble(error):
                    raise
                log.warning(
                    "%s: database unavailable (%s); retrying in %.1fs", self.name, error, delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_SECONDS)

    async def _dead_letter(
        self,
        tx: Transaction,
        spec: TopicSpec,
        delivery: Delivery,
        error: str,
        refusal: Refusal | None = None,
        event_id: str | None = None,
    ) -> None:
        """Park the message on `<topic>.dlq` once per source offset; reject the order it names."""
        raw: bytes = delivery.value or b""
        # Not the event's own id: once the cause is fixed, replaying the event must not be
        # mistaken for a duplicate.
        inbox_key = (
            f"dlq:{event_id}"
            if event_id
            else f"dlq:{spec.name}:{delivery.partition}:{delivery.offset}"
        )
        if not await self.db.first_delivery(tx, inbox_key, f"{spec.name}.dlq"):
            return
        letter = DeadLetter.describing(
            raw,
            service=self.name,
            source_topic=self.names.of(spec),
            partition=delivery.partition,
            offset=delivery.offset,
            error=error,
        )
        await tx.publish_raw(self.names.dlq_of(spec), delivery.key, letter.to_bytes())
        if refusal is not None and await self.order_refused(tx, refusal):
            await self._reject(tx, refusal)
        tx.on_commit(metrics.DEAD_LETTERS.labels(self.name, spec.name).inc)
        tx.on_commit(
            partial(
                log.warning,
                "%s: %s offset %s -> dead letter: %s",
                self.name,
                spec.name,
                delivery.offset,
                error[:500],
            )
        )

    async def _reject(self, tx: Transaction, refusal: Refusal) -> None:
        reason = Reason(code=refusal.code, message=refusal.message[:1000])
        try:
            await tx.report(refusal, OrderState.REJECTED, reason=reason)
        except ValidationError:
            return  # the id itself is unusable: the dead letter is all we can say
