"""What the harness reads while a phase runs: the outside processes' files and the services' /proc.

Kept apart from the orchestration so each number's definition is in one place:
latency percentiles, the steady drain rate of a burst, CPU seconds and memory
of a process.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
STEADY_FROM, STEADY_TO = 0.1, 0.9
"""A burst's drain rate is taken between its 10th and 90th percentile completion: the first
orders meet cold caches and a filling pipeline, the last ones an emptying one."""
MIN_STEADY_ORDERS = 20
MIN_STEADY_SECONDS = 1.0
"""Below this many completions, or this long a window, a steady rate is noise (see steady_rate)."""
MIN_WHOLE_SECONDS = 0.1
"""A whole-burst span is never taken as shorter than this: one trip takes longer anyway."""


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile (`share` in 0..1) of `values`; NaN when there are none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(math.ceil(share * len(ordered)), 1)
    return ordered[rank - 1]


def steady_rate(finish_ms: Sequence[int]) -> float | None:
    """Completions per second between the 10th and 90th percentile completion times.

    None when that window is too short to mean anything: a batch's statuses leave
    within a millisecond or two of each other, so a burst that fits in a few
    batches "finishes at once" and the window measures the relay, not the
    pipeline. The caller then uses `whole_rate`, which never overstates.
    """
    ordered = sorted(finish_ms)
    if len(ordered) < MIN_STEADY_ORDERS:
        return None
    first = int(len(ordered) * STEADY_FROM)
    last = int(len(ordered) * STEADY_TO) - 1
    span = (ordered[last] - ordered[first]) / 1000
    return (last - first) / span if span >= MIN_STEADY_SECONDS else None


def whole_rate(first_due_ms: int, finish_ms: Sequence[int]) -> float | None:
    """Completions per second from the first order's due time to the last completion.

    It includes one order's trip through the pipeline, so on a small burst it
    understates the capacity, which is the safe side for sizing the load levels.
    """
    if not finish_ms:
        return None
    span = (max(finish_ms) - first_due_ms) / 1000
    return len(finish_ms) / max(span, MIN_WHOLE_SECONDS)


@dataclass(frozen=True)
class Probe:
    """One open-loop offer of the capacity search: its rate, whether the system kept up,
    and the rate at which its orders reached a final state."""

    offered: float
    sustained: bool
    completed: float | None


PROBE_START = 0.9
PROBE_STEP = 0.85
REFINE_WITHIN = 0.08
MIN_PROBE_RATE = 0.5
"""The search starts at 90 % of the burst's drain rate and steps down 15 % at a time; once a
probe is sustained, it halves the gap to the lowest rate that was not, until that gap is
within 8 % of the sustained rate."""


def next_probe_rate(drain_rate: float, probes: Sequence[Probe]) -> float | None:
    """The rate to offer next in the search for the sustainable rate; None when found.

    Stepping down alone finds a sustained rate up to 15 % (and a probe's own
    shortfall) below the true one: the first full runs went from 50 offered,
    36 completed, straight to 31. Halving the gap between the highest sustained
    rate and the lowest one that was not narrows that to a few per cent.
    """
    if not probes:
        return drain_rate * PROBE_START
    held = [p.offered for p in probes if p.sustained]
    if not held:
        last = probes[-1]
        return max(min(last.offered, last.completed or last.offered) * PROBE_STEP, MIN_PROBE_RATE)
    lower = max(held)
    failed = [p.offered for p in probes if not p.sustained and p.offered > lower]
    if not failed or min(failed) - lower <= lower * REFINE_WITHIN:
        return None
    return (lower + min(failed)) / 2


def sustainable_rate(probes: Sequence[Probe]) -> float | None:
    """The highest sustained probe's rate; without one, the last probe's completion rate
    (a backlog's pace, which overstates: the caller flags it)."""
    held = [p.offered for p in probes if p.sustained]
    if held:
        return max(held)
    return probes[-1].completed if probes else None


def rounded(value: float | None, digits: int = 1) -> float | None:
    """`value` rounded for the results file; None (not measurable) stays None, never NaN."""
    return None if value is None or math.isnan(value) else round(value, digits)


def steady_arrival_rate(
    timeline: Sequence[tuple[int, float]], before: int, count: int
) -> float | None:
    """Messages per second at the end of a chain between the 10th and 90th percentile arrival
    of `count` messages that follow `before` others; `timeline` holds (arrived so far, time).

    When the chain is slower than the load generator a backlog builds up in front
    of it, and this is the chain's own pace whatever the generator's.
    """

    def reached(share: float) -> float:
        target = before + share * count
        return next(at for total, at in timeline if total >= target)

    span = reached(STEADY_TO) - reached(STEADY_FROM)
    return (STEADY_TO - STEADY_FROM) * count / span if span > 0 else None


def traffic_per_order(
    before: Mapping[str, int],
    after: Mapping[str, int],
    reads: Mapping[str, Sequence[str]],
    reports: str,
    orders: int,
) -> dict[str, object]:
    """Messages per order a phase put on the topics: `reports` (`orders.status`), and what each
    service consumed (every topic it `reads`). The counts compare Tradelane with the chains:
    a chain's message is one event consumed per hop, an order many more."""
    written = {topic: after[topic] - before.get(topic, 0) for topic in after}
    consumed = {
        service: round(sum(written[t] for t in topics) / max(orders, 1), 2)
        for service, topics in reads.items()
    }
    return {
        "status_reports": round(written[reports] / max(orders, 1), 2),
        "consumed": consumed,
        "consumed_all_services": round(sum(consumed.values()), 2),
    }


@dataclass
class JsonLines:
    """A file another process appends JSON lines to, read incrementally (only whole lines)."""

    path: Path
    _offset: int = 0

    def new_rows(self) -> list[list[object]]:
        if not self.path.exists():
            return []
        with self.path.open("rb") as source:
            source.seek(self._offset)
            chunk = source.read()
        whole = chunk[: chunk.rfind(b"\n") + 1]
        self._offset += len(whole)
        return [json.loads(line) for line in whole.splitlines() if line]


@dataclass
class FinalStatuses:
    """Final statuses seen by the status reader: order id -> (state, record timestamp ms)."""

    source: JsonLines
    seen: dict[str, tuple[str, int]] = field(default_factory=dict)

    def refresh(self) -> dict[str, tuple[str, int]]:
        for order_id, state, stamp in self.source.new_rows():
            self.seen.setdefault(str(order_id), (str(state), int(str(stamp))))
        return self.seen

    def finished(self, order_ids: Sequence[str]) -> int:
        self.refresh()
        return sum(1 for order_id in order_ids if order_id in self.seen)


@dataclass(frozen=True)
class ProcessSample:
    """One look at a process in /proc: CPU seconds so far, resident and peak resident MB."""

    cpu_seconds: float
    rss_mb: float
    peak_rss_mb: float


def sample_process(pid: int) -> ProcessSample:
    """Read /proc/<pid>/stat (user + system time) and /proc/<pid>/status (VmRSS, VmHWM)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rfind(")") + 2 :].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime (fields 14, 15)
    memory = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            memory[key] = int(value.split()[0]) / 1024
    return ProcessSample(cpu, memory.get("VmRSS", math.nan), memory.get("VmHWM", math.nan))
