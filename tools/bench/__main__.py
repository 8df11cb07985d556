"""``python -m tools.bench`` (`make bench`): the benchmark from the command line.

    python -m tools.bench [--backend postgres|sqlite|both] [--quick]
                          [--workers N] [--partitions P] [--bootstrap HOST:PORT] [--no-docs]

Starts a throwaway broker (unless `--bootstrap` names one), measures the load
generator and the three baselines once, then Tradelane on each backend; writes
`bench/results/<date>-<backend>.json`, prints the table and, unless
`--no-docs`, rewrites docs/performance.md's results and plot.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tools.bench import report
from tools.bench.run import FULL, QUICK, Setup, run_bench
from tools.local_kafka import LocalKafka, project_root

BACKENDS = {"postgres": ("postgres",), "sqlite": ("sqlite",), "both": ("postgres", "sqlite")}
RESULTS_DIR = project_root() / "bench" / "results"
DOC = project_root() / "docs" / "performance.md"


@contextlib.contextmanager
def broker(bootstrap: str | None, work_dir: Path) -> Iterator[str]:
    """The given broker, or a throwaway single-node one for this run."""
    if bootstrap:
        yield bootstrap
        return
    with LocalKafka(work_dir / "kafka") as kafka:
        yield kafka.bootstrap


def describe(results: Sequence[Mapping[str, Any]], quick: bool) -> str:
    first = results[0]
    config = first["configuration"]
    return (
        f"Run of {first['date']} ({'--quick' if quick else 'full'}; "
        f"{config['workers_per_service']} worker(s) per service, "
        f"{config['partitions']} partitions per topic; batches of up to "
        f"{config.get('batch_max_events', '?')} events, waiting up to "
        f"{config.get('batch_max_ms', '?')} ms while events flow; one shared 2-core machine)."
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.bench", description="Tradelane's throughput and latency benchmark."
    )
    parser.add_argument("--backend", choices=sorted(BACKENDS), default="both")
    parser.add_argument("--quick", action="store_true", help="a ~2 minute run (small phases)")
    parser.add_argument("--workers", type=int, default=1, help="workers per service")
    parser.add_argument("--partitions", type=int, default=4, help="partitions per topic")
    parser.add_argument("--bootstrap", help="use this broker instead of starting one")
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="results folder")
    parser.add_argument(
        "--no-docs", action="store_true", help="leave docs/performance.md and its plot alone"
    )
    args = parser.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the broker, services and databases are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if not 1 <= args.workers <= args.partitions:
        parser.error("--workers must be at least 1 and at most --partitions (idle workers)")
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    work_dir = Path(tempfile.mkdtemp(prefix="tradelane-bench-"))
    with broker(args.bootstrap, work_dir) as bootstrap:
        setup = Setup(
            bootstrap,
            work_dir,
            QUICK if args.quick else FULL,
            workers=args.workers,
            partitions=args.partitions,
        )
        results = run_bench(setup, BACKENDS[args.backend], args.results, day)
    shutil.rmtree(work_dir, ignore_errors=True)  # kept when a run fails: its logs are there
    print(describe(results, args.quick))
    print(report.table(results))
    if not args.no_docs:
        report.plot(results, DOC.parent / "performance" / report.PLOT_NAME)
        report.update_docs(DOC, results, describe(results, args.quick))
        print(f"updated {DOC.relative_to(project_root())} and its plot")
    return 0


if __name__ == "__main__":
    sys.exit(main())
