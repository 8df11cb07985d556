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
from shared.db import ServiceDatabase, Transaction
from shared.settings import Settings, load_settings
from shared.topics import ORDERS_STATUS, TopicNames, TopicSpec, create_topics

log = logging.getLogger(__name__)

E = TypeVar("E", bound=Event)
Handler = Callable[[E, Transaction], Awaitable[None]]

RETRY_FIRST_SECONDS = 0.5
RETRY_MAX_SECONDS = 30.0
RELAY_BATCH = 500


def describe_validation_error(error: ValidationError) -> str:
    """One line per problem: which field, what was wrong, e.g. `lines.0.quantity: …`."""
    parts = []
    for problem in error.errors(include_url=False):
        where = ".".join(str(p) for p in problem["loc"]) or "(message)"
        parts.append(f"{where}: {problem['msg']}")
    return "; ".join(parts)


def _readable_ids(raw: bytes) -> tuple[str | None, str | None]:
    """Best effort: the order id and account id of a message that failed validation."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None, None
    if not isinstance(body, dict):
        return None, None
    if isinstance(body.get("order"), dict):
        body = body["order"]
    order_id, account_id = body.get("order_id"), body.get("account_id")
    return (
        order_id if isinstance(order_id, str) and order_id else None,
        account_id if isinstance(account_id, str) and account_id else None,
    )


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
        self._outbox_ready = asyncio.Event()
        self._relay_alive = False
        self._scrape_hooks: list[Callable[[], Awaitable[None]]] = []
        self._register_views()
        self.app.task(self._relay_outbox)

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
            # Faust's own views (cluster topology, tables, statistics, graph, performance)
            # are not ours to expose: only /metrics, /health and each service's API are.
            web_router_enabled=False,
            web_tables_enabled=False,
            web_stats_enabled=False,
            web_graph_enabled=False,
            web_metrics_enabled=False,
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
        labels = (self.name, spec.name)
        metrics.EVENTS_CONSUMED.labels(*labels).inc()
        started = time.perf_counter()
        if message.value is None and spec.compacted:
            log.info("%s: tombstone for %s on %s ignored", self.name, message.key, spec.name)
            return  # deleting reference data is not supported yet: rows stay as last sent
        raw: bytes = message.value or b""
        try:
            event = spec.model.model_validate_json(raw)
        except ValidationError as invalid:
            problem = describe_validation_error(invalid)
            await self._retrying(lambda: self._dead_letter(spec, message, problem))
            return
        try:
            applied = await self._retrying(lambda: self._apply(spec, handler, event))
        except Exception as error:
            log.exception("%s: handling %s %s failed", self.name, spec.name, event.event_id)
            reason = f"processing failed: {type(error).__name__}: {error}"
            await self._retrying(
                lambda: self._dead_letter(spec, message, reason, event_id=str(event.event_id))
            )
            return
        if not applied:
            metrics.DUPLICATES_SKIPPED.labels(*labels).inc()
        metrics.PROCESSING_SECONDS.labels(*labels).observe(time.perf_counter() - started)

    async def _apply(self, spec: TopicSpec, handler: Handler[Any], event: Event) -> bool:
        async with self.db.transaction() as tx:
            if not await self.db.first_delivery(tx, event.event_id, spec.name):
                return False
            await handler(event, tx)
        self._outbox_ready.set()
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
        self, spec: TopicSpec, message: Any, error: str, event_id: str | None = None
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
            encoded, text = DeadLetter.encode_original(raw)
            letter = DeadLetter.new(
                service=self.name,
                source_topic=self.names.of(spec),
                partition=message.partition,
                offset=message.offset,
                error=error,
                original_base64=encoded,
                original_text=text,
            )
            await tx.publish_raw(self.names.dlq_of(spec), message.key, letter.to_bytes())
            order_id, account_id = _readable_ids(raw)
            if spec.invalid_rejects_order and order_id and event_id is None:
                await self._reject_invalid(tx, order_id, account_id, error)
        metrics.DEAD_LETTERS.labels(self.name, spec.name).inc()
        log.warning(
            "%s: %s offset %s -> dead letter: %s", self.name, spec.name, message.offset, error
        )
        self._outbox_ready.set()

    async def _reject_invalid(
        self, tx: Transaction, order_id: str, account_id: str | None, error: str
    ) -> None:
        try:
            status = OrderStatusChanged.new(
                order_id=order_id,
                account_id=account_id,
                status=OrderState.REJECTED,
                reported_by=self.name,
                reason=Reason(code=ReasonCode.INVALID_EVENT, message=error[:1000]),
            )
        except ValidationError:
            return  # the id itself is unusable: the dead letter is all we can say
        await tx.publish(ORDERS_STATUS, status)
        metrics.ORDERS.labels(self.name, "unknown", OrderState.REJECTED.value).inc()

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
        metrics.ORDERS.labels(self.name, channel, state.value).inc()

    def outbox_written(self) -> None:
        """Wake the relay after a transaction outside a handler (HTTP, timers) committed."""
        self._outbox_ready.set()

    async def _relay_outbox(self) -> None:
        """Publish committed outbox rows in order; a crash before they are marked re-sends them."""
        self._relay_alive = True
        delay = RETRY_FIRST_SECONDS
        try:
            while not self.app.should_stop:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._outbox_ready.wait(), self.settings.outbox_poll_seconds
                    )
                self._outbox_ready.clear()
                try:
                    while await self._relay_batch():
                        pass
                    delay = RETRY_FIRST_SECONDS
                except Exception as error:  # broker or database away: keep the rows, try again
                    log.warning(
                        "%s: outbox relay failed (%s); retrying in %.1fs", self.name, error, delay
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX_SECONDS)
        finally:
            self._relay_alive = False

    async def _relay_batch(self) -> bool:
        started = time.perf_counter()
        producer = self.app.producer
        async with self.db.sending(RELAY_BATCH) as rows:
            deliveries = [
                await producer.send(row.topic, row.key, row.value, None, None, None) for row in rows
            ]
            await asyncio.gather(*deliveries)
        if not rows:
            return False
        for row in rows:
            metrics.EVENTS_PRODUCED.labels(self.name, self._logical(row.topic)).inc()
        metrics.OUTBOX_LAG_SECONDS.labels(self.name).observe(time.perf_counter() - started)
        return len(rows) == RELAY_BATCH

    def _logical(self, topic: str) -> str:
        return topic.removeprefix(self.settings.topic_prefix)

    # --- health and metrics -----------------------------------------------------------------

    def problems(self) -> list[str]:
        """What keeps this worker from doing its job; empty when healthy."""
        found = [
            f"agent {agent.name} crashed: {agent.crash_reason!r}"
            for agent in self.app.agents.values()
            if agent.crashed
        ]
        if self.app.started and not self._relay_alive:
            found.append("outbox relay is not running")
        if self.app.consumer.crashed:
            found.append(f"consumer crashed: {self.app.consumer.crash_reason!r}")
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
                problems = service.problems()
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
