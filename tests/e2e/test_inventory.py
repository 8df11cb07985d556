"""Stock over real Kafka with two catalog workers in one group, on SQLite and on PostgreSQL.

The module runs twice: once with catalog's database in SQLite, once in the
session's PostgreSQL server. Both times catalog runs as two processes sharing
the consumer group and the database, so orders on different partitions are
handled by different workers at the same moment, as in a scaled-out deployment.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from kafka.admin import KafkaAdminClient
from kafka.partitioner.default import murmur2

from shared.contract import (
    Account,
    Channel,
    Member,
    OrderState,
    Product,
    ReasonCode,
    Role,
    ShipmentDispatched,
    StockAdjustment,
    StockLevel,
)
from shared.topics import (
    ACCOUNTS,
    DISPATCHES,
    ORDERS_SUBMITTED,
    PRODUCTS,
    STOCK,
    STOCK_ADJUSTMENTS,
)
from tests.e2e.conftest import PARTITIONS, WAIT_SECONDS, Pipeline, running_pipeline
from tests.support.postgres import LocalPostgres
from tools.fleet import SERVICES, wait_for
from tools.seed import b2b_order, b2c_order

CATALOG_WORKERS = ("catalog", "catalog@2")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def two_catalogs(
    request: pytest.FixtureRequest,
    kafka_bootstrap: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Pipeline]:
    """The four services plus a second catalog worker, catalog on the given database."""
    service_env: dict[str, dict[str, str]] = {}
    database = f"catalog_{uuid.uuid4().hex[:8]}"
    server: LocalPostgres | None = None
    if request.param == "postgresql":
        server = request.getfixturevalue("postgres")
        service_env["catalog"] = {"DATABASE_URL": server.create_database(database)}
    data_dir = Path(tmp_path_factory.mktemp(f"services-{request.param}"))
    instances = (*SERVICES, "catalog@2")
    try:
        with running_pipeline(kafka_bootstrap, data_dir, instances, service_env) as pipeline:
            wait_for_both_workers_to_own_partitions(pipeline)
            yield pipeline
    finally:
        if server is not None:
            server.drop_database(database)


def wait_for_both_workers_to_own_partitions(pipeline: Pipeline) -> None:
    """The group has settled with one `orders.submitted` partition per worker."""
    admin = KafkaAdminClient(bootstrap_servers=pipeline.fleet.bootstrap)
    topic = pipeline.names.of(ORDERS_SUBMITTED)

    def split() -> bool:
        [group] = admin.describe_groups([pipeline.fleet.group_id("catalog")]).values()
        owned = sorted(
            sorted(
                p
                for a in m["member_assignment"]["assigned_partitions"]
                if a["topic"] == topic
                for p in a["partitions"]
            )
            for m in group["members"]
            if isinstance(m.get("member_assignment"), dict)
        )
        return group["group_state"] == "Stable" and owned == [[0], [1]]

    try:
        wait_for("two catalog workers each owning one partition", split, WAIT_SECONDS)
    finally:
        admin.close()


def partition_of(key: str) -> int:
    """The partition Kafka's default partitioner gives `key` (murmur2, as the publisher uses)."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % PARTITIONS


def customers_on_each_partition(pipeline: Pipeline) -> tuple[str, str]:
    """Two new consumer accounts whose orders land on different partitions."""
    found: dict[int, str] = {}
    for n in range(100):
        account_id = f"cust-{pipeline.run_id}-{n}"
        found.setdefault(partition_of(account_id), account_id)
        if len(found) == PARTITIONS:
            break
    first, second = found[0], found[1]
    pipeline.publish_reference(
        ACCOUNTS,
        *[
            Account.new(
                account_id=a,
                name=a,
                channel=Channel.B2C,
                members=[Member(member_id=a, name=a, roles=[Role.BUYER])],
            )
            for a in (first, second)
        ],
    )
    return first, second


def stock_of(pipeline: Pipeline, sku: str, warehouse_id: str) -> dict[str, int]:
    """On hand, reserved and available of one SKU in one warehouse, from catalog's API."""
    status, body = pipeline.http("catalog", "GET", f"/products/{sku}")
    assert status == 200, body
    return next(w for w in body["stock"]["warehouses"] if w["warehouse_id"] == warehouse_id)


def catalog_counter(pipeline: Pipeline, metric: str) -> float:
    """A catalog counter summed over both workers: each counts what it handled."""
    total = 0.0
    for worker in CATALOG_WORKERS:
        for line in pipeline.metrics(worker).splitlines():
            if line.startswith(metric):
                total += float(line.rsplit(" ", 1)[1])
    return total


