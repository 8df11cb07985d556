"""The benchmark's phases, on one broker: load generator, baselines, then Tradelane per backend.

For each backend the four services run as real processes (`tools.fleet.Fleet`,
as `make run` and the end-to-end tests start them) on fresh topics, with the
benchmark's reference data (`tools.bench.data`). Then:

1. warm-up: a few orders, so every consumer has its partitions and every cache is filled;
2. a burst of orders submitted at once, and the steady rate at which they reach a
   final state (`measure.steady_rate`): an upper estimate, since a backlog drains in
   large batches;
3. capacity: open-loop probes from 90 % of that rate down, until one is sustained;
4. load levels at 25 %, 50 % and 90 % of the capacity, open loop, each for a fixed
   time: latency submit → `fulfillment_planned`, and whether the backlog stayed
   bounded (orders in flight and consumer lag when the offer ends).

CPU seconds and memory of every service process are read from /proc around
each phase.
"""

from __future__ import annotations

import contextlib
import json
import math
import multiprocessing
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from multiprocessing.context import SpawnProcess
from multiprocessing.synchronize import Event as ProcessEvent
from pathlib import Path
from typing import Any

from kafka.admin import KafkaAdminClient, NewTopic

from cli.publisher import EventPublisher
from shared.kafka_connection import KafkaConnection
from shared.settings import Settings
from shared.topics import (
    APPROVAL_DECISIONS,
    ORDERS_STATUS,
    ORDERS_SUBMITTED,
    REFERENCE_TOPICS,
    TopicNames,
    create_topics,
)
from tools.bench import outside, report
from tools.bench.chains import (
    HOPS,
    KINDS,
    REPORTING,
    REPORTS_PER_MESSAGE,
    chain_topic,
    chain_topics,
    reports_read_path,
    reports_topic,
)
from tools.bench.data import publish_bench_data
from tools.bench.measure import (
    FinalStatuses,
    JsonLines,
    Probe,
    ProcessSample,
    next_probe_rate,
    percentile,
    rounded,
    sample_process,
    steady_arrival_rate,
    steady_rate,
    sustainable_rate,
    traffic_per_order,
    whole_rate,
)
from tools.fleet import SERVICES, Fleet, consumer_lag, end_offsets, wait_for
from tools.local_kafka import free_port

SPAWN = multiprocessing.get_context("spawn")
LEVELS = (0.25, 0.5, 0.9)
POLL_SECONDS = 0.25
BACKLOG_SECONDS = 2.0
BACKLOG_SLACK = 5
"""A level is sustained when, as its offer ends, no more than this many seconds of arrivals
(plus a few orders, for the slowest levels) are still in flight, and every order reaches a
final state afterwards."""
MAX_BURST = 5000
MAX_PROBES = 6
"""At most this many probes look for the sustainable rate (`measure.next_probe_rate`)."""


