"""A service's handlers on a real SQLite database, without Kafka: the seam for handler tests.

`ServiceBench` hands events to a service's handlers through the very consume
path the running service uses (`shared.consume.EventConsumer`: size limit,
strict parsing, inbox, transaction, dead letters, refusals), and reads back
what the handlers published from the outbox. Every handler of every service is
tested this way, in-process, in milliseconds.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from sqlalchemy import MetaData, select

from shared.consume import Delivery, EventConsumer, Handler, OrderRefused, publish_every_refusal
from shared.contract import DeadLetter, Event, OrderStatusChanged
from shared.db import ConnectionPool, ServiceDatabase
from shared.topics import ALL_TOPICS, ORDERS_STATUS, TopicNames, TopicSpec, repeating

E = TypeVar("E", bound=Event)

BY_NAME = {spec.name: spec for spec in ALL_TOPICS}


class ServiceBench:
    """One service's handlers and database; `deliver` events, then look at what came out."""

    def __init__(
        self,
        name: str,
        metadata: MetaData,
        handlers: Mapping[TopicSpec, Handler[Any]],
        url: str,
        order_refused: OrderRefused = publish_every_refusal,
        pool: ConnectionPool | None = None,
    ) -> None:
        self.names = TopicNames()
        self.db = ServiceDatabase(url, metadata, self.names, name, pool)
        self.consumer = EventConsumer(name, self.db, self.names, order_refused)
        self.handlers = handlers
        self._offsets = itertools.count()

    async def start(self) -> ServiceBench:
        await self.db.create_tables()
        return self

    async def dispose(self) -> None:
        await self.db.dispose()

    async def deliver(self, spec: TopicSpec, event: Event | bytes, key: bytes = b"k") -> None:
        """What the agent does with one message of `spec`'s topic: the whole consume path."""
        value = event if isinstance(event, bytes) else event.to_bytes()
        delivery = Delivery(value, key, 0, next(self._offsets))
        await self.consumer.consume(spec, self.handlers[spec], delivery)

    async def hear(self, report: OrderStatusChanged) -> None:
        """Another service's report of an order, as the broker brings it here: on each topic
        repeating its state that this service reads (none: the report never reaches it)."""
        for spec in repeating(report.status):
            if spec in self.handlers:
                await self.deliver(spec, report)

    async def deliver_batch(self, spec: TopicSpec, events: Iterable[Event | bytes]) -> None:
        """What the agent does with a batch of `spec`'s messages: one transaction for all."""
        deliveries = [
            Delivery(
                event if isinstance(event, bytes) else event.to_bytes(),
                b"k",
                0,
                next(self._offsets),
            )
            for event in events
        ]
        await self.consumer.consume_batch(spec, self.handlers[spec], deliveries)

    async def deliver_all(self, spec: TopicSpec, events: Iterable[Event]) -> None:
        """Deliver each of `events` in turn, e.g. a data set's reference data."""
        for event in events:
            await self.deliver(spec, event)

    async def published(self, spec: TopicSpec, model: type[E] | None = None) -> list[E]:
        """Every event the service wrote to `spec`'s topic, in order (sent or not)."""
        outbox = self.db.outbox.c
        query = select(outbox.value).where(outbox.topic == self.names.of(spec)).order_by(outbox.id)
        async with self.db.sessions() as session:
            values = list(await session.scalars(query))
        parse = (model or spec.model).model_validate_json
        return [parse(value) for value in values]  # type: ignore[misc]

    async def statuses(self, order_id: str) -> list[OrderStatusChanged]:
        found = await self.published(ORDERS_STATUS, OrderStatusChanged)
        return [status for status in found if status.order_id == order_id]

    async def history(self, order_id: str) -> list[str]:
        return [status.status.value for status in await self.statuses(order_id)]

    async def dead_letters(self, spec: TopicSpec) -> list[DeadLetter]:
        outbox = self.db.outbox.c
        query = (
            select(outbox.value).where(outbox.topic == self.names.dlq_of(spec)).order_by(outbox.id)
        )
        async with self.db.sessions() as session:
            return [DeadLetter.model_validate_json(v) for v in await session.scalars(query)]
