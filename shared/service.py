"""What every Tradelane service is made of: a Faust app, its database, and the rules of delivery.

A service is built by its `app.create_service(settings)`, which names the
handler for each topic (`service.handle(SPEC, handler)`), where a handler is
`async def handler(event, tx) -> None`. Faust only carries messages here:
everything between a message and its handler is `shared.consume`, the outbox
relay is `shared.relay`. Offsets are acknowledged only after the handler's
transaction commits. SIGTERM (or SIGINT) stops it gracefully within
`TRADELANE_SHUTDOWN_SECONDS`: `shared.shutdown` says how.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import faust
from faust.web import Request, Response, View
from faust.web.drivers.aiohttp import Web as AiohttpWeb
from prometheus_client import Gauge
from sqlalchemy import MetaData, text

from shared import faust_transport, metrics
from shared.consume import Delivery, EventConsumer, Handler, OrderRefused
from shared.db import ConnectionPool, OutboxRow, ServiceDatabase
from shared.http_errors import answer_database_trouble
from shared.intake_batches import event_batches
from shared.kafka_connection import KafkaConnection
from shared.lag import ConsumerProgress, Lag, topic_lag
from shared.relay import OutboxRelay
from shared.settings import Settings
from shared.shutdown import EXIT_UNFINISHED, FAUST_STOP_SECONDS, Intake, drain, first_line
from shared.topics import TopicNames, TopicSpec, create_topics

log = logging.getLogger(__name__)

RETENTION_SWEEP_SECONDS = 3600.0
READINESS_TIMEOUT_SECONDS = 2.0


def _status(problems: list[str]) -> int:
    return 503 if problems else 200


WATCHDOG_EARLY_SECONDS = 1.0
"""The watchdog ends a hung stop this long before the bound, so the process is gone by then."""
GC_YOUNG_ALLOCATIONS = 10_000
"""Allocations between collections of the youngest generation (Python's default is 700)."""


class Service:
    """One Tradelane service: Faust app + own database + inbox/outbox + /metrics + /health."""

    def __init__(self, name: str, metadata: MetaData, settings: Settings) -> None:
        self.name = name
        self.settings = settings
        self.names = TopicNames(settings.topic_prefix)
        self.kafka = KafkaConnection.from_settings(settings)
        self.db = ServiceDatabase(
            settings.database_url_for(name),
            metadata,
            self.names,
            name,
            ConnectionPool(settings.database_pool_size, settings.database_max_overflow),
            settings.reference_cache_seconds,
        )
        self.app = self._create_app()
        self.consumer = EventConsumer(name, self.db, self.names)
        self.intake = Intake()
        self.unfinished: list[str] = []
        """What a shutdown left pending when its time ran out (empty: a clean stop)."""
        self.relay = OutboxRelay(
            name,
            self.db,
            self._send_row,
            self._logical,
            poll_seconds=self.settings.outbox_poll_seconds,
            max_row_bytes=self.app.conf.producer_max_request_size,
        )
        self._consumed: dict[str, str] = {}
        """Each topic the agents read, by its name on the broker: its name in the registry."""
        self._scrape_hooks: list[Callable[[], Awaitable[None]]] = [
            self._show_parked_rows,
            self._show_consumer_lag,
        ]
        self._register_views()
        self.app.task(self._relay_outbox)
        self.app.timer(RETENTION_SWEEP_SECONDS)(self._forget_old_events)

    # --- wiring ---------------------------------------------------------------------------

    def _create_app(self) -> faust.App:
        settings = self.settings
        return faust_transport.App(
            settings.group_id(self.name),
            broker=self.kafka.faust_brokers(),
            broker_credentials=self.kafka.faust_credentials(),
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

    def handle(self, spec: TopicSpec, handler: Handler[Any]) -> None:
        """Hand every event on `spec`'s topic to `handler`, with exactly-once effect.

        Events come in batches of up to `TRADELANE_BATCH_MAX_EVENTS`, in arrival
        order: what queued while the previous batch was handled
        (`shared.intake_batches`), one transaction each
        (`EventConsumer.consume_batch`), every event acknowledged only after it
        committed.
        """
        consumer, intake = self.consumer, self.intake
        most, within = self.settings.batch_max_events, self.settings.batch_max_ms / 1000

        async def consume(stream: faust.StreamT) -> None:
            manual = stream.noack()  # type: ignore[attr-defined]  # missing from StreamT
            async for message_events in event_batches(manual.events(), most, within):
                if not intake.open:  # shutting down: left unacknowledged, so redelivered
                    await intake.closed()
                deliveries = [
                    Delivery(m.value, m.key, m.partition, m.offset, m.timestamp)
                    for m in (message_event.message for message_event in message_events)
                ]
                with intake.holding(describe_batch(spec, deliveries)):
                    await consumer.consume_batch(spec, handler, deliveries)
                    for message_event in message_events:
                        await manual.ack(message_event)

        consume.__name__ = consume.__qualname__ = f"{self.name}_{spec.name.replace('.', '_')}"
        self._consumed[self.names.of(spec)] = spec.name
        metrics.topic_consumed(self.name, spec.name)
        self.app.agent(self.topic(spec), name=f"{self.name}.{spec.name}")(consume)

    def handle_all(self, handlers: Mapping[TopicSpec, Handler[Any]]) -> None:
        for spec, handler in handlers.items():
            self.handle(spec, handler)

    def refuse_orders_with(self, decide: OrderRefused) -> None:
        """Let the service decide whether a dead-lettered order may be rejected (and record it)."""
        self.consumer.order_refused = decide

    # --- the outbox and its upkeep ---------------------------------------------------------

    async def _relay_outbox(self) -> None:
        await self.relay.run()

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

    async def _show_consumer_lag(self) -> None:
        """Lag per topic read, from the consumer's own view: computed when Prometheus scrapes.

        On scrape, not per message: a stuck agent processes no messages, so a
        gauge updated per message would freeze exactly when it matters; an
        idle topic gets no messages either. The high watermarks are the ones
        the consumer's last fetch responses carried (no broker round trip).
        """
        lags = consumer_lags(self.app.consumer, self._consumed, self.consumer.progress, time.time())
        for topic in self._consumed.values():
            show_lag(self.name, topic, lags.get(topic))

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

    def liveness_problems(self) -> list[str]:
        """What only a restart can mend: a crashed agent or consumer, a stopped relay (`/livez`).

        Neither the broker nor the database is asked: their outage is not cured by a restart.
        """
        found = [
            f"agent {agent.name} crashed: {agent.crash_reason!r}"
            for agent in self.app.agents.values()
            if agent.crashed
        ]
        if self.app.consumer.crashed:
            found.append(f"consumer crashed: {self.app.consumer.crash_reason!r}")
        if self.app.started and not self.relay.state.running:
            found.append("outbox relay is not running")
        return found

    async def readiness_problems(self) -> list[str]:
        """What keeps this worker from taking work now (`/readyz`): the live checks, the
        database answering, partitions assigned (the broker reached, the group joined),
        and the outbox relay sending."""
        found = self.liveness_problems()
        if self.app.started:
            found.extend(p for p in self.relay.problems() if p not in found)
        try:
            await asyncio.wait_for(self._ping_database(), READINESS_TIMEOUT_SECONDS)
        except Exception as error:
            found.append(f"database unreachable: {type(error).__name__}: {error}"[:300])
        try:
            assigned = self.app.consumer.assignment()
        except Exception:  # no consumer running yet
            assigned = set()
        if not assigned:
            found.append("no partitions assigned: broker unreachable or group not joined yet")
        return found

    async def _ping_database(self) -> None:
        async with self.db.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

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
        web = self.app.web
        assert isinstance(web, AiohttpWeb), "the views run on Faust's aiohttp driver"
        web.web_app.middlewares.append(answer_database_trouble)

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

        @self.app.page("/livez")
        class Livez(View):
            async def get(self, request: Request) -> Response:
                problems = service.liveness_problems()
                return self.json(
                    {"ok": not problems, "problems": problems}, status=_status(problems)
                )

        @self.app.page("/readyz")
        class Readyz(View):
            async def get(self, request: Request) -> Response:
                problems = await service.readiness_problems()
                return self.json(
                    {"ok": not problems, "problems": problems}, status=_status(problems)
                )

    # --- running ----------------------------------------------------------------------------

    async def prepare(self) -> None:
        """Create topics and tables before the worker starts (Faust creates neither)."""
        await asyncio.to_thread(
            create_topics,
            self.kafka,
            self.names,
            self.settings.topic_partitions,
            replication_factor=self.settings.topic_replication_factor,
            min_insync_replicas=self.settings.topic_min_insync_replicas,
        )
        await self.db.create_tables()

    def run(self) -> None:
        """Prepare, then run the Faust worker until SIGTERM/SIGINT, on one event loop.

        Exits 0 after a graceful stop, `EXIT_UNFINISHED` if the shutdown bound ran out.
        """
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        loop.run_until_complete(self.prepare())
        collect_garbage_less()
        worker = Worker(self, self.app, loglevel=self.settings.log_level, loop=loop)
        try:
            worker.execute_from_commandline()
        except SystemExit as stopped:
            code = stopped.code
        finally:
            if worker.watchdog is not None:
                worker.watchdog.cancel()
        if self.unfinished and code in (0, None):
            code = EXIT_UNFINISHED
        raise SystemExit(code)

    async def shut_down(self, stop_faust: Callable[[], Awaitable[None]]) -> None:
        """Drain (see `shared.shutdown`), let Faust stop, dispose the database engine."""
        started = time.monotonic()
        self.unfinished = await drain(
            self.intake,
            self.relay,
            pause=self._pause_partitions,
            commit=self.app.consumer.commit,
            seconds=self.settings.shutdown_seconds - FAUST_STOP_SECONDS,
        )
        if self.unfinished:
            log.error(
                "%s: shutdown ran out of time (TRADELANE_SHUTDOWN_SECONDS=%g); still pending: "
                "%s. Unacknowledged messages are redelivered, unsent outbox rows go out at "
                "the next start",
                self.name,
                self.settings.shutdown_seconds,
                "; ".join(self.unfinished),
            )
        else:
            log.info(
                "%s: drained in %.1fs: messages in hand finished, offsets committed, outbox sent",
                self.name,
                time.monotonic() - started,
            )
        # Our drain did Faust's "wait for streams": the one message each agent may
        # hold unread is not acknowledged and must not be waited for.
        self.app.conf.stream_wait_empty = False
        await stop_faust()
        await self.db.dispose()

    def _pause_partitions(self) -> None:
        consumer = self.app.consumer
        consumer.pause_partitions(consumer.assignment())

    def overdue(self) -> None:
        """The whole stop took longer than the bound: say what was pending, exit non-zero."""
        if self.unfinished:  # the drain ran out of time and said what was left
            pending = [*self.unfinished, "then Faust's own stop did not finish"]
        else:
            pending = [f"message in hand: {what}" for what in self.intake.in_hand()]
            if self.relay.state.running:
                error = self.relay.state.last_error
                pending.append(
                    f"outbox relay still sending ({first_line(error) if error else 'busy'})"
                )
        log.critical(
            "%s: not stopped %gs after the signal (TRADELANE_SHUTDOWN_SECONDS=%g); exiting "
            "with code %d; pending: %s",
            self.name,
            self.settings.shutdown_seconds - WATCHDOG_EARLY_SECONDS,
            self.settings.shutdown_seconds,
            EXIT_UNFINISHED,
            "; ".join(pending) or "Faust's own stop",
        )
        for handler in logging.getLogger().handlers:  # not logging.shutdown(): it may block
            handler.flush()
        os._exit(EXIT_UNFINISHED)


class Worker(faust.Worker):
    """Faust's worker, whose SIGTERM/SIGINT first drains the service (`Service.shut_down`).

    A watchdog thread ends the process with `EXIT_UNFINISHED` if the whole stop,
    Faust's part included, would outlast `TRADELANE_SHUTDOWN_SECONDS`.
    """

    def __init__(self, service: Service, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.service = service
        self.watchdog: threading.Timer | None = None

    async def _stop_on_signal(self, signal: signal.Signals) -> None:  # mode.Worker's hook
        self.log.info("Signal received: %s (%s): stopping gracefully", signal, signal.value)
        self.watchdog = threading.Timer(
            self.service.settings.shutdown_seconds - WATCHDOG_EARLY_SECONDS, self.service.overdue
        )
        self.watchdog.daemon = True
        self.watchdog.start()
        await self.service.shut_down(self.stop)
        if self._starting_fut is not None:
            self._starting_fut.cancel()


def consumer_lags(
    consumer: Any, topics: Mapping[str, str], progress: ConsumerProgress, now: float
) -> dict[str, Lag | None]:
    """Each topic's lag over the partitions this worker owns now (see `shared.lag`).

    `topics` maps a topic's name on the broker to its name in the registry.
    Before the consumer has started, nothing is known and nothing is returned.
    """
    try:
        assigned = consumer.assignment()
    except Exception:  # the consumer has not started yet
        return {}
    # Faust keeps the group's committed offset per partition (the next offset to read) and has
    # no public accessor for it; without it, a partition not processed here yet has no position.
    committed: Mapping[Any, int | None] = getattr(consumer, "_committed_offset", {})
    found: dict[str, list[Lag | None]] = {topic: [] for topic in topics.values()}
    for tp in assigned:
        topic = topics.get(tp.topic)
        if topic is None:
            continue
        try:
            highwater = consumer.highwater(tp)
        except Exception:  # revoked between the two calls
            highwater = None
        if highwater is None:  # no fetch response for it yet
            found[topic].append(None)
            continue
        found[topic].append(progress.of(topic, tp.partition).lag(highwater, committed.get(tp), now))
    return {topic: topic_lag(lags) for topic, lags in found.items()}


def collect_garbage_less() -> None:
    """Collect cyclic garbage less often, and never scan what start-up built.

    A batch allocates tens of thousands of short-lived objects (SQLAlchemy's
    results and rows, pydantic's models), nearly all freed by reference counting
    alone; at Python's defaults the collector still ran every 700 allocations and
    every few hundred batches scanned the whole heap, 14 % of the CPU of the four
    handlers in-process (docs/performance.md). Modules, mappers and settings live
    as long as the process: `gc.freeze` takes them out of every collection.
    """
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_ALLOCATIONS, middle, oldest)


def describe_batch(spec: TopicSpec, deliveries: list[Delivery]) -> str:
    """What a batch in hand is, for a shutdown that has to say what it left pending."""
    first = deliveries[0]
    more = f" and {len(deliveries) - 1} more" if len(deliveries) > 1 else ""
    return f"{spec.name} partition {first.partition} offset {first.offset}{more}"


def show_lag(service: str, topic: str, lag: Lag | None) -> None:
    """Set the two lag gauges; a lag not known yet is absent, not a made-up 0."""
    if lag is None:
        _forget(metrics.CONSUMER_LAG_MESSAGES, service, topic)
        _forget(metrics.CONSUMER_LAG_SECONDS, service, topic)
        return
    metrics.CONSUMER_LAG_MESSAGES.labels(service, topic).set(lag.messages)
    if lag.seconds is None:
        _forget(metrics.CONSUMER_LAG_SECONDS, service, topic)
    else:
        metrics.CONSUMER_LAG_SECONDS.labels(service, topic).set(lag.seconds)


def _forget(gauge: Gauge, *labels: str) -> None:
    with contextlib.suppress(KeyError):
        gauge.remove(*labels)
