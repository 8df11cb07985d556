"""Tradelane's Grafana dashboards as code: ``python -m tools.dashboards [--check]``.

Built with Grafana's own `grafana-foundation-sdk` (typed builders for the
dashboard schema, kept by Grafana Labs) rather than hand-written JSON, and
written to `deploy/k8s/components/grafana/dashboards/`, which the `grafana`
kustomize Component ships as ConfigMaps for the Grafana sidecar. A test fails
when the committed JSON drifts from this file; `make dashboards` rewrites it.

Every query selects `namespace="$namespace"` and `service=~"$service"`: the
target labels the ServiceMonitor gives every scraped series (the Kubernetes
Service's name is the service's name), so one Grafana shows each deployment
and each service on its own. `tests/e2e/test_observability.py` evaluates every
query below against a real Prometheus scraping the four services.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import dashboard, prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    GridPos,
    VariableRefresh,
    VariableSort,
)

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD_DIR = ROOT / "deploy" / "k8s" / "components" / "grafana" / "dashboards"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
SELECTOR = 'namespace="$namespace", service=~"$service"'
"""Every panel's series are narrowed to the chosen namespace and services."""
INVENTORY_METRIC = "tradelane_events_consumed_total"
"""Every service shows it from its start (at 0 per topic it reads): the variables' source."""


def selected(metric: str, *matchers: str) -> str:
    """`metric` in the chosen namespace and services, with more `matchers` if given."""
    return f"{metric}{{{', '.join((SELECTOR, *matchers))}}}"


def rate(metric: str, by: str, *matchers: str) -> str:
    """Per-second rate summed over workers, per `by` (all together when `by` is empty)."""
    grouping = f"sum by ({by}) " if by else "sum"
    return f"{grouping}(rate({selected(metric, *matchers)}[$__rate_interval]))"


def quantile(q: float, histogram: str, by: str, *matchers: str) -> str:
    """The `q` quantile of a histogram over the panel's rate interval, per `by`."""
    buckets = f"rate({selected(f'{histogram}_bucket', *matchers)}[$__rate_interval])"
    return f"histogram_quantile({q}, sum by (le, {by}) ({buckets}))"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class Chart:
    """One panel: a time series (or a single stat) of one or more queries."""

    title: str
    description: str
    unit: str
    queries: tuple[Query, ...]
    stat: bool = False
    width: int = 12


@dataclass(frozen=True)
class Section:
    title: str
    charts: tuple[Chart, ...]


@dataclass(frozen=True)
class Board:
    uid: str
    title: str
    description: str
    sections: tuple[Section, ...]


def chart(
    title: str, description: str, unit: str, *queries: tuple[str, str], width: int = 12
) -> Chart:
    return Chart(title, description, unit, tuple(Query(e, lg) for e, lg in queries), width=width)


def single(title: str, description: str, unit: str, expr: str, width: int = 6) -> Chart:
    return Chart(title, description, unit, (Query(expr, title),), stat=True, width=width)


def percentiles(histogram: str, by: str, *matchers: str) -> tuple[tuple[str, str], ...]:
    legend = " ".join(f"{{{{{label.strip()}}}}}" for label in by.split(","))
    return tuple(
        (quantile(q, histogram, by, *matchers), f"p{int(q * 100)} {legend}")
        for q in (0.5, 0.95, 0.99)
    )


# --- the four dashboards ---------------------------------------------------------------------