def say(text: str) -> None:
    """Progress on stderr, at once: a full run takes minutes, and the table comes at the end."""
    print(f"bench: {text}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Scale:
    """How much each phase does; `QUICK` and `FULL` are the two the command offers."""

    warmup_orders: int
    pilot_orders: int
    """A first burst, to estimate the capacity; with `burst_seconds` 0 it is the only one."""
    burst_seconds: float
    """The measured burst is sized to take about this long at the pilot's rate."""
    level_seconds: float
    faust_messages: int
    aiokafka_messages: int
    loadgen_messages: int
    drain_timeout: float
    probe_seconds: float = 20
    """How long each probe for the sustainable rate offers orders."""
    idle_seconds: float = 5
    b2b_accounts: int = 12


FULL = Scale(
    warmup_orders=40,
    pilot_orders=100,
    burst_seconds=40,
    level_seconds=45,
    faust_messages=6000,
    aiokafka_messages=40000,
    loadgen_messages=40000,
    drain_timeout=240,
    idle_seconds=10,
)
QUICK = Scale(
    warmup_orders=20,
    pilot_orders=80,
    burst_seconds=0,
    level_seconds=8,
    faust_messages=1500,
    aiokafka_messages=8000,
    loadgen_messages=10000,
    drain_timeout=90,
    probe_seconds=8,
)


@dataclass(frozen=True)
class Setup:
    """Where and how: the broker, the run's scratch dir, workers per service, partitions."""

    bootstrap: str
    work_dir: Path
    scale: Scale
    workers: int = 1
    partitions: int = 4


# --------------------------------------------------------------------------- processes


@contextlib.contextmanager
def outside_process(
    target: Callable[..., None], *args: object, ready: ProcessEvent | None = None
) -> Iterator[SpawnProcess]:
    """A spawned process for the duration of the block; waits for `ready` when given."""
    process = SPAWN.Process(target=target, args=(*args, ready) if ready else args, daemon=True)
    process.start()
    try:
        if ready is not None:
            wait_for(
                f"{getattr(target, '__name__', 'process')} to be ready",
                lambda: ready.is_set() or not process.is_alive(),
                60,
            )
            if not process.is_alive():
                raise RuntimeError(f"{target.__name__} exited with code {process.exitcode}")
        yield process
    finally:
        if process.is_alive():
            process.terminate()
        process.join(10)


def offer(setup: Setup, topic: str, prefix: str, count: int, rate: float) -> dict[str, Any]:
    """Run the shop process for one offer and return its report (orders, due times, rate)."""
    report = setup.work_dir / f"shop-{prefix}.json"
    accounts = tuple(outside.b2b_accounts(setup.scale.b2b_accounts))
    order = outside.Offer(topic, prefix, count, rate, accounts)
    with outside_process(outside.run_shop, setup.bootstrap, order, report) as shop:
        shop.join((count / rate if rate > 0 else 0) + 120)
    if not report.exists():
        raise RuntimeError(f"the shop process for {prefix} wrote no report (exit {shop.exitcode})")
    return dict(json.loads(report.read_text()))


def create_plain_topics(bootstrap: str, topics: Sequence[str], partitions: int) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="tradelane-bench")
    try:
        admin.create_topics([NewTopic(t, partitions, 1) for t in topics])
    finally:
        admin.close()


# --------------------------------------------------------------------------- baselines


def measure_load_generator(setup: Setup, prefix: str) -> dict[str, Any]:
    """The shop process alone, sending as fast as it can: the ceiling of any offer it makes."""
    topic = f"{prefix}loadgen"
    create_plain_topics(setup.bootstrap, [topic], setup.partitions)
    report = offer(setup, topic, f"{prefix}gen", setup.scale.loadgen_messages, 0)
    return {
        "messages": setup.scale.loadgen_messages,
        "messages_per_second": round(report["achieved_rate"], 1),
    }


def measure_chain(setup: Setup, kind: str, prefix: str, messages: int) -> dict[str, Any]:
    """Four hops of `kind` (faust, faust-reports or aiokafka): warm them up, then time
    `messages` through (for the reporting chain: until every hop has read every report)."""
    reporting = kind == REPORTING
    topics = chain_topics(prefix, kind) + ([reports_topic(prefix)] if reporting else [])
    create_plain_topics(setup.bootstrap, topics, setup.partitions)
    logs = setup.work_dir / f"chain-{kind}.log"
    hops: list[subprocess.Popen[bytes]] = []
    arrivals = JsonLines(setup.work_dir / f"chain-{kind}-arrivals.jsonl")
    reports_read = [
        JsonLines(reports_read_path(setup.work_dir, position)) if reporting else None
        for position in range(HOPS)
    ]
    end = chain_topic(prefix, kind, HOPS)
    try:
        with logs.open("ab") as log:
            for position in range(HOPS):
                hops.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "tools.bench.chains",
                            kind,
                            str(position),
                            setup.bootstrap,
                            prefix,
                            str(setup.partitions),
                            str(setup.work_dir),
                        ],
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
        ready = SPAWN.Event()
        with outside_process(
            outside.run_arrival_counter, setup.bootstrap, end, arrivals.path, ready=ready
        ):
            seen = [0, 0.0]
            timeline: list[tuple[int, float]] = []
            read = [(0, 0.0)] * HOPS

            def arrived(total: int) -> Callable[[], bool]:
                def check() -> bool:
                    for count, at in arrivals.new_rows():
                        seen[0] += int(str(count))
                        seen[1] = float(str(at))
                        timeline.append((int(seen[0]), seen[1]))
                    for position, progress in enumerate(reports_read):
                        for count, at in progress.new_rows() if progress else []:
                            read[position] = (int(str(count)), float(str(at)))
                    if any(hop.poll() is not None for hop in hops):
                        raise RuntimeError(f"a {kind} hop exited; see {logs}")
                    reports = REPORTS_PER_MESSAGE * total if reporting else 0
                    return seen[0] >= total and all(count >= reports for count, _ in read)

                return check

            warmup = setup.scale.warmup_orders
            offer(setup, chain_topic(prefix, kind, 0), f"{prefix}{kind}-warm", warmup, 0)
            wait_for(f"the {kind} chain to warm up", arrived(warmup), 120)
            report = offer(setup, chain_topic(prefix, kind, 0), f"{prefix}{kind}", messages, 0)
            wait_for(
                f"{messages} messages through the {kind} chain",
                arrived(warmup + messages),
                setup.scale.drain_timeout,
            )
    finally:
        for hop in hops:
            with contextlib.suppress(ProcessLookupError):
                hop.send_signal(signal.SIGTERM)
        for hop in hops:
            try:
                hop.wait(15)
            except subprocess.TimeoutExpired:
                hop.kill()
                hop.wait(5)
    seconds = max([seen[1]] + [at for _, at in read]) - report["started"]
    end_to_end = messages / seconds
    result = {
        "hops": HOPS,
        "messages": messages,
        "seconds": round(seconds, 2),
        "messages_per_second": round(end_to_end, 1),
        "steady_messages_per_second": rounded(
            steady_arrival_rate(timeline, setup.scale.warmup_orders, messages)
        ),
        "input_messages_per_second": round(report["achieved_rate"], 1),
        "limited_by_load_generator": end_to_end >= 0.9 * report["achieved_rate"],
    }
    if reporting:
        result["reports_per_message"] = REPORTS_PER_MESSAGE
        result["events_consumed_per_message"] = HOPS + HOPS * REPORTS_PER_MESSAGE
    return result


