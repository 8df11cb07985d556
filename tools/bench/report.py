"""What a run leaves behind: the results JSON, the printed table, docs/performance.md's table
and the plot beside it.

The docs' table sits between two markers, so a run rewrites only its own
numbers and leaves the prose (definitions, the profile, the scaling model) alone.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tools.bench.chains import KINDS, REPORTING

BASELINE_NAMES = {
    "faust": "faust",
    REPORTING: "faust, every hop reporting",
    "aiokafka": "aiokafka",
}
TABLE_START = "<!-- bench:results:start -->"
TABLE_END = "<!-- bench:results:end -->"
PLOT_NAME = "throughput-latency.png"


def write_results(result: Mapping[str, Any], folder: Path, day: str) -> Path:
    """`<folder>/<day>-<backend>.json`: one file per backend, baselines included in each.

    A scale-out run (not 1 worker per service on 4 partitions) is named after its
    shape too, `<day>-<backend>-w2-p8.json`, so it sits beside the default run.
    """
    folder.mkdir(parents=True, exist_ok=True)
    config = result["configuration"]
    workers, partitions = config["workers_per_service"], config["partitions"]
    shape = "" if (workers, partitions) == (1, 4) else f"-w{workers}-p{partitions}"
    path = folder / f"{day}-{result['backend']}{shape}.json"
    path.write_text(json.dumps(result, indent=2, sort_keys=False) + "\n")
    return path


def _number(value: object, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _ratio(part: float, whole: float) -> str:
    return f"{part / whole:.3f}" if whole and not math.isnan(part) else "-"


def _level_row(backend: str, label: str, phase: Mapping[str, Any]) -> str:
    latency = phase["latency_seconds"]
    return (
        f"| {backend} | {label} | {_number(phase['offered_rate'])} | "
        f"{_number(phase['completed_rate_steady'] or phase['completed_rate_whole'])} | "
        f"{_number(latency['p50'], 3)} | {_number(latency['p95'], 3)} | "
        f"{_number(latency['p99'], 3)} | {'yes' if phase['sustained'] else 'no'} |"
    )


def traffic_rows(results: Sequence[Mapping[str, Any]], baselines: Mapping[str, Any]) -> list[str]:
    """Messages per order in the burst beside the reporting chain's per message: the
    traffic each side of the ratio carries."""
    rows = [
        "| messages per order (burst) | status reports | consumed by the four |",
        "|---|---:|---:|",
    ]
    for result in results:
        traffic = result["capacity"]["burst"].get("messages_per_order")
        if traffic:
            rows.append(
                f"| Tradelane {result['backend']} | {_number(traffic['status_reports'], 2)} | "
                f"{_number(traffic['consumed_all_services'], 2)} |"
            )
    chain = baselines.get(REPORTING)
    if chain:
        reports = chain["reports_per_message"]
        rows.append(
            f"| {BASELINE_NAMES[REPORTING]}, per message | {reports} | "
            f"{chain['events_consumed_per_message']} |"
        )
    return rows


def table(results: Sequence[Mapping[str, Any]]) -> str:
    """A Markdown table: capacity and baselines, then one row per load level and backend."""
    rows = [
        "| backend | load | offered /s | completed /s | p50 s | p95 s | p99 s | sustained |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for result in results:
        capacity = result["capacity"]
        burst = capacity["burst"]
        rows.append(
            f"| {result['backend']} | burst of {burst['orders']} (drain rate) | at once | "
            f"{_number(capacity['burst_drain_rate'])} | - | - | - | - |"
        )
        for probe in capacity["probes"]:
            rows.append(_level_row(result["backend"], probe["label"], probe))
        found = "" if capacity["sustained_rate_found"] else " (none sustained: last completed)"
        rows.append(
            f"| {result['backend']} | **capacity**{found} | - | "
            f"**{_number(capacity['orders_per_second'])}** | - | - | - | - |"
        )
        for level in result["levels"]:
            share = f"{int(level['share_of_capacity'] * 100)} %"
            rows.append(_level_row(result["backend"], share, level))
    baselines = results[0]["baselines"]
    rows += [
        "",
        "| baseline (4 hops, no logic) | messages/s | "
        + " | ".join(f"Tradelane {r['backend']} / baseline" for r in results)
        + " |",
        "|---|---:|" + "---:|" * len(results),
    ]
    for kind in KINDS:
        if kind not in baselines:
            continue
        rate = baselines[kind]["messages_per_second"]
        ratios = " | ".join(_ratio(r["capacity"]["orders_per_second"], rate) for r in results)
        rows.append(f"| {BASELINE_NAMES[kind]} | {_number(rate)} | {ratios} |")
    generator = baselines["load_generator"]["messages_per_second"]
    rows.append(f"| load generator alone (1 process) | {_number(generator)} | |")
    rows += ["", *traffic_rows(results, baselines)]
    rows += [
        "",
        "| backend | service | CPU ms/order (burst) | without idle | idle CPU % | RSS MB "
        "| peak RSS MB |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        for service, usage in result["capacity"]["burst"]["services"].items():
            idle = 100 * result["idle_cpu_seconds_per_second"][service]
            rows.append(
                f"| {result['backend']} | {service} | {_number(usage['cpu_ms_per_order'], 2)} | "
                f"{_number(usage['cpu_ms_per_order_net'], 2)} | {_number(idle)} | "
                f"{_number(usage['rss_mb'])} | {_number(usage['peak_rss_mb'])} |"
            )
    return "\n".join(rows)


def update_docs(doc: Path, results: Sequence[Mapping[str, Any]], heading: str) -> None:
    """Replace the text between the markers in `doc` with `heading` and the table."""
    text = doc.read_text()
    before, found, rest = text.partition(TABLE_START)
    _, found_end, after = rest.partition(TABLE_END)
    if not (found and found_end):
        raise ValueError(f"{doc} lacks the {TABLE_START} ... {TABLE_END} markers")
    body = f"{heading}\n\n{table(results)}\n\n![throughput and latency](performance/{PLOT_NAME})"
    doc.write_text(f"{before}{TABLE_START}\n{body}\n{TABLE_END}{after}")


def plot(results: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Left: orders/s offered and completed per load level, per backend, with the baselines'
    messages/s as lines. Right: latency p50/p95/p99 per load level and backend (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (rates, latency) = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.8 / max(len(results), 1)
    labels = ["capacity"] + [f"{int(share * 100)} %" for share in (0.25, 0.5, 0.9)]
    for index, result in enumerate(results):
        completed = [result["capacity"]["orders_per_second"]] + [
            level["completed_rate_steady"] or 0 for level in result["levels"]
        ]
        positions = [x + index * width for x in range(len(labels))]
        colour = f"C{index}"
        rates.bar(positions, completed, width, color=colour, label=f"Tradelane {result['backend']}")
        for marker, style, quantile in (("o", "-", "p50"), ("s", "--", "p95"), ("^", ":", "p99")):
            latency.plot(
                [f"{int(level['share_of_capacity'] * 100)} %" for level in result["levels"]],
                [level["latency_seconds"][quantile] for level in result["levels"]],
                marker=marker,
                linestyle=style,
                color=colour,
                label=f"{result['backend']} {quantile}",
            )
    baselines = results[0]["baselines"] if results else {}
    for kind, style in (("faust", "--"), (REPORTING, "-."), ("aiokafka", ":")):
        if kind in baselines:
            rates.axhline(
                baselines[kind]["messages_per_second"],
                linestyle=style,
                color="grey",
                label=f"{BASELINE_NAMES[kind]} 4-hop chain (msg/s)",
            )
    rates.set_xticks([x + width * (len(results) - 1) / 2 for x in range(len(labels))], labels)
    rates.set_yscale("log")
    rates.set_ylabel("per second (log)")
    rates.set_title("orders completed per second")
    rates.legend(fontsize="small")
    latency.set_yscale("log")
    latency.set_ylabel("seconds, submit → fulfillment_planned (log)")
    latency.set_title("latency per load level (share of capacity)")
    latency.legend(fontsize="small", ncol=2)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
