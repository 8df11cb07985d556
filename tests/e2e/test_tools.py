"""What ops and shops use around the pipeline: metrics, health, the CLI against a real broker."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from decimal import Decimal
from pathlib import Path

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from prometheus_client.parser import text_string_to_metric_families

from shared.contract import (
    OrderState,
    ShipmentDispatched,
    StockAdjustment,
    StockLevel,
)
from shared.topics import (
    DISPATCHES,
    ORDERS_SUBMITTED,
    PRODUCTS,
    STOCK,
    STOCK_ADJUSTMENTS,
    TopicSpec,
)
from tests.e2e.conftest import Pipeline, publish_with_cli
from tools.seed import b2c_order


def test_every_service_serves_prometheus_metrics_in_base_units(pipeline: Pipeline) -> None:
    order = b2c_order(pipeline.order_id("metrics"), [("GLOVE-L", 1)])
    pipeline.publisher.publish(ORDERS_SUBMITTED, order)
    pipeline.watch.wait_for_status(order.order_id, OrderState.FULFILLMENT_PLANNED)

    for name, service in pipeline.fleet.running.items():
        with urllib.request.urlopen(service.url("/metrics"), timeout=5) as response:
            assert response.headers["Content-Type"].startswith("text/plain")
            text = response.read().decode()
        for metric in (
            "tradelane_events_consumed_total",
            "tradelane_events_produced_total",
            "tradelane_event_processing_seconds_bucket",
            "tradelane_dead_letters_total",
            "tradelane_orders_total",
        ):
            assert metric in text, f"{name} lacks {metric}"
        assert f'service="{name}"' in text
    with urllib.request.urlopen(pipeline.fleet.running["fulfillment"].url("/metrics")) as response:
        text = response.read().decode()
    assert (
        'tradelane_orders_total{channel="b2c",outcome="fulfillment_planned",service="fulfillment"}'
        in text
    )


STAGES_PASSED = {  # a consumer's order approved at once, as each service sees it
    "catalog": ("received", "validated"),
    "pricing": ("priced",),
    "approvals": ("approved",),
    "fulfillment": ("fulfillment_planned",),
}


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a `/metrics` text by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def lag_and_latency_gaps(
    pipeline: Pipeline, service: str, topics: list[str], stages: tuple[str, ...]
) -> list[str]:
    """What `/metrics` of `service` lacks: a lag of 0 on each topic, a timing of each stage."""
    found = samples(pipeline.metrics(service))
    gaps = []
    for topic in topics:
        labels = frozenset({("service", service), ("topic", topic)})
        for lag in ("tradelane_consumer_lag_messages", "tradelane_consumer_lag_seconds"):
            if found.get((lag, labels)) != 0:
                gaps.append(f"{lag}{{topic={topic}}} is {found.get((lag, labels))}")
    for stage in stages:
        labels = frozenset({("service", service), ("stage", stage)})
        count = found.get(("tradelane_order_stage_latency_seconds_count", labels), 0)
        if count < 1:
            gaps.append(f"stage {stage} timed {count} times")
    return gaps


def test_every_service_shows_its_lag_per_topic_and_how_long_the_order_took_per_stage(
    pipeline: Pipeline,
) -> None:
    """Idle and caught up, every topic a service reads shows 0 messages and 0 seconds behind
    (not the time since its last message), and each stage the order passed was timed."""
    order = b2c_order(pipeline.order_id("latency"), [("GLOVE-L", 1)])
    pipeline.publisher.publish(ORDERS_SUBMITTED, order)
    pipeline.watch.wait_for_status(order.order_id, OrderState.FULFILLMENT_PLANNED)

    deadline = time.monotonic() + 60
    for name, stages in STAGES_PASSED.items():
        status, health = pipeline.http(name, "GET", "/health")
        assert status == 200, health
        topics = [topic.removeprefix(pipeline.names.prefix) for topic in health["consumes"]]
        assert topics, name
        while gaps := lag_and_latency_gaps(pipeline, name, topics, stages):
            assert time.monotonic() < deadline, f"{name} after 60s: {gaps}"
            time.sleep(0.2)


def test_health_reports_ok_and_the_topics_consumed(pipeline: Pipeline) -> None:
    status, body = pipeline.http("catalog", "GET", "/health")
    assert status == 200 and body["ok"] is True
    assert pipeline.names.of(ORDERS_SUBMITTED) in body["consumes"]


def test_every_service_is_live_and_ready_on_its_probes(pipeline: Pipeline) -> None:
    """What Kubernetes asks: /livez (process and agents) and /readyz (database, partitions)."""
    for name, service in pipeline.fleet.running.items():
        assert status_of(service.url("/livez"))[0] == 200, name
        deadline = time.monotonic() + 30
        while (ready := status_of(service.url("/readyz")))[0] != 200:
            assert time.monotonic() < deadline, f"{name} not ready: {ready[1][:300]!r}"
            time.sleep(0.5)


FAUST_BUILT_IN_VIEWS = (
    "/router/",  # which worker owns which table key: the cluster's topology
    "/router/topics",
    "/table/",
    "/graph/",
    "/assignment/",  # the stats blueprint's partition assignment
    "/performance/",
)


def status_of(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_faust_built_in_web_views_are_off_and_ours_still_answer(pipeline: Pipeline) -> None:
    for name, service in pipeline.fleet.running.items():
        for path in FAUST_BUILT_IN_VIEWS:
            status, body = status_of(service.url(path))
            assert status == 404, f"{name} serves Faust's {path}: {body[:200]!r}"
        # `/` is Faust's fixed production index (it has no setting), never the statistics page
        assert status_of(service.url("/")) == (200, b'{"status":"OK"}')
        assert status_of(service.url("/health"))[0] == 200, name
        assert status_of(service.url("/metrics"))[0] == 200, name


def test_the_cli_publishes_a_valid_file_and_the_order_completes(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    order = b2c_order(pipeline.order_id("cli"), [("SCREW-5X50", 2)])
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": pipeline.fleet.bootstrap,
        "TRADELANE_TOPIC_PREFIX": pipeline.names.prefix,
    }
    result = publish_with_cli([order], tmp_path, env)
    assert result.returncode == 0, result.stderr
    assert "sent 1 event(s)" in result.stdout
    pipeline.watch.wait_for_status(order.order_id, OrderState.FULFILLMENT_PLANNED)


def test_a_product_imported_from_csv_can_be_ordered(pipeline: Pipeline, tmp_path: Path) -> None:
    sku = f"LAMP-{pipeline.run_id}"
    path = tmp_path / "pim.csv"
    path.write_text(
        "sku,name,category,unit_weight_kg,channels,spec:power:number:W\n"
        f"{sku},Work lamp,tools/lighting,0.800,b2c,20\n"
    )
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": pipeline.fleet.bootstrap,
        "TRADELANE_TOPIC_PREFIX": pipeline.names.prefix,
    }
    result = subprocess.run(
        [sys.executable, "-m", "cli", "catalog", "import", str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "imported 1 product(s)" in result.stdout
    pipeline.fleet.wait_caught_up([PRODUCTS])
    pipeline.publish_reference(STOCK, StockLevel.new(sku=sku, warehouse_id="wh-berlin", on_hand=3))
    pipeline.add_list_price(sku, "24.90")

    order = b2c_order(pipeline.order_id("imported"), [(sku, 2)])
    pipeline.publisher.publish(ORDERS_SUBMITTED, order)
    planned = pipeline.watch.wait_for_status(order.order_id, OrderState.FULFILLMENT_PLANNED)
    assert planned.totals is not None and planned.totals.total == Decimal("49.80")


def run_cli(pipeline: Pipeline, *args: str) -> subprocess.CompletedProcess[str]:
    """`tradelane ARGS` as ops runs it: a process of its own, configured by the environment."""
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": pipeline.fleet.bootstrap,
        "TRADELANE_TOPIC_PREFIX": pipeline.names.prefix,
    }
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def sent_event_id(stdout: str) -> str:
    """The event id a one-event command printed (`..., event <uuid>)`)."""
    found = re.search(r"event ([0-9a-f-]{36})\)", stdout)
    assert found is not None, stdout
    return found.group(1)


def read_back(pipeline: Pipeline, spec: TopicSpec, event_id: str) -> ConsumerRecord:
    """The record carrying `event_id` on the topic, read from the start like any consumer."""
    consumer = KafkaConsumer(
        bootstrap_servers=pipeline.fleet.bootstrap, group_id=None, enable_auto_commit=False
    )
    topic = pipeline.names.of(spec)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                for record in records:
                    if json.loads(record.value).get("event_id") == event_id:
                        return record
    finally:
        consumer.close()
    raise AssertionError(f"event {event_id} not found on {topic}")


def test_the_cli_publishes_a_stock_adjustment_keyed_by_sku_and_warehouse(
    pipeline: Pipeline,
) -> None:
    result = run_cli(
        pipeline, "catalog", "adjust", "BOLT-M8-100", "dc-kassel", "-2", "--reason", "breakage"
    )
    assert result.returncode == 0, result.stderr
    event_id = sent_event_id(result.stdout)
    assert result.stdout.startswith("BOLT-M8-100 in dc-kassel: -2 on hand (breakage)")

    record = read_back(pipeline, STOCK_ADJUSTMENTS, event_id)
    assert record.key == b"BOLT-M8-100@dc-kassel"
    adjustment = StockAdjustment.model_validate_json(record.value)
    assert (adjustment.sku, adjustment.warehouse_id, adjustment.delta, adjustment.reason) == (
        "BOLT-M8-100",
        "dc-kassel",
        -2,
        "breakage",
    )


def test_the_cli_refuses_an_adjustment_of_zero_and_sends_nothing(pipeline: Pipeline) -> None:
    result = run_cli(
        pipeline, "catalog", "adjust", "BOLT-M8-100", "dc-kassel", "+0", "--reason", "recount"
    )
    assert result.returncode == 2
    assert "argument DELTA: expected a change other than 0" in result.stderr
    assert result.stdout == ""


def test_the_cli_confirms_a_planned_shipments_dispatch_and_the_order_ships(
    pipeline: Pipeline,
) -> None:
    order = b2c_order(pipeline.order_id("dispatch"), [("GLOVE-L", 1)])
    pipeline.publisher.publish(ORDERS_SUBMITTED, order)
    planned = pipeline.watch.wait_for_status(order.order_id, OrderState.FULFILLMENT_PLANNED)
    assert planned.shipments
    shipment_id = planned.shipments[0].shipment_id

    result = run_cli(pipeline, "fulfillment", "dispatch", order.order_id, shipment_id)
    assert result.returncode == 0, result.stderr
    event_id = sent_event_id(result.stdout)
    assert f"shipment {shipment_id} of order {order.order_id} left the warehouse" in result.stdout

    record = read_back(pipeline, DISPATCHES, event_id)
    assert record.key == order.order_id.encode()
    dispatch = ShipmentDispatched.model_validate_json(record.value)
    assert (dispatch.order_id, dispatch.shipment_id) == (order.order_id, shipment_id)
    shipped = pipeline.watch.wait_for_status(order.order_id, OrderState.SHIPPED)
    assert [s.shipment_id for s in shipped.shipments or []] == [shipment_id]