def measure_baselines(setup: Setup) -> dict[str, Any]:
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    say("load generator alone")
    baselines = {"load_generator": measure_load_generator(setup, prefix)}
    for kind, messages in (
        ("faust", setup.scale.faust_messages),
        (REPORTING, setup.scale.faust_messages),
        ("aiokafka", setup.scale.aiokafka_messages),
    ):
        say(f"{kind} four-hop chain ({messages} messages)")
        baselines[kind] = measure_chain(setup, kind, prefix, messages)
    return baselines


# --------------------------------------------------------------------------- Tradelane


def instances(workers: int) -> list[str]:
    """`catalog`, and `catalog@2` ... for more workers of each service."""
    return [s if w == 1 else f"{s}@{w}" for s in SERVICES for w in range(1, workers + 1)]


@dataclass
class Trial:
    """The running system of one backend, and what the harness reads from it."""

    setup: Setup
    backend: str
    fleet: Fleet
    statuses: FinalStatuses
    groups: dict[str, list[str]] = field(default_factory=dict)
    idle_cpu: dict[str, float] = field(default_factory=dict)
    """CPU seconds per second each service spends with no order to handle (timers, polls)."""

    @property
    def names(self) -> TopicNames:
        return self.fleet.names

    def samples(self) -> dict[str, list[ProcessSample]]:
        found: dict[str, list[ProcessSample]] = {}
        for instance, running in self.fleet.running.items():
            service = instance.split("@", 1)[0]
            found.setdefault(service, []).append(sample_process(running.process.pid))
        return found

    def measure_idle(self, seconds: float) -> None:
        """The services' CPU with nothing to do, so a phase's CPU per order can leave it out:
        at a few orders per second the timers and polls would otherwise dominate."""
        before = self.samples()
        started = time.monotonic()
        time.sleep(seconds)  # the measurement is of doing nothing for this long
        after = self.samples()
        elapsed = time.monotonic() - started
        for service, samples in after.items():
            spent = sum(s.cpu_seconds for s in samples) - sum(
                s.cpu_seconds for s in before[service]
            )
            self.idle_cpu[service] = spent / elapsed

    def lag(self) -> dict[str, int]:
        """Messages each service's consumer group has not committed yet, by service."""
        admin = KafkaAdminClient(bootstrap_servers=self.setup.bootstrap, client_id="bench-lag")
        try:
            return {
                service: consumer_lag(admin, self.fleet.group_id(service), topics)
                for service, topics in self.groups.items()
            }
        finally:
            admin.close()

    def messages_written(self) -> dict[str, int]:
        """Messages written so far to each topic a service reads, and to `orders.status`."""
        topics = {t for reads in self.groups.values() for t in reads} | {
            self.names.of(ORDERS_STATUS)
        }
        admin = KafkaAdminClient(bootstrap_servers=self.setup.bootstrap, client_id="bench-ends")
        try:
            written: dict[str, int] = dict.fromkeys(topics, 0)
            for partition, end in end_offsets(admin, sorted(topics)).items():
                written[partition.topic] += end
            return written
        finally:
            admin.close()

    def run_phase(self, label: str, count: int, rate: float) -> dict[str, Any]:
        """Offer `count` orders at `rate` (0: at once), wait until all are final, measure."""
        prefix = f"{self.names.prefix}{label}"
        before = self.samples()
        written_before = self.messages_written()
        started = time.time()
        process_report: dict[str, Any] = {}
        in_flight_max = 0
        ready_report = self.setup.work_dir / f"shop-{prefix}.json"

        # The shop runs in its own process; meanwhile this one watches the backlog grow or not.
        accounts = tuple(outside.b2b_accounts(self.setup.scale.b2b_accounts))
        order = outside.Offer(self.names.of(ORDERS_SUBMITTED), prefix, count, rate, accounts)
        with outside_process(outside.run_shop, self.setup.bootstrap, order, ready_report) as shop:
            while shop.is_alive():
                shop.join(POLL_SECONDS)
                elapsed = time.time() - started
                offered = min(count, int(elapsed * rate)) if rate > 0 else count
                done = sum(1 for order_id in self.statuses.refresh() if order_id.startswith(prefix))
                in_flight_max = max(in_flight_max, offered - done)
        process_report = json.loads(ready_report.read_text())
        offered_until = process_report["finished"]
        lag_at_end = self.lag()
        order_ids = [order_id for order_id, _ in process_report["orders"]]
        in_flight_at_end = count - self.statuses.finished(order_ids)
        try:
            wait_for(
                f"{label}: {count} orders to reach a final state",
                lambda: self.statuses.finished(order_ids) == count,
                self.setup.scale.drain_timeout,
            )
            drained = True
        except TimeoutError:
            drained = False
        drain_seconds = time.time() - offered_until
        after = self.samples()
        traffic = traffic_per_order(
            written_before,
            self.messages_written(),
            self.groups,
            self.names.of(ORDERS_STATUS),
            count,
        )
        observed_seconds = time.time() - started
        say(
            f"  {label}: {count} orders offered at "
            f"{'once' if rate == 0 else f'{rate:.1f}/s'}, "
            f"{'all final' if drained else 'NOT all final'} after {observed_seconds:.0f} s"
        )
        return self._phase_result(
            label,
            count,
            rate,
            process_report,
            before,
            after,
            drained=drained,
            drain_seconds=drain_seconds,
            in_flight_max=in_flight_max,
            in_flight_at_end=in_flight_at_end,
            observed_seconds=observed_seconds,
            lag_at_end=lag_at_end,
            traffic=traffic,
        )

    def _phase_result(
        self,
        label: str,
        count: int,
        rate: float,
        shop: Mapping[str, Any],
        before: Mapping[str, list[ProcessSample]],
        after: Mapping[str, list[ProcessSample]],
        **observed: Any,
    ) -> dict[str, Any]:
        seen = self.statuses.seen
        due = {order_id: due_ms for order_id, due_ms in shop["orders"]}
        finals = [seen[o] for o in due if o in seen]
        latencies = [
            (seen[o][1] - due[o]) / 1000
            for o in due
            if o in seen and seen[o][0] == outside.OrderState.FULFILLMENT_PLANNED.value
        ]
        outcomes = {
            state: sum(1 for s, _ in finals if s == state) for state in sorted(outside.FINAL_STATES)
        }
        finish_ms = [stamp for _, stamp in finals]
        whole = whole_rate(min(due.values()), finish_ms)
        services = {}
        for service, samples in after.items():
            cpu = sum(s.cpu_seconds for s in samples) - sum(s.cpu_seconds for s in before[service])
            busy = cpu - self.idle_cpu.get(service, 0.0) * observed["observed_seconds"]
            services[service] = {
                "cpu_seconds": round(cpu, 2),
                "cpu_ms_per_order": round(1000 * cpu / max(len(finals), 1), 2),
                "cpu_ms_per_order_net": round(1000 * max(busy, 0.0) / max(len(finals), 1), 2),
                "rss_mb": round(sum(s.rss_mb for s in samples), 1),
                "peak_rss_mb": round(max(s.peak_rss_mb for s in samples), 1),
            }
        backlog_bound = BACKLOG_SECONDS * rate + BACKLOG_SLACK if rate > 0 else math.inf
        return {
            "label": label,
            "orders": count,
            "offered_rate": round(rate, 1) if rate > 0 else None,
            "shop_rate": round(shop["achieved_rate"], 1),
            "shop_worst_behind_seconds": round(shop["worst_behind_seconds"], 3),
            "outcomes": outcomes,
            "completed_rate_steady": rounded(steady_rate(finish_ms)),
            "completed_rate_whole": rounded(whole),
            "latency_seconds": {
                "samples": len(latencies),
                "p50": round(percentile(latencies, 0.50), 3),
                "p95": round(percentile(latencies, 0.95), 3),
                "p99": round(percentile(latencies, 0.99), 3),
                "max": round(max(latencies), 3) if latencies else None,
            },
            "in_flight_max": observed["in_flight_max"],
            "in_flight_at_end_of_offer": observed["in_flight_at_end"],
            "consumer_lag_at_end_of_offer": observed["lag_at_end"],
            "drained": observed["drained"],
            "drain_seconds_after_offer": round(observed["drain_seconds"], 2),
            "sustained": observed["drained"] and observed["in_flight_at_end"] <= backlog_bound,
            "services": services,
            "messages_per_order": observed["traffic"],
        }


