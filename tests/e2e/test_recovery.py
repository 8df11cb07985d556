"""Crashes and redeliveries: no order lost, none doubled.

These tests stop, kill and restart real service processes, so they get their
own module (own topic prefix, own fleet) and leave the order-flow tests alone.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import TopicPartition
from kafka.admin import KafkaAdminClient
from kafka.structs import OffsetAndMetadata
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from services.catalog.store import Base as CatalogTables
from shared.contract import OrderState, OrderStatusChanged, OrderSubmitted
from shared.db import ServiceDatabase
from shared.topics import ORDERS_APPROVED, ORDERS_STATUS, ORDERS_SUBMITTED
from tests.e2e.conftest import PARTITIONS, WAIT_SECONDS, Pipeline, running_pipeline
from tests.support.postgres import LocalPostgres
from tools.seed import b2c_order


def rewind_to_start(pipeline: Pipeline, service: str, spec: object) -> None:
    """Reset a stopped service's committed offsets to 0: Kafka will redeliver everything."""
    topic = pipeline.names.of(spec)  # type: ignore[arg-type]
    admin = KafkaAdminClient(bootstrap_servers=pipeline.fleet.bootstrap)
    try:
        result = admin.alter_group_offsets(
            pipeline.fleet.group_id(service),
            {TopicPartition(topic, p): OffsetAndMetadata(0, "", -1) for p in range(PARTITIONS)},
        )
    finally:
        admin.close()
    assert all(error.__name__ == "NoError" for error in result.values()), result


def test_redelivered_events_change_nothing_twice(pipeline: Pipeline) -> None:
    order = b2c_order(pipeline.order_id("redeliver"), [("BOLT-M8-100", 1)])
    pipeline.publisher.publish(ORDERS_SUBMITTED, order)
    pipeline.watch.wait_for_status(order.order_id, OrderState.FULFILLMENT_PLANNED)

    pipeline.fleet.stop(["fulfillment"])
    rewind_to_start(pipeline, "fulfillment", ORDERS_APPROVED)
    pipeline.fleet.start(["fulfillment"])
    pipeline.fleet.wait_caught_up([ORDERS_APPROVED], services=["fulfillment"])

    marker = b2c_order(pipeline.order_id("after-redelivery"), [("GLOVE-L", 1)])
    pipeline.publisher.publish(ORDERS_SUBMITTED, marker)
    pipeline.watch.wait_for_status(marker.order_id, OrderState.FULFILLMENT_PLANNED)
    assert pipeline.watch.history(order.order_id).count("fulfillment_planned") == 1


def test_an_outbox_row_written_before_a_crash_is_sent_after_the_restart(
    pipeline: Pipeline,
) -> None:
    pipeline.fleet.kill("catalog")  # SIGKILL: nothing flushed, nothing committed
    stranded = OrderStatusChanged.new(
        order_id=pipeline.order_id("stranded"), status=OrderState.RECEIVED, reported_by="catalog"
    )
    asyncio.run(commit_without_relaying(pipeline, stranded))

    pipeline.fleet.start(["catalog"])

    seen = pipeline.watch.wait_for_status(stranded.order_id, OrderState.RECEIVED)
    assert seen.event_id == stranded.event_id


async def commit_without_relaying(pipeline: Pipeline, status: OrderStatusChanged) -> None:
    """What a handler's transaction leaves behind when the process dies right after commit."""
    url = f"sqlite+aiosqlite:///{pipeline.fleet.data_dir / 'catalog.db'}"
    database = ServiceDatabase(url, CatalogTables.metadata, pipeline.names)
    try:
        async with database.transaction() as tx:
            await tx.publish(ORDERS_STATUS, status)
    finally:
        await database.dispose()


def test_a_service_killed_mid_stream_loses_no_order(pipeline: Pipeline) -> None:
    orders = [b2c_order(pipeline.order_id(f"burst{n}"), [("SCREW-5X50", 1)]) for n in range(30)]
    for order in orders:
        pipeline.publisher.publish(ORDERS_SUBMITTED, order)
    pipeline.publisher.flush()
    pipeline.watch.wait_for_status(orders[0].order_id, OrderState.RECEIVED)

    pipeline.fleet.kill("pricing")
    pipeline.fleet.start(["pricing"])

    for order in orders:
        pipeline.watch.wait_for_status(order.order_id, OrderState.FULFILLMENT_PLANNED)
        assert pipeline.watch.history(order.order_id) == [
            "received",
            "approved",
            "fulfillment_planned",
        ]