# --- the last unit ---------------------------------------------------------------------------


def test_the_last_unit_goes_to_exactly_one_of_two_simultaneous_orders(
    two_catalogs: Pipeline,
) -> None:
    pipeline = two_catalogs
    anna, bob = customers_on_each_partition(pipeline)
    pipeline.publish_reference(
        STOCK,
        StockLevel.new(sku="HEADSET-BT", warehouse_id="wh-berlin", on_hand=1),
        StockLevel.new(sku="HEADSET-BT", warehouse_id="wh-vienna", on_hand=0),
    )
    orders = [
        b2c_order(pipeline.order_id("last"), [("HEADSET-BT", 1)], account_id=customer)
        for customer in (anna, bob)
    ]
    for order in orders:
        pipeline.publisher.publish(ORDERS_SUBMITTED, order)
    for order in orders:  # redelivered, and re-submitted under a new event id
        pipeline.publisher.publish(ORDERS_SUBMITTED, order)
        again = order.model_copy(update={"event_id": uuid.uuid4()})
        pipeline.publisher.publish(ORDERS_SUBMITTED, again)
    pipeline.publisher.flush()

    def verdicts() -> dict[str, OrderState] | None:
        final: dict[str, OrderState] = {}
        for order in orders:
            states = [s.status for s in pipeline.watch.statuses[order.order_id]]
            for state in (OrderState.REJECTED, OrderState.FULFILLMENT_PLANNED):
                if state in states:
                    final[order.order_id] = state
        return final if len(final) == len(orders) else None

    outcome = pipeline.watch.wait_until("both orders decided", verdicts)
    assert sorted(outcome.values()) == [OrderState.FULFILLMENT_PLANNED, OrderState.REJECTED]
    [loser] = [o for o, state in outcome.items() if state is OrderState.REJECTED]
    rejected = pipeline.watch.wait_for_status(loser, OrderState.REJECTED)
    assert rejected.reason is not None and rejected.reason.code is ReasonCode.OUT_OF_STOCK
    assert "1 requested, at most 0 available" in rejected.reason.message

    pipeline.fleet.wait_caught_up([ORDERS_SUBMITTED], services=CATALOG_WORKERS)
    for order in orders:
        assert pipeline.watch.history(order.order_id).count("received") == 1
    assert stock_of(pipeline, "HEADSET-BT", "wh-berlin") == {
        "warehouse_id": "wh-berlin",
        "on_hand": 1,
        "reserved": 1,
        "available": 0,
    }


# --- backorders ------------------------------------------------------------------------------


def a_product_with_little_stock(pipeline: Pipeline, on_hand: int) -> str:
    """A new SKU in the central DC only, on the list price list (B2B orders fall back to it)."""
    sku = f"PIPE-{pipeline.run_id}-{uuid.uuid4().hex[:4]}"
    pipeline.publish_reference(
        PRODUCTS,
        Product.new(sku=sku, name="Copper pipe 2 m", category="plumbing/pipes", unit_weight_kg="2"),
    )
    pipeline.publish_reference(
        STOCK, StockLevel.new(sku=sku, warehouse_id="dc-kassel", on_hand=on_hand)
    )
    pipeline.add_list_price(sku, "10.00")
    return sku


def dispatch(pipeline: Pipeline, order_id: str, shipment_id: str) -> None:
    """The warehouse confirms the shipment left, as its WMS would."""
    pipeline.publisher.publish(
        DISPATCHES, ShipmentDispatched.new(order_id=order_id, shipment_id=shipment_id)
    )
    pipeline.publisher.flush()


def shipped(pipeline: Pipeline, order_id: str, shipment_id: str) -> None:
    def found() -> bool:
        return any(
            s.status is OrderState.SHIPPED
            and [x.shipment_id for x in s.shipments or []] == [shipment_id]
            for s in pipeline.watch.statuses[order_id]
        )

    pipeline.watch.wait_until(f"{shipment_id} shipped", found)


