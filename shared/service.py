"""What every Tradelane service is made of: a Faust app, its database, and the rules of delivery.

A service is built by its `app.create_service(settings)`, which names the
handler for each topic (`service.handle(SPEC, handler)`), where a handler is
`async def handler(event, tx) -> None`. Faust only carries messages here:
everything between a message and its handler is `shared.consume`, the outbox
relay is `shared.relay`. Offsets are acknowledged only after the handler's
transaction commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import faust
from faust.web import Request, Response, View
from sqlalchemy import MetaData

from shared import metrics
from shared.consume import Delivery, EventConsumer, Handler, OrderRefused
from shared.db import OutboxRow, ServiceDatabase
from shared.relay import OutboxRelay
from shared.settings import Settings
from shared.topics import TopicNames, TopicSpec, create_topics

log = logging.getLogger(__name__)

RETENTION_SWEEP_SECONDS = 3600.0


class Service:
    """One Tradelane service: Faust app + own database + inbox/outbox + /metrics + /health."""

    def __init__(self, name: str, metadata: MetaData, settings: Settings) -> None:
        self.name = name
        self.settings = settings
        self.names = TopicNames(settings.topic_prefix)
        self.db = ServiceDatabase(settings.database_url_for(name), metadata, self.names, name)
        self.app = self._create_app()
        self.consumer = EventConsumer(name, self.db, self.names)
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
        """Hand every event on `spec`'s topic to `handler`, with exactly-once effect."""
        consumer = self.consumer

        async def consume(stream: faust.StreamT) -> None:
            manual = stream.noack()  # type: ignore[attr-defined]  # missing from StreamT
            async for message_event in manual.events():
                message = message_event.message
                delivery = Delivery(message.value, message.key, message.partition, message.offset)
                await consumer.consume(spec, handler, delivery)
                await manual.ack(message_event)

        consume.__name__ = consume.__qualname__ = f"{self.name}_{spec.name.replace('.', '_')}"
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