@contextlib.contextmanager
def databases(backend: str, setup: Setup) -> Iterator[dict[str, dict[str, str]]]:
    """Each service's DATABASE_URL: a SQLite file (the default) or a database of its own on a
    durable (fsync on) throwaway PostgreSQL server."""
    if backend == "sqlite":
        yield {}
        return
    from tests.support.postgres import LocalPostgres

    with LocalPostgres(durable=True) as server:
        yield {s: {"DATABASE_URL": server.create_database(f"bench_{s}")} for s in SERVICES}


@contextlib.contextmanager
def running_trial(setup: Setup, backend: str) -> Iterator[Trial]:
    """Topics, data, services, status reader and approvers for one backend; all undone after."""
    names = TopicNames(f"bench{uuid.uuid4().hex[:6]}.")
    kafka = KafkaConnection(setup.bootstrap)
    create_topics(kafka, names, setup.partitions)
    data_dir = setup.work_dir / backend
    shutil.rmtree(data_dir, ignore_errors=True)
    with contextlib.ExitStack() as stack:
        publisher = stack.enter_context(EventPublisher(kafka, names))
        publish_bench_data(publisher, outside.b2b_accounts(setup.scale.b2b_accounts))
        service_env = stack.enter_context(databases(backend, setup))
        started = instances(setup.workers)
        fleet = Fleet(
            setup.bootstrap,
            data_dir,
            topic_prefix=names.prefix,
            partitions=setup.partitions,
            ports={name: free_port() for name in started},
            move_taken_ports=True,
            service_env=service_env,
        )
        stack.callback(fleet.stop)
        fleet.start(started, timeout=180)
        fleet.wait_caught_up(REFERENCE_TOPICS, timeout=180)
        statuses = FinalStatuses(JsonLines(setup.work_dir / f"statuses-{backend}.jsonl"))
        status_topic, decisions = names.of(ORDERS_STATUS), names.of(APPROVAL_DECISIONS)
        stack.enter_context(
            outside_process(
                outside.run_status_reader,
                setup.bootstrap,
                status_topic,
                statuses.source.path,
                ready=SPAWN.Event(),
            )
        )
        stack.enter_context(
            outside_process(
                outside.run_approvers, setup.bootstrap, status_topic, decisions, ready=SPAWN.Event()
            )
        )
        trial = Trial(setup, backend, fleet, statuses)
        for service in SERVICES:
            consumes = fleet.running[service].health()[1].get("consumes", [])
            if isinstance(consumes, list) and consumes:
                trial.groups[service] = sorted(str(topic) for topic in consumes)
        yield trial