def test_a_backordered_b2b_order_ships_what_is_there_and_the_rest_when_stock_arrives(
    two_catalogs: Pipeline,
) -> None:
    pipeline = two_catalogs
    sku = a_product_with_little_stock(pipeline, on_hand=4)
    order = b2b_order(pipeline.order_id("backorder"), [(sku, 10)])  # ACME allows backorders
    pipeline.publisher.publish(ORDERS_SUBMITTED, order)
    pipeline.publisher.flush()

    approved = pipeline.watch.wait_for_status(order.order_id, OrderState.APPROVED)
    [line] = approved.lines or []
    assert (line.quantity, line.backordered, line.warehouse_id) == (10, 6, "dc-kassel")
    assert approved.totals is not None and approved.totals.total == Decimal("100.00")
    planned = pipeline.watch.wait_for_status(order.order_id, OrderState.FULFILLMENT_PLANNED)
    [first] = planned.shipments or []
    assert [(x.sku, x.quantity) for x in first.lines] == [(sku, 4)]

    dispatch(pipeline, order.order_id, first.shipment_id)
    shipped(pipeline, order.order_id, first.shipment_id)
    pipeline.fleet.wait_caught_up([DISPATCHES], services=["fulfillment"])
    wait_for(
        "the first shipment's 4 units to leave on-hand stock",
        lambda: stock_of(pipeline, sku, "dc-kassel")["on_hand"] == 0,
        WAIT_SECONDS,
    )

    pipeline.publisher.publish(
        STOCK_ADJUSTMENTS,
        StockAdjustment.new(
            sku=sku, warehouse_id="dc-kassel", delta=10, reason="supplier delivery"
        ),
    )
    pipeline.publisher.flush()

    def second_plan() -> list[str] | None:
        for status in pipeline.watch.statuses[order.order_id]:
            ids = [s.shipment_id for s in status.shipments or []]
            if status.status is OrderState.FULFILLMENT_PLANNED and first.shipment_id not in ids:
                return ids
        return None

    [second_id] = pipeline.watch.wait_until("the backordered 6 planned", second_plan)
    second = next(
        s
        for status in pipeline.watch.statuses[order.order_id]
        for s in status.shipments or []
        if s.shipment_id == second_id
    )
    assert [(x.sku, x.quantity) for x in second.lines] == [(sku, 6)]
    assert stock_of(pipeline, sku, "dc-kassel") == {
        "warehouse_id": "dc-kassel",
        "on_hand": 10,
        "reserved": 6,
        "available": 4,
    }
    dispatch(pipeline, order.order_id, second_id)
    shipped(pipeline, order.order_id, second_id)
    wait_for(
        "the second shipment's 6 units to leave on-hand stock",
        lambda: stock_of(pipeline, sku, "dc-kassel")["reserved"] == 0,
        WAIT_SECONDS,
    )
    assert stock_of(pipeline, sku, "dc-kassel")["on_hand"] == 4
    assert pipeline.watch.history(order.order_id).count("shipped") == 2


def test_a_consumer_order_never_backorders(two_catalogs: Pipeline) -> None:
    pipeline = two_catalogs
    sku = a_product_with_little_stock(pipeline, on_hand=2)
    order = b2c_order(pipeline.order_id("no-backorder"), [(sku, 3)])
    pipeline.publisher.publish(ORDERS_SUBMITTED, order)
    rejected = pipeline.watch.wait_for_status(order.order_id, OrderState.REJECTED)
    assert rejected.reason is not None and rejected.reason.code is ReasonCode.OUT_OF_STOCK
    assert rejected.reason.message == (
        f"line 1: SKU '{sku}': 3 requested, at most 2 available in one warehouse (2 in all)"
    )


# --- metrics ---------------------------------------------------------------------------------


def test_stock_movements_and_free_units_show_on_metrics(two_catalogs: Pipeline) -> None:
    """Runs after the tests above in this module: they reserved, committed and ran out."""
    pipeline = two_catalogs
    assert (
        catalog_counter(pipeline, 'tradelane_stock_reserved_units_total{category="plumbing"}') >= 10
    )
    assert (
        catalog_counter(pipeline, 'tradelane_stock_committed_units_total{category="plumbing"}')
        >= 10
    )
    assert (
        catalog_counter(pipeline, 'tradelane_stock_backordered_units_total{category="plumbing"}')
        >= 6
    )
    stockouts = 'tradelane_stockouts_total{category="plumbing",outcome="rejected"}'
    assert catalog_counter(pipeline, stockouts) >= 1
    text = pipeline.metrics("catalog")
    berlin = re.search(
        r'^tradelane_stock_available_units\{warehouse="wh-berlin"\} (\S+)$', text, re.M
    )
    assert berlin is not None and float(berlin.group(1)) >= 0
