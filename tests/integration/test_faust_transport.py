"""Faust's consumer on the app's own loop (`shared.faust_transport`), over the real broker.

Each test runs Faust apps in this process, on the test's loop, the way a
service's worker runs its one app: records arrive in order, the app starts no
thread to consume them, acknowledged offsets are committed, and a second
worker joining and leaving the group moves partitions without losing a record.
The last test holds every service to this transport.
"""

from __future__ import annotations

import asyncio
import importlib
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import faust
import pytest
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient

from shared.faust_transport import App, ConsumerOnTheLoop
from shared.settings import Settings
from tools.fleet import SERVICES

WAIT_SECONDS = 60.0
"""Group joins and the first fetch; normally a few seconds."""


def new_topic(bootstrap: str, partitions: int) -> str:
    topic = f"test.faust-transport.{uuid.uuid4().hex[:12]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15_000)
    try:
        admin.create_topics(
            {topic: {"num_partitions": partitions, "replication_factor": 1}},
            wait_for_metadata=True,
        )
    finally:
        admin.close()
    return topic


def publish(bootstrap: str, topic: str, values: list[int], partitions: int) -> None:
    """Each value to partition `value % partitions`, so each partition's expected order is known."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", max_block_ms=15_000)
    try:
        for value in values:
            producer.send(topic, value=str(value).encode(), partition=value % partitions)
        producer.flush(timeout=15)
    finally:
        producer.close()


class Worker:
    """One Faust app reading `topic` into `seen`, as (partition, value), acknowledging each."""

    def __init__(self, bootstrap: str, group: str, topic: str, data_dir: Path) -> None:
        self.seen: list[tuple[int, int]] = []
        self.threads_while_reading: set[str] = set()
        self.app = App(
            group,
            broker=f"kafka://{bootstrap}",
            store="memory://",
            autodiscover=False,
            datadir=str(data_dir / uuid.uuid4().hex[:8]),
            topic_allow_declare=False,
            topic_disable_leader=True,
            consumer_auto_offset_reset="earliest",
            web_enabled=False,
            broker_commit_every=1,
            broker_heartbeat_interval=1.0,
            broker_session_timeout=10.0,
        )
        source = self.app.topic(topic, key_serializer="raw", value_serializer="raw")

        async def read(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
            async for event in stream.events():
                self.threads_while_reading.update(t.name for t in threading.enumerate())
                self.seen.append((event.message.partition, int(event.value)))
                yield None

        self.app.agent(source, name=f"read-{uuid.uuid4().hex[:8]}")(read)

    async def __aenter__(self) -> Worker:
        await self.app.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.app.stop()


async def until(condition: Callable[[], bool], what: str) -> None:
    try:
        async with asyncio.timeout(WAIT_SECONDS):
            while not condition():
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"waited {WAIT_SECONDS:.0f} s for {what}") from None


def owned(worker: Worker) -> set[int]:
    return {tp.partition for tp in worker.app.consumer.assignment()}


def values_of(seen: list[tuple[int, int]], partition: int) -> list[int]:
    return [value for p, value in seen if p == partition]


async def test_records_arrive_in_partition_order_and_no_thread_is_started(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    topic = new_topic(kafka_bootstrap, partitions=2)
    publish(kafka_bootstrap, topic, list(range(20)), partitions=2)
    group = f"test-faust-transport-{uuid.uuid4().hex[:8]}"
    threads_before = {thread.name for thread in threading.enumerate()}
    async with Worker(kafka_bootstrap, group, topic, tmp_path) as worker:
        await until(lambda: len(worker.seen) == 20, "all twenty records")
        consumer_service = worker.app.consumer._thread  # type: ignore[attr-defined]
    assert values_of(worker.seen, 0) == list(range(0, 20, 2))
    assert values_of(worker.seen, 1) == list(range(1, 20, 2))
    assert worker.threads_while_reading - threads_before == set()
    assert isinstance(consumer_service, ConsumerOnTheLoop)


async def test_a_restarted_worker_resumes_after_the_committed_offsets(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    topic = new_topic(kafka_bootstrap, partitions=2)
    group = f"test-faust-transport-{uuid.uuid4().hex[:8]}"
    publish(kafka_bootstrap, topic, list(range(10)), partitions=2)
    async with Worker(kafka_bootstrap, group, topic, tmp_path) as first:
        await until(lambda: len(first.seen) == 10, "the first ten records")
    publish(kafka_bootstrap, topic, list(range(10, 16)), partitions=2)
    async with Worker(kafka_bootstrap, group, topic, tmp_path) as second:
        await until(lambda: len(second.seen) == 6, "the six records published since")
    assert sorted(value for _, value in second.seen) == list(range(10, 16))


async def test_a_second_worker_joining_and_leaving_moves_partitions_and_loses_nothing(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    topic = new_topic(kafka_bootstrap, partitions=4)
    group = f"test-faust-transport-{uuid.uuid4().hex[:8]}"
    async with Worker(kafka_bootstrap, group, topic, tmp_path) as first:
        async with Worker(kafka_bootstrap, group, topic, tmp_path) as second:
            await until(
                lambda: (
                    bool(owned(first))
                    and bool(owned(second))
                    and owned(first).isdisjoint(owned(second))
                    and owned(first) | owned(second) == set(range(4))
                ),
                "the two workers to split the four partitions",
            )
            owned_by_second = owned(second)
            publish(kafka_bootstrap, topic, list(range(40)), partitions=4)
            await until(lambda: len(first.seen) + len(second.seen) == 40, "forty records")
        await until(lambda: owned(first) == set(range(4)), "the first to own all four")
        publish(kafka_bootstrap, topic, list(range(40, 80)), partitions=4)
        await until(lambda: len(first.seen) + len(second.seen) >= 80, "forty more")
    assert {p for p, _ in second.seen} == owned_by_second
    assert owned_by_second.isdisjoint({p for p, value in first.seen if value < 40})
    assert set(value for _, value in first.seen + second.seen) == set(range(80))
    later = [(p, value) for p, value in first.seen if value >= 40]
    for partition in range(4):
        assert values_of(later, partition) == list(range(40 + partition, 80, 4))


@pytest.mark.parametrize("name", SERVICES)
async def test_every_service_reads_with_the_consumer_on_its_loop(name: str, tmp_path: Path) -> None:
    app_module = importlib.import_module(f"services.{name}.app")
    service = app_module.create_service(Settings(TRADELANE_DATA_DIR=tmp_path))
    try:
        assert isinstance(service.app.consumer._thread, ConsumerOnTheLoop)
    finally:
        await service.db.dispose()