def measure_tradelane(setup: Setup, backend: str) -> dict[str, Any]:
    """Warm-up, capacity burst, the probes for the sustainable rate, then the three open-loop
    levels, on one backend."""
    scale = setup.scale
    say(f"Tradelane on {backend}: starting the services")
    with running_trial(setup, backend) as trial:
        say(f"Tradelane on {backend}: warm-up, idle CPU, burst, probes, then 25/50/90 %")
        trial.run_phase("warmup", scale.warmup_orders, 10.0)
        trial.measure_idle(scale.idle_seconds)
        burst = trial.run_phase("pilot", scale.pilot_orders, 0)
        if scale.burst_seconds:
            pilot_rate = burst["completed_rate_steady"] or burst["completed_rate_whole"]
            size = min(max(int(pilot_rate * scale.burst_seconds), scale.pilot_orders), MAX_BURST)
            burst = trial.run_phase("burst", size, 0)
        drain_rate = burst["completed_rate_steady"] or burst["completed_rate_whole"]
        if not drain_rate:
            raise RuntimeError(f"Tradelane on {backend}: no order of the burst became final")
        sustainable, probes = find_sustainable_rate(trial, drain_rate)
        levels = []
        for share in LEVELS:
            rate = max(sustainable * share, 0.5)
            level = trial.run_phase(f"level{int(share * 100)}", offer_size(scale, rate), rate)
            level["share_of_capacity"] = share
            levels.append(level)
    return {
        "backend": backend,
        "idle_cpu_seconds_per_second": {s: round(v, 4) for s, v in trial.idle_cpu.items()},
        "capacity": {
            "orders_per_second": sustainable,
            "definition": (
                "maximum sustainable throughput: the highest open-loop rate probed at which "
                "every order reached a final state (fulfillment_planned or rejected) and no "
                f"more than {BACKLOG_SECONDS:g} s of arrivals were in flight when the offer "
                "ended; probes start at 90 % of the burst's drain rate, step down, then halve the "
                "gap to the lowest rate not sustained"
            ),
            "sustained_rate_found": any(probe["sustained"] for probe in probes),
            "burst_drain_rate": drain_rate,
            "burst": burst,
            "probes": probes,
        },
        "levels": levels,
    }


