"""Every metric every service registers follows Prometheus conventions, with bounded labels.

The four services are built in-process (`create_service` connects nowhere), so
every metric any of them registers is in prometheus_client's default registry;
then each one is checked: the `tradelane_` prefix, `_total` on counters and
only there, base units (`_seconds`, `_bytes`) on anything timed or sized, and
labels from a short allowed set that can never hold an order, an account or a
SKU.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

from shared import metrics
from shared.service import Service
from shared.settings import Settings

SERVICES = ("catalog", "pricing", "approvals", "fulfillment")

ALLOWED_LABELS = {
    "service",  # the four services
    "topic",  # the topic registry (logical names, no prefix)
    "channel",  # b2b, b2c, unknown
    "outcome",  # closed enums: the status published, a decision's outcome, ...
    "reason",  # refusal reasons and rejection reason codes: closed lists
    "stage",  # metrics.OrderStage
    "role",  # approver roles
    "category",  # top-level product categories only
    "warehouse",  # the warehouse reference list
    "mode",  # ShipmentMode: parcel, freight
    "carrier",  # the carriers in fulfillment's ShippingRules: five
    "kind",  # PromotionKind: percentage, fixed
    "scope",  # PromotionScope: sku, category, order
    "currency",  # ISO 4217 codes: a closed list
}
ID_LABELS = {"order_id", "account_id", "sku", "event_id", "buyer_id", "approver_id"}
"""Unbounded: one series per order, account or product. Never a label."""

TIMED = {"time", "duration", "latency", "delay", "age", "elapsed", "seconds"}
SIZED = {"size", "bytes", "length"}
NOT_BASE_UNITS = {
    "milliseconds",
    "millis",
    "ms",
    "microseconds",
    "us",
    "minutes",
    "hours",
    "days",
    "kb",
    "mb",
    "kilobytes",
    "megabytes",
    "percent",
}
DEFAULT_COLLECTORS = {"GCCollector", "PlatformCollector", "ProcessCollector"}
"""prometheus_client's own process and runtime metrics (`process_*`, `python_*`)."""


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Service]]:
    built = []
    for name in SERVICES:
        settings = Settings(TRADELANE_DATA_DIR=Path(tmp_path_factory.mktemp(name)))
        built.append(importlib.import_module(f"services.{name}.app").create_service(settings))
    yield built


def ours(services: list[Service]) -> list[MetricWrapperBase]:
    """Every metric in the default registry that is not prometheus_client's own."""
    assert len(services) == len(SERVICES)
    # The registry has no public listing of its collectors with their label names.
    collectors = list(REGISTRY._collector_to_names)
    others = {type(c).__name__ for c in collectors if not isinstance(c, MetricWrapperBase)}
    assert others <= DEFAULT_COLLECTORS, f"unexpected collectors: {others}"
    found = [c for c in collectors if isinstance(c, MetricWrapperBase)]
    assert len(found) >= 25, "the services' metrics are not all registered"
    return found


def exposed_name(metric: MetricWrapperBase) -> str:
    """The name as Prometheus sees it (prometheus_client keeps a counter's without `_total`)."""
    name: str = metric._name
    return f"{name}_total" if metric._type == "counter" else name


def test_every_metric_has_the_prefix_and_help(services: list[Service]) -> None:
    for metric in ours(services):
        name = exposed_name(metric)
        assert re.fullmatch(r"tradelane_[a-z][a-z0-9_]*[a-z0-9]", name), name
        assert metric._documentation.strip(), f"{name} has no help text"


def test_counters_and_only_counters_end_in_total(services: list[Service]) -> None:
    for metric in ours(services):
        name, kind = exposed_name(metric), metric._type
        if kind == "counter":
            assert name.endswith("_total"), name
            assert not name.removesuffix("_total").endswith("_total"), name
        else:
            assert "_total" not in name, f"{kind} {name} is named like a counter"
    for family in REGISTRY.collect():
        if family.type == "counter" and family.name.startswith("tradelane_"):
            for sample in family.samples:
                assert sample.name.endswith(("_total", "_created")), sample.name


def test_timed_and_sized_metrics_are_in_base_units(services: list[Service]) -> None:
    for metric in ours(services):
        name, kind = exposed_name(metric), metric._type
        words = name.removesuffix("_total").split("_")
        assert not NOT_BASE_UNITS & set(words), f"{name}: use seconds or bytes"
        if TIMED & set(words):
            assert words[-1] == "seconds", f"{name} measures time: end it in _seconds"
        if SIZED & set(words):
            assert words[-1] == "bytes", f"{name} measures size: end it in _bytes"
        if kind in ("histogram", "summary"):
            # money: `_amount`, in the major unit of the series' `currency` label;
            # a count of events per batch: `_events`
            assert words[-1] in ("seconds", "bytes", "ratio", "amount", "events"), (
                f"{kind} {name} needs a base unit"
            )


def test_labels_are_bounded_and_never_name_an_order_an_account_or_a_sku(
    services: list[Service],
) -> None:
    for metric in ours(services):
        name, labels = exposed_name(metric), set(metric._labelnames)
        assert not labels & ID_LABELS, f"{name} is labelled by {labels & ID_LABELS}"
        assert not {label for label in labels if label.endswith("_id")}, name
        assert labels <= ALLOWED_LABELS, f"{name}: labels {labels - ALLOWED_LABELS} not allowed"


def test_lag_and_stage_latency_are_registered_with_their_labels(services: list[Service]) -> None:
    by_name = {exposed_name(m): m for m in ours(services)}
    for name, labels in (
        ("tradelane_consumer_lag_messages", ("service", "topic")),
        ("tradelane_consumer_lag_seconds", ("service", "topic")),
        ("tradelane_order_stage_latency_seconds", ("service", "stage")),
    ):
        assert by_name[name]._labelnames == labels, name


def test_stage_latency_buckets_reach_from_ten_milliseconds_to_weeks() -> None:
    """Automatic steps take milliseconds; a B2B approval chain or a backorder takes days."""
    bounds = metrics.STAGE_LATENCY_BUCKETS
    assert list(bounds) == sorted(set(bounds))
    assert bounds[0] == 0.01
    assert {1.0, 60.0, 3600.0, 86400.0} <= set(bounds)
    assert bounds[-1] >= 7 * 86400


def test_each_service_shows_the_stages_it_times_from_the_start(services: list[Service]) -> None:
    shown: dict[str, set[str]] = {}
    for family in REGISTRY.collect():
        if family.name == "tradelane_order_stage_latency_seconds":
            for sample in family.samples:
                if sample.name.endswith("_count"):
                    shown.setdefault(sample.labels["service"], set()).add(sample.labels["stage"])
    assert set(shown) >= set(SERVICES)
    assert shown["catalog"] >= {"received", "validated", "rejected"}
    assert shown["pricing"] >= {"priced", "rejected"}
    assert shown["approvals"] >= {"awaiting_approval", "approved", "rejected"}
    assert shown["fulfillment"] >= {"fulfillment_planned", "shipped"}
    assert set().union(*shown.values()) <= {stage.value for stage in metrics.OrderStage}
