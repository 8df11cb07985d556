"""`make bench`'s harness at a tiny scale over the session's broker, so it keeps working.

It runs every phase of the real benchmark (load generator, the three baselines,
warm-up, burst, three open-loop levels) on SQLite with a handful of orders,
and checks that the result is well formed: every section, every service,
every percentile. It asserts no timing: a few orders on a shared machine say
nothing about speed.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest

from shared.settings import Settings
from tools.bench import report
from tools.bench.chains import KINDS, REPORTING
from tools.bench.run import LEVELS, Scale, Setup, run_bench
from tools.fleet import SERVICES
from tools.local_kafka import project_root

TINY = Scale(
    warmup_orders=3,
    pilot_orders=6,
    burst_seconds=1,
    level_seconds=2,
    faust_messages=30,
    aiokafka_messages=60,
    loadgen_messages=100,
    drain_timeout=90,
    probe_seconds=2,
    idle_seconds=1,
    b2b_accounts=2,
)


def assert_measured(value: Any) -> None:
    assert isinstance(value, int | float) and not math.isnan(value) and value > 0, value


@pytest.mark.timeout(600)  # four Faust workers, eight services' worth of start-up, eight phases
def test_the_harness_measures_every_section_at_a_tiny_scale(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    setup = Setup(kafka_bootstrap, tmp_path / "work", TINY, partitions=2)
    setup.work_dir.mkdir()

    (result,) = run_bench(setup, ["sqlite"], tmp_path / "results", "smoke")

    written = json.loads((tmp_path / "results" / "smoke-sqlite-w1-p2.json").read_text())
    assert written["backend"] == "sqlite"
    assert_measured(written["capacity"]["orders_per_second"])
    capacity = written["capacity"]
    assert_measured(capacity["burst_drain_rate"])
    assert isinstance(capacity["sustained_rate_found"], bool)
    assert 1 <= len(capacity["probes"]) <= 4
    for probe in capacity["probes"]:
        assert probe["label"].startswith("probe") and probe["offered_rate"] > 0
        assert sum(probe["outcomes"].values()) == probe["orders"]
    burst = capacity["burst"]
    assert burst["label"] == "burst" and sum(burst["outcomes"].values()) == burst["orders"]
    assert set(burst["services"]) == set(SERVICES)
    for usage in burst["services"].values():
        assert set(usage) == {
            "cpu_seconds",
            "cpu_ms_per_order",
            "cpu_ms_per_order_net",
            "rss_mb",
            "peak_rss_mb",
        }
        assert_measured(usage["rss_mb"])
    assert set(written["idle_cpu_seconds_per_second"]) == set(SERVICES)
    assert [level["share_of_capacity"] for level in written["levels"]] == list(LEVELS)
    for level in written["levels"]:
        assert level["drained"], level
        assert sum(level["outcomes"].values()) == level["orders"]
        latency = level["latency_seconds"]
        assert latency["samples"] > 0
        for quantile in ("p50", "p95", "p99"):
            assert_measured(latency[quantile])
        assert set(level["consumer_lag_at_end_of_offer"]) == set(SERVICES)
    traffic = burst["messages_per_order"]
    assert set(traffic["consumed"]) == set(SERVICES)
    # Every order is reported at least on receipt and at its end, and reaches catalog; the
    # services read only their share of the reports, not every report each.
    assert traffic["status_reports"] >= 2
    assert traffic["consumed"]["catalog"] >= 1
    assert traffic["consumed_all_services"] < 4 * traffic["status_reports"]
    baselines = written["baselines"]
    for kind in ("load_generator", *KINDS):
        assert_measured(baselines[kind]["messages_per_second"])
    for kind in KINDS:
        assert isinstance(baselines[kind]["limited_by_load_generator"], bool)
    assert baselines[REPORTING]["events_consumed_per_message"] == 20
    assert set(written["ratios"]) == set(KINDS)
    assert written["configuration"]["partitions"] == 2
    assert written["configuration"]["batch_max_ms"] == Settings().batch_max_ms

    doc = tmp_path / "performance.md"
    shutil.copy(project_root() / "docs" / "performance.md", doc)
    report.update_docs(doc, [result], "smoke run")
    updated = doc.read_text()
    assert "smoke run" in updated and "| sqlite | 90 % |" in updated
    assert "| sqlite | probe1 |" in updated and "**capacity**" in updated
    assert "| faust, every hop reporting |" in updated and "| Tradelane sqlite |" in updated
    assert "## Where the time goes" in updated
    picture = report.plot([result], tmp_path / report.PLOT_NAME)
    assert picture.read_bytes().startswith(b"\x89PNG")
