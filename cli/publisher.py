"""The shop side of the contract: validate an event against its topic's model, then send it.

Uses kafka-python (synchronous, no event loop needed), so a shop's script, the
`tradelane publish` CLI, the seeder and the tests all publish the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import TracebackType
from typing import Self

from kafka import KafkaProducer
from kafka.producer.future import FutureRecordMetadata

from shared.contract import Event
from shared.kafka_connection import KafkaConnection, kafka_connection
from shared.settings import Settings
from shared.topics import TopicNames, TopicSpec


class EventPublisher:
    """A Kafka producer that only sends events valid under the topic registry."""

    def __init__(self, kafka: KafkaConnection | str, names: TopicNames | None = None) -> None:
        """`kafka`: the connection (`KafkaConnection.from_settings`), or a dev broker's address."""
        self.names = names or TopicNames()
        self._producer = KafkaProducer(
            **kafka_connection(kafka).kafka_python(),
            client_id="tradelane-publisher",
            acks="all",
            linger_ms=5,
        )
        self._in_flight: list[FutureRecordMetadata] = []

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        """A publisher to the broker, login and topic prefix the environment configures."""
        return cls(KafkaConnection.from_settings(settings), TopicNames(settings.topic_prefix))

    def publish(self, spec: TopicSpec, event: Event) -> None:
        if not isinstance(event, spec.model):
            raise TypeError(
                f"{spec.name} carries {spec.model.__name__}, not {type(event).__name__}"
            )
        self.send_raw(self.names.of(spec), spec.key_of(event).encode(), event.to_bytes())

    def publish_all(self, spec: TopicSpec, events: Iterable[Event]) -> int:
        count = 0
        for event in events:
            self.publish(spec, event)
            count += 1
        return count

    def send_raw(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        """Send bytes as they are: for replaying dead letters and for tests of bad input."""
        self._in_flight.append(self._producer.send(topic, key=key, value=value))

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until the broker has taken every event sent so far; raise its first refusal.

        kafka-python reports a refused record only on the record's future, and its
        own `flush` does not look: without this a shop would be told its events
        went out when the broker turned them away (a login it refused, a topic it
        does not know).
        """
        self._producer.flush(timeout=timeout)
        in_flight, self._in_flight = self._in_flight, []
        for record in in_flight:
            if record.failed():
                raise record.exception

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._producer.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
