"""The test broker really works: create a topic, produce a record, consume it back."""

from __future__ import annotations

import time
import uuid

from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient


def test_produce_and_consume_roundtrip(kafka_bootstrap: str) -> None:
    suffix = uuid.uuid4().hex[:12]
    topic = f"test.broker.roundtrip.{suffix}"
    payload = f"hello {suffix}".encode()

    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, request_timeout_ms=15_000)
    try:
        # auto.create.topics.enable=false on our broker: topics must be created explicitly.
        admin.create_topics(
            {topic: {"num_partitions": 1, "replication_factor": 1}}, wait_for_metadata=True
        )
    finally:
        admin.close()

    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", max_block_ms=15_000)
    try:
        metadata = producer.send(topic, key=b"k", value=payload).get(timeout=15)
    finally:
        producer.close()
    assert metadata.topic == topic

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=f"test-broker-{suffix}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        request_timeout_ms=15_000,
    )
    received: list[bytes] = []
    deadline = time.monotonic() + 30  # group join + first fetch; normally ~1 s
    try:
        while not received and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                received.extend(record.value for record in records)
    finally:
        consumer.close()
    assert received == [payload]