OVERVIEW = Board(
    uid="tradelane-overview",
    title="Tradelane / Overview",
    description="Orders through the four services: throughput, latency, rejections, "
    "dead letters and lag.",
    sections=(
        Section(
            "Orders",
            (
                single(
                    "Orders submitted/s",
                    "Orders catalog received from the shops.",
                    "reqps",
                    rate("tradelane_orders_total", "", 'outcome="received"'),
                ),
                single(
                    "Orders shipped/s",
                    "Shipments reported `shipped` (one per shipment).",
                    "reqps",
                    rate("tradelane_orders_total", "", 'outcome="shipped"'),
                ),
                single(
                    "Services up",
                    "Workers Prometheus scrapes successfully.",
                    "none",
                    f"sum(up{{{SELECTOR}}})",
                ),
                single(
                    "Approval requests pending",
                    "Open B2B approval requests.",
                    "none",
                    f"max({selected('tradelane_approval_requests_pending')})",
                ),
                chart(
                    "Orders/s by channel and outcome",
                    "Every status published on orders.status, by the order's channel "
                    "(pricing counts `priced`).",
                    "reqps",
                    (rate("tradelane_orders_total", "channel, outcome"), "{{channel}} {{outcome}}"),
                    width=24,
                ),
            ),
        ),
        Section(
            "Latency and rejections",
            (
                chart(
                    "Submission to fulfillment planned",
                    "From the shop's submission to fulfillment's plan: the whole automatic "
                    "pipeline, approval chains included.",
                    "s",
                    *percentiles(
                        "tradelane_order_stage_latency_seconds",
                        "stage",
                        'stage="fulfillment_planned"',
                    ),
                ),
                chart(
                    "Submission to each stage (p95)",
                    "95th percentile from submission to each stage an order reaches.",
                    "s",
                    (
                        quantile(0.95, "tradelane_order_stage_latency_seconds", "stage"),
                        "{{stage}}",
                    ),
                ),
                chart(
                    "Rejections/s by reason",
                    "Orders rejected, by the contract's reason code.",
                    "reqps",
                    (
                        rate("tradelane_order_rejections_total", "reason, service"),
                        "{{reason}} ({{service}})",
                    ),
                ),
                chart(
                    "Dead letters/s",
                    "Messages sent to a `.dlq` topic, by the topic they came from.",
                    "reqps",
                    (
                        rate("tradelane_dead_letters_total", "service, topic"),
                        "{{service}} {{topic}}",
                    ),
                ),
            ),
        ),
        Section(
            "Lag",
            (
                chart(
                    "Consumer lag (messages)",
                    "Messages not processed yet, summed over a service's workers.",
                    "none",
                    (
                        f"sum by (service, topic) ({selected('tradelane_consumer_lag_messages')})",
                        "{{service}} {{topic}}",
                    ),
                ),
                chart(
                    "Consumer lag (seconds)",
                    "Age of the oldest unprocessed message; 0 when nothing is behind.",
                    "s",
                    (
                        f"max by (service, topic) ({selected('tradelane_consumer_lag_seconds')})",
                        "{{service}} {{topic}}",
                    ),
                ),
            ),
        ),
        Section(
            "Order value and promotions",
            (
                chart(
                    "Order value by channel",
                    "Totals of priced orders after promotions, in the order's currency "
                    "(major unit).",
                    "none",
                    *percentiles("tradelane_order_value_amount", "channel, currency"),
                ),
                chart(
                    "Discounts granted/s by promotion kind",
                    "What promotions took off priced orders, by kind and scope, in the "
                    "order's currency; never per promotion or code.",
                    "none",
                    (
                        rate("tradelane_promotion_discount_amount_total", "kind, scope, currency"),
                        "{{kind}} {{scope}} {{currency}}",
                    ),
                ),
                chart(
                    "Promo-code rejections/s by reason",
                    "Orders rejected invalid_promo_code: unknown, expired, exhausted, "
                    "below the minimum, …",
                    "reqps",
                    (rate("tradelane_promo_code_rejections_total", "reason"), "{{reason}}"),
                    width=24,
                ),
            ),
        ),
    ),
)

