"""What ops and shops use around the pipeline: metrics, health, the CLI against a real broker."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from decimal import Decimal
from pathlib import Path

from shared.contract import OrderState, PriceEntry, PriceList, PriceTier, StockLevel
from shared.seed import b2c_order, price_lists
from shared.topics import ORDERS_SUBMITTED, PRICE_LISTS, PRODUCTS, STOCK
from tests.e2e.conftest import Pipeline


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


def test_health_reports_ok_and_the_topics_consumed(pipeline: Pipeline) -> None:
    status, body = pipeline.http("catalog", "GET", "/health")
    assert status == 200 and body["ok"] is True
    assert pipeline.names.of(ORDERS_SUBMITTED) in body["consumes"]


def test_the_cli_publishes_a_valid_file_and_the_order_completes(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    order = b2c_order(pipeline.order_id("cli"), [("SCREW-5X50", 2)])
    path = tmp_path / "orders.jsonl"
    path.write_text(order.to_bytes().decode() + "\n")
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": pipeline.fleet.bootstrap,
        "TRADELANE_TOPIC_PREFIX": pipeline.names.prefix,
    }
    result = subprocess.run(
        [sys.executable, "-m", "shared.cli", "publish", str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
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
        [sys.executable, "-m", "shared.cli", "catalog", "import", str(path)],
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
    list_eur = next(p for p in price_lists() if p.price_list_id == "list-EUR")
    entry = PriceEntry(sku=sku, tiers=[PriceTier(min_quantity=1, unit_price=Decimal("24.90"))])
    pipeline.publish_reference(
        PRICE_LISTS,
        PriceList.new(price_list_id="list-EUR", currency="EUR", prices=[*list_eur.prices, entry]),
    )

    order = b2c_order(pipeline.order_id("imported"), [(sku, 2)])
    pipeline.publisher.publish(ORDERS_SUBMITTED, order)
    planned = pipeline.watch.wait_for_status(order.order_id, OrderState.FULFILLMENT_PLANNED)
    assert planned.totals is not None and planned.totals.total == Decimal("49.80")