def offer_size(scale: Scale, rate: float, seconds: float | None = None) -> int:
    """Orders in an open-loop offer of `seconds` (a level's by default) at `rate`."""
    return min(max(int(rate * (seconds or scale.level_seconds)), 5), MAX_BURST)


def find_sustainable_rate(trial: Trial, drain_rate: float) -> tuple[float, list[dict[str, Any]]]:
    """The highest rate the system keeps up with under open-loop arrivals.

    A burst drains in large batches, so its rate overstates what the system
    sustains when orders arrive one by one and batches are small. Each probe
    offers orders at a fixed rate for `probe_seconds`; `measure.next_probe_rate`
    says where to go next. Without a sustained probe, the last probe's
    completion rate is taken.
    """
    scale = trial.setup.scale
    tried: list[Probe] = []
    probes: list[dict[str, Any]] = []
    while len(tried) < MAX_PROBES and (rate := next_probe_rate(drain_rate, tried)) is not None:
        rate = round(rate, 1)
        probe = trial.run_phase(
            f"probe{len(tried) + 1}", offer_size(scale, rate, scale.probe_seconds), rate
        )
        probes.append(probe)
        completed = probe["completed_rate_steady"] or probe["completed_rate_whole"]
        tried.append(Probe(rate, bool(probe["sustained"]), completed))
    return round(sustainable_rate(tried) or 0.0, 1), probes


def configuration(setup: Setup) -> dict[str, Any]:
    """The run's shape, and the batch settings the services ran with (they inherit this
    process's environment, so `TRADELANE_BATCH_MAX_MS=0 make bench` compares without the
    wait): runs of other settings must not be read as runs of the same code."""
    settings = Settings()
    return {
        "workers_per_service": setup.workers,
        "partitions": setup.partitions,
        "batch_max_events": settings.batch_max_events,
        "batch_max_ms": settings.batch_max_ms,
        "scale": asdict(setup.scale),
    }


def run_bench(
    setup: Setup, backends: Sequence[str], results_dir: Path, day: str
) -> list[dict[str, Any]]:
    """Baselines once, then each backend; every result written as soon as it is complete."""
    started = time.monotonic()
    baselines = measure_baselines(setup)
    results = []
    for backend in backends:
        result = measure_tradelane(setup, backend)
        result["baselines"] = baselines
        result["ratios"] = {
            kind: round(
                result["capacity"]["orders_per_second"] / baselines[kind]["messages_per_second"],
                4,
            )
            for kind in KINDS
        }
        result["configuration"] = configuration(setup)
        result["date"] = day
        result["elapsed_seconds"] = round(time.monotonic() - started, 1)
        report.write_results(result, results_dir, day)
        results.append(result)
    return results