APPROVALS = Board(
    uid="tradelane-approvals",
    title="Tradelane / B2B approvals",
    description="Approval requests of business accounts: pending, time to decision, expiries, "
    "escalations and decisions by role.",
    sections=(
        Section(
            "Requests",
            (
                chart(
                    "Requests pending",
                    "Open approval requests (every worker reads the same database: the max).",
                    "none",
                    (f"max({selected('tradelane_approval_requests_pending')})", "pending"),
                ),
                chart(
                    "Time to decision",
                    "From a request opening to its end, by how it ended.",
                    "s",
                    *percentiles("tradelane_approval_time_to_decision_seconds", "outcome"),
                ),
                chart(
                    "Expiries, escalations and reminders /s",
                    "Requests that ran out of time, steps escalated, reminders sent.",
                    "reqps",
                    (rate("tradelane_approval_expiries_total", ""), "expiries"),
                    (rate("tradelane_approval_escalations_total", ""), "escalations"),
                    (rate("tradelane_approval_reminders_total", ""), "reminders"),
                ),
                chart(
                    "Decisions/s by role and outcome",
                    "Decisions applied, by the role they counted in (`none`: refused or unknown).",
                    "reqps",
                    (
                        rate("tradelane_approval_decisions_total", "role, outcome"),
                        "{{role}} {{outcome}}",
                    ),
                ),
                chart(
                    "Approval verdicts/s",
                    "Orders passed at once or after approval, sent to approvers, and rejected by "
                    "an approver or by expiry, by channel.",
                    "reqps",
                    (
                        rate(
                            "tradelane_orders_total",
                            "channel, outcome",
                            'outcome=~"awaiting_approval|approved"',
                        ),
                        "{{channel}} {{outcome}}",
                    ),
                    (
                        rate(
                            "tradelane_order_rejections_total",
                            "channel, reason",
                            'reason=~"approval_rejected|approval_expired"',
                        ),
                        "{{channel}} {{reason}}",
                    ),
                    width=24,
                ),
            ),
        ),
        Section(
            "Credit",
            (
                chart(
                    "Credit checks/s by outcome",
                    "B2B orders checked against their account's credit limit at pricing: "
                    "within the limit, past the warning threshold, sent to finance, rejected.",
                    "reqps",
                    (rate("tradelane_credit_checks_total", "outcome"), "{{outcome}}"),
                    (rate("tradelane_credit_payments_total", "outcome"), "payment {{outcome}}"),
                ),
                chart(
                    "Credit utilisation at pricing",
                    "Open exposure after the order over the account's limit (1 = at the "
                    "limit), accounts with a limit; never per account.",
                    "percentunit",
                    *percentiles("tradelane_credit_utilisation_ratio", "service"),
                ),
            ),
        ),
        Section(
            "Quotes",
            (
                chart(
                    "Quote uses/s by outcome",
                    "Orders naming a negotiated quote and its lifecycle: a single-use quote "
                    "used or released, a multi-use one priced, quotes expired, and the reasons "
                    "orders were refused their quote; never per quote or account.",
                    "reqps",
                    (rate("tradelane_quote_uses_total", "outcome"), "{{outcome}}"),
                    width=24,
                ),
            ),
        ),
    ),
)

INVENTORY = Board(
    uid="tradelane-inventory-fulfillment",
    title="Tradelane / Inventory and fulfillment",
    description="Stock-outs, backorders, stock movements and shipments by mode and carrier.",
    sections=(
        Section(
            "Stock",
            (
                chart(
                    "Stock-outs/s by category",
                    "Order lines the warehouses could not cover: rejected out_of_stock or "
                    "backordered.",
                    "reqps",
                    (
                        rate("tradelane_stockouts_total", "category, outcome"),
                        "{{category}} {{outcome}}",
                    ),
                ),
                chart(
                    "Backordered units/s by category",
                    "Units of B2B lines accepted without stock.",
                    "none",
                    (
                        rate("tradelane_stock_backordered_units_total", "category"),
                        "{{category}}",
                    ),
                ),
                chart(
                    "Stock movements (units/s)",
                    "Units reserved for orders, released again, and committed when shipped.",
                    "none",
                    (
                        rate("tradelane_stock_reserved_units_total", "category"),
                        "reserved {{category}}",
                    ),
                    (
                        rate("tradelane_stock_released_units_total", "category"),
                        "released {{category}}",
                    ),
                    (
                        rate("tradelane_stock_committed_units_total", "category"),
                        "committed {{category}}",
                    ),
                ),
                chart(
                    "Free units per warehouse",
                    "On hand minus reserved (every catalog worker reads the same database).",
                    "none",
                    (
                        f"max by (warehouse) ({selected('tradelane_stock_available_units')})",
                        "{{warehouse}}",
                    ),
                ),
            ),
        ),
        Section(
            "Shipments",
            (
                chart(
                    "Shipments planned/s by mode and carrier",
                    "Shipments fulfillment planned (parcel by delivery speed, freight LTL/FTL).",
                    "reqps",
                    (
                        rate("tradelane_shipments_planned_total", "mode, carrier"),
                        "{{mode}} {{carrier}}",
                    ),
                ),
                chart(
                    "Shipments dispatched/s by mode and carrier",
                    "Shipments the warehouses confirmed left the dock.",
                    "reqps",
                    (
                        rate("tradelane_shipments_dispatched_total", "mode, carrier"),
                        "{{mode}} {{carrier}}",
                    ),
                ),
                chart(
                    "Submission to shipped",
                    "From the shop's submission to each shipment leaving.",
                    "s",
                    *percentiles(
                        "tradelane_order_stage_latency_seconds", "stage", 'stage="shipped"'
                    ),
                    width=24,
                ),
            ),
        ),
    ),
)

