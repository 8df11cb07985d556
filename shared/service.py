"""What every Tradelane service is made of: a Faust app, its database, and the rules of delivery.

A service declares `@service.handles(SOME_TOPIC)` on a handler
`async def handler(event, tx) -> None`. Everything between Kafka and that
handler lives here, once:

- the raw bytes are validated against the topic's model; a message that is not
  valid goes to `<topic>.dlq` (and, for order topics, the order is rejected
  with `invalid_event`) instead of stopping the service;
- the event id goes into the inbox in the same transaction as the handler's
  changes and outgoing events, so a redelivery changes nothing;
- the offset is acknowledged only after that transaction commits;
- a database outage is retried (the partition waits) rather than dead-lettered;
- the outbox relay publishes committed events and marks them sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

import faust
from faust.web import Request, Response, View
from pydantic import ValidationError
from sqlalchemy import MetaData
from sqlalchemy.exc import DBAPIError, OperationalError

from shared import metrics
from shared.contract import (
    Channel,
    DeadLetter,
    Event,
    OrderState,
    OrderStatusChanged,
    Reason,
    ReasonCode,
)
from shared.contract.orders import ID_MAX_LENGTH
from shared.db import OutboxRow, ServiceDatabase, Transaction
from shared.rejection import Refused
from shared.relay import OutboxRelay
from shared.settings import Settings, load_settings
from shared.topics import ORDERS_STATUS, TopicNames, TopicSpec, create_topics

log = logging.getLogger(__name__)

E = TypeVar("E", bound=Event)
Handler = Callable[[E, Transaction], Awaitable[None]]

RETRY_FIRST_SECONDS = 0.5
RETRY_MAX_SECONDS = 30.0
RETENTION_SWEEP_SECONDS = 3600.0


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
    order = getattr(event, "order", event)
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


OrderRefused = Callable[[Transaction, Refusal], Awaitable[bool]]
"""A service's say on rejecting an order: may the rejection be published? (It may record it.)"""


async def publish_every_refusal(tx: Transaction, refusal: Refusal) -> bool:
    return True


class OrderIdentity(Protocol):
    """What a status event needs to name an order: an `Order`, or a service's own record of it."""

    @property
    def order_id(self) -> str: ...
    @property
    def account_id(self) -> str | None: ...
    @property
    def channel(self) -> Channel | None: ...


