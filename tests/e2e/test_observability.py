"""Dashboards and alerts proven against a real Prometheus scraping the four running services.

The services run as in the other e2e modules (real processes, the session's
broker); Debian's `prometheus` scrapes their `/metrics` every second with the
target labels the ServiceMonitor gives them in a cluster, and loads the alert
rules from the PrometheusRule. A scenario makes every metric the dashboards
show exist for real — B2C and B2B orders, an approval decided, one escalated
and expired, rejections, a stock-out and a backorder, a hostile message and a
refused dispatch dead-lettered, shipments planned and dispatched — and then
every panel's query of every generated dashboard must parse and return at
least one series. Every wait is a condition with a deadline.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from shared.contract import OrderState, ReasonCode, Role
from shared.topics import ORDERS_SUBMITTED
from tests.e2e.conftest import WAIT_SECONDS, Pipeline, free_port
from tests.e2e.test_approvals import Business, rule, step
from tests.e2e.test_inventory import a_product_with_little_stock, dispatch, shipped
from tests.support.prometheus import LocalPrometheus, Target, alerts
from tools import dashboards
from tools.fleet import SERVICES
from tools.seed import b2b_order, b2c_order

NAMESPACE = "tradelane-test"
RATE_INTERVAL = "5m"
"""Stands in for Grafana's `$__rate_interval`: longer than this module's run, so a rate sees
every sample since the services started."""


def as_grafana_would(expr: str) -> str:
    """The query Grafana sends with namespace chosen, service at All and the time macros set."""
    for variable, value in (
        ("$__rate_interval", RATE_INTERVAL),
        ("$__interval", "1s"),
        ("$__range", RATE_INTERVAL),
        ("$namespace", NAMESPACE),
        ("$service", ".*"),
    ):
        expr = expr.replace(variable, value)
    return expr


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel: str
    expr: str

    def __str__(self) -> str:
        return f"{self.dashboard} / {self.panel}: {self.expr}"


def every_panel_query() -> list[PanelQuery]:
    """Every query of every committed dashboard (the unit tests keep them as generated)."""
    found = []
    for board in dashboards.BOARDS:
        model = json.loads(dashboards.file_of(board).read_text())
        for title, expr in dashboards.panel_queries(model):
            found.append(PanelQuery(model["title"], title, expr))
    return found


@pytest.fixture(scope="module")
def prometheus(
    pipeline: Pipeline, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalPrometheus]:
    targets = [Target(name, pipeline.fleet.ports[name], NAMESPACE) for name in SERVICES]
    folder = Path(tmp_path_factory.mktemp("prometheus"))
    with LocalPrometheus(folder, free_port(), targets) as server:
        yield server


def submit(pipeline: Pipeline, order: Any) -> str:
    pipeline.publisher.publish(ORDERS_SUBMITTED, order)
    pipeline.publisher.flush()
    return str(order.order_id)


def ship_everything_planned(pipeline: Pipeline, order_id: str) -> None:
    planned = pipeline.watch.wait_for_status(order_id, OrderState.FULFILLMENT_PLANNED)
    for shipment in planned.shipments or []:
        dispatch(pipeline, order_id, shipment.shipment_id)
        shipped(pipeline, order_id, shipment.shipment_id)


@pytest.fixture(scope="module")
def scenario(pipeline: Pipeline, prometheus: LocalPrometheus) -> Pipeline:
    """A small day of trade: what makes every dashboard panel's series exist."""
    watch = pipeline.watch

    parcel = submit(pipeline, b2c_order(pipeline.order_id("obs-b2c"), [("SCREW-5X50", 2)]))
    unknown = submit(pipeline, b2c_order(pipeline.order_id("obs-unknown"), [("NOPE-404", 1)]))
    pipeline.publisher.send_raw(pipeline.names.of(ORDERS_SUBMITTED), b"cust-anna", b"not json")

    scarce = a_product_with_little_stock(pipeline, on_hand=4)
    out_of_stock = submit(pipeline, b2c_order(pipeline.order_id("obs-stockout"), [(scarce, 10)]))
    backorder = submit(pipeline, b2b_order(pipeline.order_id("obs-backorder"), [(scarce, 10)]))

    buyers = Business(pipeline, "obs", {"boss": [Role.MANAGER]})
    buyers.publish_policy(rules=[rule("any", [step("manager")])])
    decided = buyers.order("obs-decided")
    late = Business(pipeline, "obs-late", {"cfo": [Role.FINANCE], "dora": [Role.DIRECTOR]})
    late.publish_policy(
        expires_after="PT3S",
        rules=[rule("late", [step("finance", escalate_after="PT1S", escalation_role="director")])],
    )
    expiring = late.order("obs-expiring")

    watch.wait_for_status(decided, OrderState.AWAITING_APPROVAL)
    pipeline.decide(decided, buyers.id("boss"))
    for order_id in (parcel, decided, backorder):
        ship_everything_planned(pipeline, order_id)
    for order_id, code in (
        (unknown, ReasonCode.UNKNOWN_SKU),
        (out_of_stock, ReasonCode.OUT_OF_STOCK),
        (expiring, ReasonCode.APPROVAL_EXPIRED),
    ):
        rejected = watch.wait_for_status(order_id, OrderState.REJECTED)
        assert rejected.reason is not None and rejected.reason.code is code, rejected
    dispatch(pipeline, parcel, f"{parcel}-9")  # the WMS confirms a shipment never planned
    watch.wait_until(
        "the hostile message's dead letter", lambda: watch.dead_letters["orders.submitted.dlq"]
    )
    watch.wait_until(
        "the refused dispatch's dead letter",
        lambda: watch.dead_letters["fulfillment.dispatches.dlq"],
    )
    return pipeline