RED_USE = Board(
    uid="tradelane-service",
    title="Tradelane / Service RED and USE",
    description="Per service: rate, errors and duration of event handling; utilisation and "
    "saturation of its workers.",
    sections=(
        Section(
            "Rate",
            (
                chart(
                    "Events consumed/s",
                    "Events taken from each topic, duplicates and dead letters included.",
                    "reqps",
                    (
                        rate("tradelane_events_consumed_total", "service, topic"),
                        "{{service}} {{topic}}",
                    ),
                ),
                chart(
                    "Events produced/s",
                    "Events the outbox relay published.",
                    "reqps",
                    (
                        rate("tradelane_events_produced_total", "service, topic"),
                        "{{service}} {{topic}}",
                    ),
                ),
            ),
        ),
        Section(
            "Errors",
            (
                chart(
                    "Processing failures/s",
                    "Valid events whose handling failed: dead-lettered, order rejected "
                    "`processing_failed`.",
                    "reqps",
                    (
                        rate("tradelane_processing_failures_total", "service, topic"),
                        "{{service}} {{topic}}",
                    ),
                ),
                chart(
                    "Dead letters and refusals /s",
                    "Messages dead-lettered (invalid or refused), and refusals by reason.",
                    "reqps",
                    (rate("tradelane_dead_letters_total", "service"), "dead letters {{service}}"),
                    (
                        rate("tradelane_refused_events_total", "service, reason"),
                        "refused {{service}} {{reason}}",
                    ),
                ),
                chart(
                    "Duplicates skipped/s",
                    "Redeliveries the inbox dropped (rebalances, retries).",
                    "reqps",
                    (rate("tradelane_duplicate_events_total", "service"), "{{service}}"),
                ),
                chart(
                    "Outbox rows parked",
                    "Rows the broker refused for good; `tradelane outbox list` shows them.",
                    "none",
                    (
                        f"max by (service) ({selected('tradelane_outbox_parked_rows')})",
                        "{{service}}",
                    ),
                ),
            ),
        ),
        Section(
            "Duration",
            (
                chart(
                    "Event processing time",
                    "From taking an event to committing its transaction.",
                    "s",
                    *percentiles("tradelane_event_processing_seconds", "service"),
                ),
                chart(
                    "Outbox relay batch time",
                    "Time to publish one batch of outbox rows to Kafka.",
                    "s",
                    *percentiles("tradelane_outbox_relay_seconds", "service"),
                ),
            ),
        ),
        Section(
            "Utilisation and saturation",
            (
                chart(
                    "CPU (cores)",
                    "CPU seconds per second, summed over a service's workers.",
                    "none",
                    (rate("process_cpu_seconds_total", "service"), "{{service}}"),
                    width=8,
                ),
                chart(
                    "Resident memory",
                    "Per worker.",
                    "bytes",
                    (
                        f"max by (service, pod) ({selected('process_resident_memory_bytes')})",
                        "{{pod}}",
                    ),
                    width=8,
                ),
                chart(
                    "Open file descriptors (share of the limit)",
                    "Sockets and files per worker, against its limit.",
                    "percentunit",
                    (
                        "max by (service, pod) ("
                        + f"{selected('process_open_fds')} / {selected('process_max_fds')})",
                        "{{pod}}",
                    ),
                    width=8,
                ),
                chart(
                    "Consumer lag (messages)",
                    "Messages behind, per service and topic.",
                    "none",
                    (
                        f"sum by (service, topic) ({selected('tradelane_consumer_lag_messages')})",
                        "{{service}} {{topic}}",
                    ),
                ),
                chart(
                    "Consumer lag (seconds)",
                    "Age of the oldest unprocessed message.",
                    "s",
                    (
                        f"max by (service, topic) ({selected('tradelane_consumer_lag_seconds')})",
                        "{{service}} {{topic}}",
                    ),
                ),
            ),
        ),
    ),
)

