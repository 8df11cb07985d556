"""Run the four services as real processes, and know when they are ready.

`make run` and the end-to-end tests start services the same way, so what the
tests exercise is what a developer sees: separate OS processes, each with its
own consumer group, web port and database, talking only over Kafka.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kafka import TopicPartition
from kafka.admin import KafkaAdminClient, OffsetSpec

from shared.kafka_connection import KafkaConnection, kafka_connection
from shared.settings import SERVICE_WEB_PORTS, Settings
from shared.topics import TopicNames, TopicSpec
from tools.local_kafka import free_port

SERVICES: tuple[str, ...] = ("catalog", "pricing", "approvals", "fulfillment")
POLL_SECONDS = 0.2
KILL_MARGIN_SECONDS = 5.0
"""How long past its shutdown bound a service may take before `stop` kills it."""
PORT_TAKEN = b"address already in use"
START_ATTEMPTS = 3


class FleetError(RuntimeError):
    pass


class PortTaken(FleetError):
    """A worker's web port was bound by another process between picking it and binding it."""


def wait_for(condition: str, check: object, timeout: float) -> None:
    """Poll `check()` until it is truthy; fail with `condition` named after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {condition}")
        time.sleep(POLL_SECONDS)


@dataclass
class ServiceProcess:
    name: str
    port: int
    log_path: Path
    process: subprocess.Popen[bytes]
    log_from: int = 0
    """Where this run's output starts in the log (a restarted worker appends to it)."""
    terminated: bool = False

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def health(self) -> tuple[int, dict[str, object]]:
        try:
            with urllib.request.urlopen(self.url("/health"), timeout=2) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return 0, {}

    def port_taken(self) -> bool:
        """Whether the worker found its web port taken: another process bound it first."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(self.log_from)
                return PORT_TAKEN in log.read()
        except FileNotFoundError:
            return False

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


def service_of(instance: str) -> str:
    """'catalog@2' -> 'catalog': a second worker of a service runs under its own name."""
    return instance.split("@", 1)[0]


@dataclass
class Fleet:
    """The four services, started with one environment (broker, topic prefix, data dir).

    `start(["catalog@2"])` adds another worker of catalog: same consumer group and
    database, its own web port (from `ports`) and log, so Kafka splits the
    partitions between the two the way a scaled-out deployment does.
    `service_env` sets variables for one service only, e.g. its DATABASE_URL.
    """

    bootstrap: str
    data_dir: Path
    kafka: KafkaConnection | None = None
    """The login of the fleet's own checks (consumer lag); services take theirs from the
    environment (`extra_env`, `service_env`). None: `bootstrap` is a PLAINTEXT broker."""
    topic_prefix: str = ""
    partitions: int = 4
    ports: dict[str, int] = field(default_factory=lambda: dict(SERVICE_WEB_PORTS))
    extra_env: Mapping[str, str] = field(default_factory=dict)
    service_env: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    move_taken_ports: bool = False
    """Ports picked free a moment before (tests, the bench) can be taken by the time a worker
    binds: with this, such a worker is started again on another free port. A fixed port
    (`make run`) that is taken is an error."""
    running: dict[str, ServiceProcess] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ports = dict(self.ports)

    @property
    def names(self) -> TopicNames:
        return TopicNames(self.topic_prefix)

    def group_id(self, service: str) -> str:
        return f"{self.topic_prefix}tradelane-{service}"

    def environment(self, instance: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        env.update(
            KAFKA_BOOTSTRAP_SERVERS=self.bootstrap,
            TRADELANE_TOPIC_PREFIX=self.topic_prefix,
            TRADELANE_TOPIC_PARTITIONS=str(self.partitions),
            TRADELANE_DATA_DIR=str(self.data_dir),
            WEB_PORT=str(self.ports[instance]),
            PYTHONUNBUFFERED="1",
        )
        env.update(self.extra_env)
        env.update(self.service_env.get(service_of(instance), {}))
        return env

    def start(self, services: Iterable[str] = SERVICES, timeout: float = 90.0) -> None:
        """Start the services and wait until each answers `/health` with 200."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        names = list(services)
        for name in names:
            self.spawn(name)
        for name in names:
            for attempt in range(1, START_ATTEMPTS + 1):
                try:
                    self.wait_healthy(name, timeout)
                    break
                except PortTaken:
                    if not self.move_taken_ports or attempt == START_ATTEMPTS:
                        raise
                    self.kill(name)
                    self.ports[name] = free_port()
                    self.spawn(name)

    def spawn(self, name: str) -> None:
        """Start one worker, its output appended to its log (a restart keeps the first's)."""
        log_path = self.data_dir / f"{name}.log"
        with log_path.open("ab") as log:
            start = log.tell()
            process = subprocess.Popen(
                [sys.executable, "-m", f"services.{service_of(name)}"],
                env=self.environment(name),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.running[name] = ServiceProcess(name, self.ports[name], log_path, process, start)

    def wait_healthy(self, name: str, timeout: float) -> None:
        """Wait for `name`'s own `/health` to answer 200: the answer must name its service,
        since a port taken by another worker would otherwise answer for it."""
        service = self.running[name]

        def healthy() -> bool:
            if service.port_taken():
                raise PortTaken(f"{name}: web port {service.port} was taken")
            if service.process.poll() is not None:
                raise FleetError(
                    f"{name} exited with code {service.process.returncode}:\n{service.log_tail()}"
                )
            status, body = service.health()
            return status == 200 and body.get("service") == service_of(name)

        try:
            wait_for(f"{name} to report healthy", healthy, timeout)
        except TimeoutError as error:
            raise FleetError(f"{error}\n{service.log_tail()}") from None

    def shutdown_seconds(self, instance: str) -> float:
        """The bound a service has to stop in after SIGTERM (`TRADELANE_SHUTDOWN_SECONDS`)."""
        configured = self.environment(instance).get("TRADELANE_SHUTDOWN_SECONDS")
        if configured:
            return float(configured)
        default = Settings.model_fields["shutdown_seconds"].default
        return float(default)

    def stop(self, services: Iterable[str] | None = None) -> dict[str, int]:
        """SIGTERM, and wait for each to exit; SIGKILL only one still there after its bound.

        A service stops gracefully within `TRADELANE_SHUTDOWN_SECONDS` (and exits on
        its own, non-zero, once that is over); the SIGKILL is for a hung process.
        Returns each one's exit code (-9 for one that had to be killed).
        """
        names = list(services or self.running)
        for name in names:
            self.terminate(name)
        codes = {}
        for name in names:
            process = self.running.pop(name).process
            try:
                codes[name] = process.wait(self.shutdown_seconds(name) + KILL_MARGIN_SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                codes[name] = process.wait(10)
        return codes

    def terminate(self, name: str) -> None:
        """SIGTERM one service (once), without waiting: `stop` waits for it to exit."""
        service = self.running[name]
        if service.process.poll() is None and not service.terminated:
            os.killpg(service.process.pid, signal.SIGTERM)
            service.terminated = True

    def kill(self, name: str) -> None:
        """SIGKILL one service: a crash, with no chance to commit or flush anything."""
        process = self.running.pop(name).process
        with contextlib.suppress(ProcessLookupError):  # a worker that failed to start is gone
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)

    def wait_caught_up(
        self, topics: Iterable[TopicSpec], timeout: float = 60.0, services: Iterable[str] = SERVICES
    ) -> None:
        """Wait until each service has committed offsets to the end of the `topics` it reads."""
        wanted = {self.names.of(t) for t in topics}
        groups = {}
        for name in services:
            if name in self.running:
                consumes = self.running[name].health()[1].get("consumes", [])
                assert isinstance(consumes, list)
                if mine := sorted(wanted.intersection(consumes)):
                    groups[self.group_id(service_of(name))] = mine
        wait_caught_up(self.kafka or self.bootstrap, groups, timeout)


def end_offsets(admin: KafkaAdminClient, topics: list[str]) -> dict[TopicPartition, int]:
    """The next offset of every partition of `topics`: how many messages each has had."""
    partitions = [
        TopicPartition(t["name"], p["partition_index"])
        for t in admin.describe_topics(topics)
        for p in t["partitions"]
    ]
    ends = admin.list_partition_offsets({tp: OffsetSpec.LATEST for tp in partitions})
    return {tp: ends[tp].offset for tp in partitions}


def consumer_lag(admin: KafkaAdminClient, group: str, topics: list[str]) -> int:
    """Messages in `topics` that `group` has not yet committed (0 when caught up)."""
    ends = end_offsets(admin, topics)
    committed = admin.list_group_offsets({group: list(ends)}).get(group, {})
    lag = 0
    for tp, end in ends.items():
        done = committed.get(tp)
        position = done.offset if done is not None and done.offset >= 0 else 0
        lag += max(end - position, 0)
    return lag


def wait_caught_up(
    kafka: KafkaConnection | str, groups: Mapping[str, list[str]], timeout: float
) -> None:
    """Wait until each consumer group (mapped to the topics it reads) has no lag left."""
    admin = KafkaAdminClient(**kafka_connection(kafka).kafka_python(), client_id="tradelane-fleet")
    try:
        lags: dict[str, int] = {}

        def caught_up() -> bool:
            lags.update({g: consumer_lag(admin, g, topics) for g, topics in groups.items()})
            return not any(lags.values())

        try:
            wait_for("consumers to catch up", caught_up, timeout)
        except TimeoutError as error:
            raise FleetError(f"{error}; lag by group: {lags}") from None
    finally:
        admin.close()