def test_every_panel_query_parses_and_returns_a_series(
    scenario: Pipeline, prometheus: LocalPrometheus
) -> None:
    queries = every_panel_query()
    assert len(queries) > 40

    def empty_or_failed() -> list[str]:
        problems = []
        for query in queries:
            answer = prometheus.query(as_grafana_would(query.expr))
            if answer.get("status") != "success":
                problems.append(f"{query}\n    does not parse: {answer.get('error')}")
            elif not answer["data"]["result"]:
                problems.append(f"{query}\n    returns no series")
        return problems

    def all_answered() -> bool:
        return not empty_or_failed()

    try:
        prometheus.wait_until("every panel's query to return a series", all_answered, WAIT_SECONDS)
    except AssertionError:
        problems = empty_or_failed()
        if problems:
            raise AssertionError(
                f"{len(problems)} of {len(queries)} panel queries fail against the live "
                "Prometheus:\n" + "\n".join(problems)
            ) from None


def test_the_dashboard_variables_find_the_namespace_and_every_service(
    scenario: Pipeline, prometheus: LocalPrometheus
) -> None:
    """`label_values(metric, label)` of the variables, as the series API answers it."""
    source = dashboards.INVENTORY_METRIC
    namespaces = prometheus.api("label/namespace/values", {"match[]": source})["data"]
    assert NAMESPACE in namespaces
    selector = f'{source}{{namespace="{NAMESPACE}"}}'
    services = prometheus.api("label/service/values", {"match[]": selector})["data"]
    assert set(services) == set(SERVICES)


def test_the_alert_rules_load_and_evaluate_healthy(
    scenario: Pipeline, prometheus: LocalPrometheus
) -> None:
    def rules() -> list[dict[str, Any]]:
        groups = prometheus.api("rules")["data"]["groups"]
        return [r for group in groups for r in group["rules"]]

    def evaluated() -> list[dict[str, Any]] | None:
        found = rules()
        return found if found and all(r.get("health") == "ok" for r in found) else None

    try:
        loaded = prometheus.wait_until("every rule to evaluate", evaluated, WAIT_SECONDS)
    except AssertionError:
        unhealthy = [(r["name"], r.get("health"), r.get("lastError")) for r in rules()]
        raise AssertionError(f"rules not healthy: {unhealthy}") from None
    assert {r["name"] for r in loaded if r["type"] == "alerting"} == set(alerts())


def test_the_dead_letter_fires_its_alert_and_no_service_is_down(
    scenario: Pipeline, prometheus: LocalPrometheus
) -> None:
    """The hostile message's dead letter is seen by `increase()` because the counter was
    shown at 0 before it (shared.metrics.topic_consumed)."""

    def firing() -> list[dict[str, str]]:
        return [
            alert["labels"]
            for alert in prometheus.api("alerts")["data"]["alerts"]
            if alert["state"] == "firing"
        ]

    def dead_letter_alert() -> bool:
        return any(
            labels["alertname"] == "TradelaneDeadLetters"
            and (labels["namespace"], labels["service"], labels["topic"])
            == (NAMESPACE, "catalog", "orders.submitted")
            for labels in firing()
        )

    try:
        prometheus.wait_until("TradelaneDeadLetters to fire", dead_letter_alert, WAIT_SECONDS)
    except AssertionError:
        raise AssertionError(f"TradelaneDeadLetters not firing; firing: {firing()}") from None
    assert [a for a in firing() if a["alertname"] == "TradelaneServiceDown"] == []