BOARDS = (OVERVIEW, APPROVALS, INVENTORY, RED_USE)


# --- building the JSON -----------------------------------------------------------------------


def variables() -> list[Any]:
    """datasource, namespace and service (multi, with All): what every query selects by."""
    return [
        dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus"),
        dashboard.QueryVariable("namespace")
        .label("Namespace")
        .datasource(DATASOURCE)
        .query(f"label_values({INVENTORY_METRIC}, namespace)")
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC),
        dashboard.QueryVariable("service")
        .label("Service")
        .datasource(DATASOURCE)
        .query(f'label_values({INVENTORY_METRIC}{{namespace="$namespace"}}, service)')
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*"),
    ]


def panel(spec: Chart, panel_id: int, x: int, y: int) -> Any:
    make: Callable[[], Any] = stat.Panel if spec.stat else timeseries.Panel
    built = (
        make()
        .id(panel_id)
        .title(spec.title)
        .description(spec.description)
        .unit(spec.unit)
        .datasource(DATASOURCE)
        .grid_pos(GridPos(h=4 if spec.stat else 8, w=spec.width, x=x, y=y))
    )
    for number, query in enumerate(spec.queries):
        built = built.with_target(
            prometheus.Dataquery()
            .datasource(DATASOURCE)
            .expr(query.expr)
            .legend_format(query.legend)
            .ref_id(chr(ord("A") + number))
        )
    return built


def build(board: Board) -> dict[str, Any]:
    """One dashboard as Grafana's JSON model."""
    built = (
        dashboard.Dashboard(board.title)
        .uid(board.uid)
        .description(board.description)
        .tags(["tradelane"])
        .editable()
        .refresh("30s")
        .time("now-3h", "now")
        .timezone("browser")
    )
    for variable in variables():
        built = built.with_variable(variable)
    panel_id, y = 1, 0
    for section in board.sections:
        built = built.with_row(
            dashboard.Row(section.title).id(panel_id).grid_pos(GridPos(h=1, w=24, x=0, y=y))
        )
        panel_id, y, x, row_height = panel_id + 1, y + 1, 0, 0
        for spec in section.charts:
            if x + spec.width > 24:
                x, y, row_height = 0, y + row_height, 0
            built = built.with_panel(panel(spec, panel_id, x, y))
            height = 4 if spec.stat else 8
            panel_id, x, row_height = panel_id + 1, x + spec.width, max(row_height, height)
        y += row_height
    encoded: dict[str, Any] = json.loads(json.dumps(built.build(), cls=JSONEncoder))
    return encoded


def rendered(board: Board) -> str:
    return json.dumps(build(board), indent=2, sort_keys=True) + "\n"


def file_of(board: Board) -> Path:
    return DASHBOARD_DIR / f"{board.uid.removeprefix('tradelane-')}.json"


def drifted_files() -> list[Path]:
    """Committed dashboards that differ from what this module builds, or are missing or extra."""
    wanted = {file_of(board): rendered(board) for board in BOARDS}
    drifted = [
        path for path, text in wanted.items() if not path.exists() or path.read_text() != text
    ]
    extra = [path for path in DASHBOARD_DIR.glob("*.json") if path not in wanted]
    return sorted(drifted + extra)


def write_dashboards() -> list[Path]:
    DASHBOARD_DIR.mkdir(parents=True, exist_ok=True)
    for path in DASHBOARD_DIR.glob("*.json"):
        path.unlink()
    for board in BOARDS:
        file_of(board).write_text(rendered(board))
    return [file_of(board) for board in BOARDS]


def panel_queries(model: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(panel title, PromQL expression) of every query of every panel, rows' panels included."""
    for item in model.get("panels", []):
        yield from panel_queries(item)
        for target in item.get("targets") or []:
            if target.get("expr"):
                yield item["title"], target["expr"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.dashboards", description="write Tradelane's Grafana dashboards"
    )
    parser.add_argument("--check", action="store_true", help="fail if the committed files drifted")
    args = parser.parse_args(argv)
    if args.check:
        drifted = drifted_files()
        for path in drifted:
            print(f"drifted: {path.relative_to(ROOT)}", file=sys.stderr)
        return 1 if drifted else 0
    for path in write_dashboards():
        print(path.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