class Service:
    """One Tradelane service: Faust app + own database + inbox/outbox + /metrics + /health."""

    def __init__(self, name: str, metadata: MetaData, settings: Settings | None = None) -> None:
        self.name = name
        self.settings = settings or load_settings()
        self.names = TopicNames(self.settings.topic_prefix)
        self.db = ServiceDatabase(self.settings.database_url_for(name), metadata, self.names)
        self.app = self._create_app()
        self.order_refused: OrderRefused = publish_every_refusal
        """Set by a service that keeps orders: it decides whether a refusal may be published."""
        self.relay = OutboxRelay(
            name,
            self.db,
            self._send_row,
            self._logical,
            poll_seconds=self.settings.outbox_poll_seconds,
            max_row_bytes=self.app.conf.producer_max_request_size,
        )
        self._scrape_hooks: list[Callable[[], Awaitable[None]]] = [self._show_parked_rows]
        self._register_views()
        self.app.task(self._relay_outbox)
        self.app.timer(RETENTION_SWEEP_SECONDS)(self._forget_old_events)

    # --- wiring ---------------------------------------------------------------------------

    def _create_app(self) -> faust.App:
        settings = self.settings
        return faust.App(
            settings.group_id(self.name),
            broker=[
                f"kafka://{server.strip()}"
                for server in settings.kafka_bootstrap_servers.split(",")
            ],
            processing_guarantee="at_least_once",
            store="memory://",
            autodiscover=False,
            datadir=str(settings.data_dir / f"faust-{self.name}"),
            topic_partitions=settings.topic_partitions,
            topic_allow_declare=False,
            topic_disable_leader=True,
            consumer_auto_offset_reset="earliest",
            stream_recovery_delay=0.0,
            web_enabled=True,
            web_port=settings.web_port_for(self.name),
            web_bind=settings.web_bind,
            web_host=settings.web_bind,
            web_tables_enabled=False,
            producer_acks=-1,
            broker_commit_every=100,
            broker_commit_interval=1.0,
            # How long a crashed worker keeps its partitions before the group moves on.
            broker_session_timeout=settings.session_timeout_seconds,
            broker_heartbeat_interval=min(3.0, settings.session_timeout_seconds / 10),
        )

    def topic(self, spec: TopicSpec) -> faust.TopicT:
        return self.app.topic(
            self.names.of(spec), key_serializer="raw", value_serializer="raw", allow_empty=True
        )

    def handles(self, spec: TopicSpec) -> Callable[[Handler[Any]], Handler[Any]]:
        """Register `handler` for every event on `spec`'s topic, with exactly-once effect."""

        def register(handler: Handler[Any]) -> Handler[Any]:
            async def consume(stream: faust.StreamT) -> None:
                manual = stream.noack()  # type: ignore[attr-defined]  # missing from StreamT
                async for message_event in manual.events():
                    await self._consume_one(spec, handler, message_event.message)
                    await manual.ack(message_event)

            consume.__name__ = consume.__qualname__ = f"{self.name}_{spec.name.replace('.', '_')}"
            self.app.agent(self.topic(spec), name=f"{self.name}.{spec.name}")(consume)
            return handler

        return register

    # --- consuming ------------------------------------------------------------------------

    async def _consume_one(self, spec: TopicSpec, handler: Handler[Any], message: Any) -> None:
        """Handle one message; nothing it contains may escape, every failure ends in the DLQ."""
        labels = (self.name, spec.name)
        metrics.EVENTS_CONSUMED.labels(*labels).inc()
        started = time.perf_counter()
        try:
            await self._consume_guarded(spec, handler, message)
        except Exception as error:  # a bug on the failure path itself: park the bare message
            log.exception(
                "%s: %s offset %s could not be handled", self.name, spec.name, message.offset
            )
            await self._last_resort(spec, message, f"unhandled: {type(error).__name__}")
        metrics.PROCESSING_SECONDS.labels(*labels).observe(time.perf_counter() - started)

    async def _last_resort(self, spec: TopicSpec, message: Any, problem: str) -> None:
        try:
            await self._retrying(lambda: self._dead_letter(spec, message, problem))
        except Exception:  # the agent must go on; the log and the metric are all that is left
            log.exception("%s: %s offset %s lost", self.name, spec.name, message.offset)
            metrics.PROCESSING_FAILURES.labels(self.name, spec.name).inc()

    async def _consume_guarded(self, spec: TopicSpec, handler: Handler[Any], message: Any) -> None:
        if message.value is None and spec.compacted:
            log.info("%s: tombstone for %s on %s ignored", self.name, message.key, spec.name)
            return  # deleting reference data is not supported yet: rows stay as last sent
        raw: bytes = message.value or b""
        if len(raw) > spec.max_bytes:
            problem = (
                f"message of {len(raw)} bytes exceeds the {spec.max_bytes}-byte limit "
                f"of {spec.name}"
            )
            await self._retrying(lambda: self._dead_letter(spec, message, problem))
            return
        try:
            event = spec.parse(raw)
        except Exception as invalid:  # ValidationError, or anything else the parser met
            problem = (
                describe_validation_error(invalid)
                if isinstance(invalid, ValidationError)
                else f"unreadable message: {type(invalid).__name__}"
            )
            refusal = self._invalid_refusal(spec, raw, problem)
            await self._retrying(lambda: self._dead_letter(spec, message, problem, refusal))
            return
        try:
            applied = await self._retrying(lambda: self._apply(spec, handler, event))
        except Refused as refused:
            why, problem = refused.why, str(refused)
            await self._retrying(
                lambda: self._dead_letter(spec, message, problem, event_id=str(event.event_id))
            )
            metrics.REFUSED_EVENTS.labels(self.name, spec.name, why).inc()
            return
        except Exception as error:
            await self._processing_failed(spec, message, event, error)
            return
        if not applied:
            metrics.DUPLICATES_SKIPPED.labels(self.name, spec.name).inc()

    def _invalid_refusal(self, spec: TopicSpec, raw: bytes, problem: str) -> Refusal | None:
        if not spec.invalid_rejects_order:
            return None
        order_id, account_id = readable_ids(raw)
        if order_id is None:
            return None
        return Refusal(order_id, account_id, None, ReasonCode.INVALID_EVENT, problem)

    async def _processing_failed(
        self, spec: TopicSpec, message: Any, event: Event, error: Exception
    ) -> None:
        """A valid event whose handling raised: dead-letter it, reject its order, hold nothing."""
        log.exception("%s: handling %s %s failed", self.name, spec.name, event.event_id)
        problem = f"processing failed: {type(error).__name__}: {error}"
        order = order_named_by(event) if spec.invalid_rejects_order else None
        refusal = order and replace(
            order,
            message=f"{self.name} could not process this order ({type(error).__name__}); "
            f"the event is in {spec.name}.dlq for the operators",
        )
        await self._retrying(
            lambda: self._dead_letter(spec, message, problem, refusal, str(event.event_id))
        )
        metrics.PROCESSING_FAILURES.labels(self.name, spec.name).inc()

    async def _apply(self, spec: TopicSpec, handler: Handler[Any], event: Event) -> bool:
        async with self.db.transaction() as tx:
            if not await self.db.first_delivery(tx, event.event_id, spec.name):
                return False
            await handler(event, tx)
        return True

    async def _retrying(self, attempt: Callable[[], Awaitable[Any]]) -> Any:
        """Retry while the database is unreachable: the partition waits, nothing is skipped."""
        delay = RETRY_FIRST_SECONDS
        while True:
            try:
                return await attempt()
            except DBAPIError as error:
                if not (isinstance(error, OperationalError) or error.connection_invalidated):
                    raise
                log.warning(
                    "%s: database unavailable (%s); retrying in %.1fs", self.name, error, delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_SECONDS)

    async def _dead_letter(
        self,
        spec: TopicSpec,
        message: Any,
        error: str,
        refusal: Refusal | None = None,
        event_id: str | None = None,
    ) -> None:
        """Park the message on `<topic>.dlq` once per source offset; reject the order it names."""
        raw: bytes = message.value or b""
        # Not the event's own id: once the cause is fixed, replaying the event must not be
        # mistaken for a duplicate.
        inbox_key = (
            f"dlq:{event_id}"
            if event_id
            else f"dlq:{spec.name}:{message.partition}:{message.offset}"
        )
        async with self.db.transaction() as tx:
            if not await self.db.first_delivery(tx, inbox_key, f"{spec.name}.dlq"):
                return
            letter = DeadLetter.describing(
                raw,
                service=self.name,
                source_topic=self.names.of(spec),
                partition=message.partition,
                offset=message.offset,
                error=error,
            )
            await tx.publish_raw(self.names.dlq_of(spec), message.key, letter.to_bytes())
            if refusal is not None and await self.order_refused(tx, refusal):
                await self._reject(tx, refusal)
            tx.on_commit(metrics.DEAD_LETTERS.labels(self.name, spec.name).inc)
        log.warning(
            "%s: %s offset %s -> dead letter: %s", self.name, spec.name, message.offset, error[:500]
        )

    async def _reject(self, tx: Transaction, refusal: Refusal) -> None:
        try:
            status = OrderStatusChanged.new(
                order_id=refusal.order_id,
                account_id=refusal.account_id,
                channel=refusal.channel,
                status=OrderState.REJECTED,
                reported_by=self.name,
                reason=Reason(code=refusal.code, message=refusal.message[:1000]),
            )
        except ValidationError:
            return  # the id itself is unusable: the dead letter is all we can say
        await tx.publish(ORDERS_STATUS, status)
        channel = refusal.channel.value if refusal.channel else "unknown"
        tx.on_commit(metrics.ORDERS.labels(self.name, channel, OrderState.REJECTED.value).inc)

    # --- publishing -----------------------------------------------------------------------

    async def report(
        self,
        tx: Transaction,
        order: OrderIdentity,
        state: OrderState,
        *,
        reason: Reason | None = None,
        **details: Any,
    ) -> None:
        """Publish an order's transition on `orders.status`, counted by channel and outcome."""
        status = OrderStatusChanged.new(
            order_id=order.order_id,
            account_id=order.account_id,
            channel=order.channel,
            status=state,
            reported_by=self.name,
            reason=reason,
            **details,
        )
        await tx.publish(ORDERS_STATUS, status)
        channel = order.channel.value if isinstance(order.channel, Channel) else "unknown"
        tx.on_commit(metrics.ORDERS.labels(self.name, channel, state.value).inc)

    # --- the outbox and its upkeep ---------------------------------------------------------

    async def _relay_outbox(self) -> None:
        await self.relay.run(lambda: bool(self.app.should_stop))

    async def _send_row(self, row: OutboxRow) -> Awaitable[object]:
        future: Awaitable[object] = await self.app.producer.send(
            row.topic, row.key, row.value, None, None, None
        )
        return future

    def _logical(self, topic: str) -> str:
        return topic.removeprefix(self.settings.topic_prefix)

    async def _forget_old_events(self) -> None:
        """Delete inbox entries and sent outbox rows older than the retention period."""
        before = datetime.now(UTC) - self.settings.inbox_retention
        try:
            while (deleted := await self.db.forget_before(before)) > 0:
                metrics.FORGOTTEN_ROWS.labels(self.name).inc(deleted)
        except Exception:  # a timer that raises stops for good: log, and try again next time
            log.exception("%s: deleting old inbox and outbox rows failed", self.name)

    async def _show_parked_rows(self) -> None:
        metrics.OUTBOX_PARKED.labels(self.name).set(await self.db.count_parked())

    # --- health and metrics -----------------------------------------------------------------

    async def problems(self) -> list[str]:
        """What keeps this worker from doing its job; empty when healthy."""
        found = [
            f"agent {agent.name} crashed: {agent.crash_reason!r}"
            for agent in self.app.agents.values()
            if agent.crashed
        ]
        if self.app.started:
            found.extend(self.relay.problems())
        if self.app.consumer.crashed:
            found.append(f"consumer crashed: {self.app.consumer.crash_reason!r}")
        with contextlib.suppress(Exception):  # the database being away is not this check's news
            if parked := await self.db.count_parked():
                found.append(
                    f"{parked} outbox rows parked: the broker refused them "
                    f"(`tradelane outbox list --service {self.name}`)"
                )
        return found

    def refresh_on_scrape(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Run `hook` before each `/metrics` answer: for gauges read from the database.

        A gauge refreshed on scrape is exact when Prometheus reads it and costs
        nothing between scrapes, unlike a timer or an update in every handler.
        """
        self._scrape_hooks.append(hook)

    def consumed_topics(self) -> list[str]:
        """The topics this service's agents read (tools use it to measure consumer lag)."""
        return sorted(t for agent in self.app.agents.values() for t in agent.channel.topics)

    def _register_views(self) -> None:
        service = self

        @self.app.page("/metrics")
        class Metrics(View):
            async def get(self, request: Request) -> Response:
                for hook in service._scrape_hooks:
                    await hook()
                body, content_type = metrics.exposition()
                return self.bytes(body, headers={"Content-Type": content_type})

        @self.app.page("/health")
        class Health(View):
            async def get(self, request: Request) -> Response:
                problems = await service.problems()
                return self.json(
                    {
                        "service": service.name,
                        "ok": not problems,
                        "problems": problems,
                        "consumes": service.consumed_topics(),
                    },
                    status=503 if problems else 200,
                )

    # --- running ----------------------------------------------------------------------------

    async def prepare(self) -> None:
        """Create topics and tables before the worker starts (Faust creates neither)."""
        await asyncio.to_thread(
            create_topics,
            self.settings.kafka_bootstrap_servers,
            self.names,
            self.settings.topic_partitions,
        )
        await self.db.create_tables()

    def run(self) -> None:
        """Prepare, then run the Faust worker until SIGTERM/SIGINT, on one event loop."""
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        loop.run_until_complete(self.prepare())
        worker = faust.Worker(self.app, loglevel=self.settings.log_level, loop=loop)
        worker.execute_from_commandline()