@pytest.fixture(scope="module")
def catalog_on_postgres(
    kafka_bootstrap: str, postgres: LocalPostgres, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Pipeline, str]]:
    """A pipeline of its own whose catalog keeps its stock on PostgreSQL (row locks)."""
    database = f"catalog_{uuid.uuid4().hex[:8]}"
    url = postgres.create_database(database)
    data_dir = Path(tmp_path_factory.mktemp("services-catalog-on-postgres"))
    try:
        with running_pipeline(
            kafka_bootstrap, data_dir, service_env={"catalog": {"DATABASE_URL": url}}
        ) as pipeline:
            yield pipeline, url
    finally:
        postgres.drop_database(database)


def events_taken(pipeline: Pipeline, service: str, topic: str) -> float:
    """`tradelane_events_consumed_total` of one topic: counted as soon as a batch is taken."""
    for family in text_string_to_metric_families(pipeline.metrics(service)):
        for sample in family.samples:
            if sample.name == "tradelane_events_consumed_total" and sample.labels == {
                "service": service,
                "topic": topic,
            }:
                return sample.value
    return 0.0


async def reserved_units(url: str, sku: str) -> int:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            query = text("SELECT coalesce(sum(reserved), 0) FROM stock WHERE sku = :sku")
            return int((await connection.execute(query, {"sku": sku})).scalar_one())
    finally:
        await engine.dispose()


async def kill_catalog_with_a_batch_in_hand(
    pipeline: Pipeline, url: str, orders: list[OrderSubmitted], sku: str
) -> None:
    """Lock `sku`'s stock rows, send `orders`, and once catalog has taken a batch of them
    (its handler now waits for the lock, inside the batch's transaction) SIGKILL it."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection, connection.begin():
            await connection.execute(
                text("SELECT 1 FROM stock WHERE sku = :sku FOR UPDATE"), {"sku": sku}
            )
            taken_before = events_taken(pipeline, "catalog", ORDERS_SUBMITTED.name)
            for order in orders:
                pipeline.publisher.publish(ORDERS_SUBMITTED, order)
            pipeline.publisher.flush()
            deadline = time.monotonic() + WAIT_SECONDS
            while events_taken(pipeline, "catalog", ORDERS_SUBMITTED.name) <= taken_before:
                assert time.monotonic() < deadline, "catalog took no batch of the burst"
                await asyncio.sleep(0.05)
            pipeline.fleet.kill("catalog")
    finally:
        await engine.dispose()


def test_a_catalog_killed_with_a_batch_in_hand_loses_and_doubles_nothing(
    catalog_on_postgres: tuple[Pipeline, str],
) -> None:
    """A batch taken but not committed dies with the process: redelivered, handled once.

    The burst's stock rows are locked, so the batch catalog takes stops inside
    its transaction (after its inbox inserts, before its reservations) and
    cannot commit; its consumed-events counter shows the batch was taken.
    """
    pipeline, url = catalog_on_postgres
    sku = "SCREW-5X50"
    reserved_before = asyncio.run(reserved_units(url, sku))
    committed = [b2c_order(pipeline.order_id(f"kept{n}"), [(sku, 2)]) for n in range(10)]
    for order in committed:
        pipeline.publisher.publish(ORDERS_SUBMITTED, order)
    pipeline.publisher.flush()
    for order in committed:
        pipeline.watch.wait_for_status(order.order_id, OrderState.RECEIVED)

    in_hand = [b2c_order(pipeline.order_id(f"inhand{n}"), [(sku, 2)]) for n in range(30)]
    asyncio.run(kill_catalog_with_a_batch_in_hand(pipeline, url, in_hand, sku))
    pipeline.fleet.start(["catalog"])

    for order in [*committed, *in_hand]:
        pipeline.watch.wait_for_status(order.order_id, OrderState.FULFILLMENT_PLANNED)
        assert pipeline.watch.history(order.order_id) == [
            "received",
            "approved",
            "fulfillment_planned",
        ]
    assert asyncio.run(reserved_units(url, sku)) - reserved_before == 2 * 40
