"""Run a real single-node Apache Kafka 3.9 (KRaft) broker for dev, tests and CI.

Why this exists: the project's services talk to Kafka, and mocks of Kafka hide exactly
the behaviour we care about (group rebalances, offsets, topic creation). Docker is not
available on every machine we run on, but Java and Maven are, so we run the official
broker jars (resolved by ``tools/kafka/pom.xml`` from Maven Central) directly as a JVM
subprocess. One module serves three callers:

* ``tests/conftest.py`` starts a throwaway broker on free ports in a temp dir;
* ``make kafka-up`` / ``make kafka-down`` use the CLI below
  (``python -m tools.local_kafka up|down|status``) with a persistent ``var/kafka``;
* CI does the same as tests, or points everything at an existing cluster via
  ``KAFKA_BOOTSTRAP_SERVERS``.

The broker runs in combined ``broker,controller`` mode with node id 1, which is the
smallest real KRaft cluster. ``LocalKafka(dir, secured=True)`` runs it the way a real
cluster is run: SCRAM-SHA-512 over TLS on its client port, with a CA and certificate
made for it (``tools.broker_tls``), SCRAM users stored at format time, and ACLs
enforced (nothing is allowed to anyone without one; ``admin`` is the super user).
Readiness is judged by a real Kafka request (DescribeCluster
via kafka-python's admin client), never by a fixed sleep or by grepping the log.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from shared.kafka_connection import KafkaConnection, kafka_connection
from tools.broker_tls import BrokerCertificates, make_broker_certificates

__all__ = [
    "BOOTSTRAP_ENV",
    "DEFAULT_PORT",
    "BrokerError",
    "LocalKafka",
    "default_data_dir",
    "ensure_jars",
    "free_port",
    "project_root",
    "wait_until_ready",
]

log = logging.getLogger(__name__)

HOST: Final = "127.0.0.1"
"""Bind and advertise loopback only: a dev broker must never be reachable from outside."""

DEFAULT_PORT: Final = 9092
BOOTSTRAP_ENV: Final = "KAFKA_BOOTSTRAP_SERVERS"
"""If set, callers use this existing cluster instead of starting a local broker."""

DEFAULT_STARTUP_TIMEOUT: Final = 90.0
DEFAULT_STOP_TIMEOUT: Final = 30.0
LOG_TAIL_LINES: Final = 40

MAVEN_CMD: Final = (
    "mvn",
    "-q",
    "-B",
    "dependency:copy-dependencies",
    "-DoutputDirectory=libs",
    "-DincludeScope=runtime",
)
KAFKA_JAR_GLOB: Final = "kafka_2.13-*.jar"

# File names inside the caller's data dir. Everything the broker writes lives there, so
# deleting the dir is a complete reset.
SERVER_PROPERTIES: Final = "server.properties"
LOG4J_PROPERTIES: Final = "log4j.properties"
SERVER_LOG: Final = "server.log"
STDOUT_LOG: Final = "kafka.out"
PID_FILE: Final = "kafka.pid"
KRAFT_DIR: Final = "data"

# The JVM's own main class; also how we recognise "our" process behind a pid file.
KAFKA_MAIN: Final = "kafka.Kafka"

ADMIN_USER: Final = "admin"
"""The secured broker's super user: its own inter-broker login, and the tests' admin."""
SCRAM_MECHANISM: Final = "SCRAM-SHA-512"
TLS_DIR: Final = "tls"
AUTHENTICATION_FAILED: Final = re.compile(
    r"Failed authentication with \S+ \(channelId=[^)]*\) \((?P<reason>.*)\) \(org\.apache"
)


class BrokerError(RuntimeError):
    """The local broker (or the jars it needs) could not be provided.

    The message always carries enough context (Maven output or the broker's log tail)
    to diagnose the failure without going to look for files.
    """


# --------------------------------------------------------------------------- paths


def project_root() -> Path:
    """The repository root, found from this file (the project is installed editable).

    Used for defaults only, so that the CLI and the tests work from any cwd.
    """
    return Path(__file__).resolve().parent.parent


def default_data_dir() -> Path:
    """``<repo>/var/kafka``: where ``make kafka-up`` keeps its persistent broker."""
    return project_root() / "var" / "kafka"


def file_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """Last ``lines`` lines of a text file, or a note saying it is missing.

    Reads only the end of the file: server logs can grow large. Also used for PostgreSQL.
    """
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read()
    except FileNotFoundError:
        return f"({path} does not exist)"
    text = data.decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def _text_tail(text: str, lines: int = LOG_TAIL_LINES) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


# --------------------------------------------------------------------------- jars


def ensure_jars(repo_root: Path | None = None) -> Path:
    """Return ``tools/kafka/libs``, resolving the Kafka jars with Maven if absent.

    Why Maven: it is the one client that reaches Maven Central on every machine we use,
    and the jars are then cached in ``~/.m2``, so a fresh checkout costs one download.
    A file lock serialises concurrent callers (two pytest sessions, make + tests), which
    would otherwise race on the same output directory.
    """
    root = repo_root if repo_root is not None else project_root()
    kafka_dir = root / "tools" / "kafka"
    libs = kafka_dir / "libs"
    if _has_kafka_jar(libs):
        return libs
    if not (kafka_dir / "pom.xml").is_file():
        raise BrokerError(f"{kafka_dir / 'pom.xml'} is missing; cannot resolve Kafka jars")
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError(
            f"no Kafka jars in {libs} and Maven ('mvn') is not on PATH; install Maven "
            "(e.g. apt-get install maven) or set KAFKA_BOOTSTRAP_SERVERS to an existing cluster"
        )
    with _file_lock(kafka_dir / ".libs.lock"):
        if _has_kafka_jar(libs):  # another process resolved them while we waited
            return libs
        log.info("resolving Kafka jars into %s with Maven (first run only)", libs)
        result = subprocess.run(
            [mvn, *MAVEN_CMD[1:]],
            cwd=kafka_dir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0 or not _has_kafka_jar(libs):
            output = _text_tail(f"{result.stdout}\n{result.stderr}")
            raise BrokerError(
                f"Maven failed to resolve Kafka jars (exit {result.returncode}) in "
                f"{kafka_dir}: {' '.join(MAVEN_CMD)}\n--- Maven output (tail) ---\n{output}"
            )
    return libs


def _has_kafka_jar(libs: Path) -> bool:
    return libs.is_dir() and any(libs.glob(KAFKA_JAR_GLOB))


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Exclusive advisory lock held for the block (released by the OS if we die)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# --------------------------------------------------------------------------- ports


def free_port(host: str = HOST) -> int:
    """A TCP port that is free on ``host`` right now (the OS picks it).

    There is an unavoidable window before the broker binds it; ``LocalKafka.start``
    retries with fresh ports if the broker then reports the address is in use.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _port_is_free(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _tcp_accepts(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _parse_bootstrap(bootstrap: str) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    for item in bootstrap.split(","):
        item = item.strip()
        if not item:
            continue
        if "://" in item:
            item = item.split("://", 1)[1]
        host, _, port = item.rpartition(":")
        if not host:
            host, port = item, str(DEFAULT_PORT)
        out.append((host.strip("[]"), int(port)))
    if not out:
        raise BrokerError(f"empty bootstrap servers string: {bootstrap!r}")
    return out


# --------------------------------------------------------------------------- readiness


def wait_until_ready(
    kafka: KafkaConnection | str,
    timeout: float = DEFAULT_STARTUP_TIMEOUT,
    *,
    proc: subprocess.Popen[bytes] | None = None,
    diagnostics: Callable[[], str] | None = None,
    expected_cluster_id: str | None = None,
) -> dict[str, Any]:
    """Poll until the cluster at ``bootstrap`` answers a DescribeCluster with a broker.

    Why a real request: an open port is not enough, since Kafka binds its listener
    before it serves requests, and in KRaft the broker must also register with the
    controller before clients can use it. Returns the describe_cluster() dict.

    ``proc``: the broker process we started; if it exits we fail at once instead of
    waiting out the timeout. ``expected_cluster_id``: guards against a *different*
    broker that already holds the port answering in place of ours. ``diagnostics``:
    called on failure; its text (log tails) is appended to the ``BrokerError``.
    ``kafka``: a connection with its login (a secured cluster), or a PLAINTEXT address.
    """
    from kafka.admin import KafkaAdminClient  # heavy import; only needed here

    connection = kafka_connection(kafka)
    bootstrap = connection.bootstrap
    deadline = time.monotonic() + timeout
    addresses = _parse_bootstrap(bootstrap)
    last_error = "no attempt made"

    def fail(reason: str) -> BrokerError:
        message = f"Kafka at {bootstrap} {reason}"
        if diagnostics is not None:
            message = f"{message}\n{diagnostics()}"
        return BrokerError(message)

    def check_proc() -> None:
        if proc is not None and proc.poll() is not None:
            raise fail(f"exited with code {proc.returncode} before becoming ready")

    # Phase 1: wait for the TCP listener. Cheap, and it avoids building admin clients
    # (each with an IO thread) against a port that is not even open yet.
    while not any(_tcp_accepts(h, p) for h, p in addresses):
        check_proc()
        if time.monotonic() >= deadline:
            raise fail(f"did not open its port within {timeout:.0f}s")
        time.sleep(0.1)

    # Phase 2: a real metadata round trip. Bootstrap retries internally until its own
    # timeout, so one client normally suffices; re-create it only if bootstrap failed.
    admin: Any = None
    try:
        while True:
            check_proc()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise fail(f"was not ready within {timeout:.0f}s (last error: {last_error})")
            try:
                if admin is None:
                    admin = KafkaAdminClient(
                        **connection.kafka_python(),
                        client_id="tradelane-broker-probe",
                        bootstrap_timeout_ms=int(min(remaining, 10.0) * 1000),
                        request_timeout_ms=int(min(max(remaining, 1.0), 10.0) * 1000),
                    )
                info: dict[str, Any] = admin.describe_cluster()
            except Exception as exc:  # any client error just means "not ready yet"
                last_error = f"{type(exc).__name__}: {exc}"
            else:
                cluster_id = info.get("cluster_id")
                if expected_cluster_id is not None and cluster_id != expected_cluster_id:
                    last_error = (
                        f"answered with cluster id {cluster_id!r}, expected "
                        f"{expected_cluster_id!r} (is another broker on this port?)"
                    )
                elif info.get("brokers"):
                    return info
                else:
                    last_error = "cluster reports no registered brokers yet"
            time.sleep(0.2)
    finally:
        if admin is not None:
            with contextlib.suppress(Exception):
                admin.close()


# --------------------------------------------------------------------------- processes


def _cmdline(pid: int) -> str | None:
    """The command line of ``pid``, or None if there is no such live process."""
    proc_file = Path(f"/proc/{pid}/cmdline")
    try:
        raw = proc_file.read_bytes()
    except FileNotFoundError:
        return None
    except OSError:
        raw = b""
    if raw:
        stat = Path(f"/proc/{pid}/stat").read_text(errors="replace")
        # state is the field after the parenthesised command name; Z = zombie = dead
        if stat.rpartition(")")[2].split()[:1] == ["Z"]:
            return None
        return raw.replace(b"\0", b" ").decode(errors="replace")
    if sys.platform.startswith("linux"):
        return None  # kernel thread or zombie
    result = subprocess.run(  # macOS and other systems without procfs
        ["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True, check=False
    )
    return result.stdout.strip() or None


def _is_our_broker(pid: int, server_properties: Path) -> bool:
    """Whether ``pid`` is a live Kafka JVM started with ``server_properties``.

    Why: a pid file can outlive its process and the pid can be reused; we must never
    signal an unrelated process group.
    """
    cmd = _cmdline(pid)
    return cmd is not None and KAFKA_MAIN in cmd and str(server_properties) in cmd


def _signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal the broker's process group (it is a group leader: start_new_session)."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return
    except PermissionError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _terminate(pid: int, timeout: float, proc: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM the group, wait up to ``timeout`` s for a clean shutdown, then SIGKILL.

    A clean shutdown matters for the persistent dev dir: it avoids log recovery (slow
    start) next time. ``proc`` lets us reap our own child; for a pid from a pid file
    (started by an earlier CLI call) we can only poll for its disappearance.
    """

    def gone() -> bool:
        if proc is not None:
            return proc.poll() is not None
        return _cmdline(pid) is None

    if gone():
        return
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while not gone():
        if time.monotonic() >= deadline:
            log.warning("Kafka (pid %d) did not stop within %.0fs; killing it", pid, timeout)
            _signal_group(pid, signal.SIGKILL)
            kill_deadline = time.monotonic() + 10.0
            while not gone() and time.monotonic() < kill_deadline:
                time.sleep(0.05)
            break
        time.sleep(0.1)
    else:
        # The JVM is gone; make sure no stray group member (none expected) survives.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)


def _new_cluster_id() -> str:
    """A Kafka-style cluster id: a random UUID as 22-char unpadded base64url.

    Same format as ``kafka-storage random-uuid``, without paying for a JVM start.
    Kafka rejects ids starting with '-' (they look like CLI flags), so we redraw those.
    """
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def _read_properties(path: Path) -> dict[str, str]:
    """Minimal Java .properties reader (key=value lines; enough for files we wrote)."""
    props: dict[str, str] = {}
    try:
        text = path.read_text()
    except FileNotFoundError:
        return props
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "!")):
            continue
        key, sep, value = line.partition("=")
        if sep:
            props[key.strip()] = value.strip()
    return props


def _write_properties(path: Path, props: Mapping[str, str], header: str) -> None:
    lines = [f"# {header}", *(f"{k}={v}" for k, v in props.items()), ""]
    path.write_text("\n".join(lines))


# --------------------------------------------------------------------------- broker


class LocalKafka:
    """A single-node Kafka 3.9 KRaft broker (combined broker+controller) in a subprocess.

    Usage::

        with LocalKafka(tmp_dir) as kafka:        # free ports, started on enter
            use(kafka.bootstrap)                  # "127.0.0.1:<port>"

    ``port=None`` / ``controller_port=None`` pick free ports at ``start()``; pass
    ``port=9092`` for a well-known dev address. The data dir may be reused across
    starts: storage is formatted only once (when ``meta.properties`` is absent), so
    topics and offsets survive ``down``/``up``.

    The JVM runs in its own session/process group, so it survives the caller if the
    caller wants that (the CLI ``up``), and ``stop()`` can take the whole group down.
    With ``die_with_parent=True`` (the default, meant for tests) it additionally gets
    SIGTERM from the kernel when the starting process dies, so a crashed test run does
    not leave 512 MB JVMs behind (Linux only, via ``setpriv --pdeathsig``).

    ``secured=True``: the client port speaks SASL_SSL with SCRAM-SHA-512 only, the
    certificate is made in ``<data_dir>/tls`` for 127.0.0.1 and localhost, the
    ``users`` (name: password) and ``admin`` (a random password) are stored as SCRAM
    credentials when the storage is formatted, and the StandardAuthorizer refuses
    whatever no ACL allows. ``connection(user)`` is how a client logs in as one of
    them. The controller listener stays on loopback and takes only the broker's own
    certificate (mutual TLS), so no anonymous client is a super user anywhere.
    """

    def __init__(
        self,
        data_dir: Path | str,
        *,
        port: int | None = None,
        controller_port: int | None = None,
        repo_root: Path | None = None,
        heap: str = "512m",
        startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
        die_with_parent: bool = True,
        extra_config: Mapping[str, str] | None = None,
        secured: bool = False,
        users: Mapping[str, str] | None = None,
    ) -> None:
        if users and not secured:
            raise ValueError("SCRAM users need secured=True")
        self.data_dir: Path = Path(data_dir).resolve()
        self.secured = secured
        self.users: dict[str, str] = dict(users or {})
        if secured:
            self.users.setdefault(ADMIN_USER, secrets.token_urlsafe(24))
        self.repo_root: Path = repo_root if repo_root is not None else project_root()
        self.heap = heap
        self.startup_timeout = startup_timeout
        self.die_with_parent = die_with_parent
        self.extra_config: dict[str, str] = dict(extra_config or {})
        self._fixed_port = port
        self._fixed_controller_port = controller_port
        self._port: int | None = port
        self._controller_port: int | None = controller_port
        self._proc: subprocess.Popen[bytes] | None = None
        self._cluster_id: str | None = None
        self._log_offset = 0  # server.log size at launch: where this run's lines start

    # ---- paths -------------------------------------------------------------------

    @property
    def server_properties(self) -> Path:
        return self.data_dir / SERVER_PROPERTIES

    @property
    def log4j_properties(self) -> Path:
        return self.data_dir / LOG4J_PROPERTIES

    @property
    def server_log(self) -> Path:
        """The broker's log4j log: the first place to look when something is odd."""
        return self.data_dir / SERVER_LOG

    @property
    def stdout_log(self) -> Path:
        """JVM stdout/stderr: only crashes and early startup errors land here."""
        return self.data_dir / STDOUT_LOG

    @property
    def pid_file(self) -> Path:
        return self.data_dir / PID_FILE

    @property
    def kraft_dir(self) -> Path:
        return self.data_dir / KRAFT_DIR

    # ---- state -------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise BrokerError("port not chosen yet: call start() first")
        return self._port

    @property
    def controller_port(self) -> int:
        if self._controller_port is None:
            raise BrokerError("controller port not chosen yet: call start() first")
        return self._controller_port

    @property
    def bootstrap(self) -> str:
        """``127.0.0.1:<port>`` for ``bootstrap_servers`` (known once a port is chosen)."""
        return f"{HOST}:{self.port}"

    @property
    def tls_dir(self) -> Path:
        return self.data_dir / TLS_DIR

    @property
    def ca_file(self) -> Path:
        """The CA a client of the secured broker trusts (PEM), made on the first start."""
        return self.tls_dir / "ca.crt"

    def connection(self, user: str = ADMIN_USER, password: str | None = None) -> KafkaConnection:
        """How a client reaches this broker: PLAINTEXT, or SASL_SSL logged in as `user`.

        `password` overrides the user's own (to show a wrong one is refused).
        """
        if not self.secured:
            return KafkaConnection(self.bootstrap)
        return KafkaConnection(
            self.bootstrap,
            protocol="SASL_SSL",
            mechanism=SCRAM_MECHANISM,
            username=user,
            password=password if password is not None else self.users[user],
            ca_file=self.ca_file,
        )

    @property
    def pid(self) -> int | None:
        """Pid of the running broker JVM (ours, or one recorded in the pid file)."""
        if self._proc is not None:
            return self._proc.pid if self._proc.poll() is None else None
        return self.running_pid()

    def running_pid(self) -> int | None:
        """Pid from the pid file if that process is really our broker, else None."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _is_our_broker(pid, self.server_properties) else None

    def running_bootstrap(self) -> str | None:
        """Bootstrap address of a broker already running from this data dir, if any.

        Read back from server.properties, which the running broker was started with,
        so ``status``/``up`` in a later CLI call can report it.
        """
        if self.running_pid() is None:
            return None
        advertised = _read_properties(self.server_properties).get("advertised.listeners", "")
        for listener in advertised.split(","):
            name, found, address = listener.partition("://")
            if found and name in ("PLAINTEXT", "SASL_SSL"):
                return address
        return None

    def authentication_failures(self) -> list[str]:
        """The reasons the broker gave for each refused login since it started, in order.

        The broker's own words (its `Selector` logs them at INFO), because a client
        only learns that it could not bootstrap: kafka-python and aiokafka retry a
        refused login until their timeout and then report a generic timeout.
        """
        reasons = []
        with contextlib.suppress(FileNotFoundError), self.server_log.open("rb") as fh:
            fh.seek(self._log_offset)
            for raw in fh:
                found = AUTHENTICATION_FAILED.search(raw.decode("utf-8", errors="replace"))
                if found:
                    reasons.append(found["reason"])
        return reasons

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """Last lines of the server log and of JVM stdout, for error messages."""
        return (
            f"--- {self.server_log} (last {lines} lines) ---\n{file_tail(self.server_log, lines)}\n"
            f"--- {self.stdout_log} (last {lines} lines) ---\n{file_tail(self.stdout_log, lines)}"
        )

    def _diagnostics(self) -> str:
        """Log tails plus the ERROR/FATAL lines logged since this launch.

        Why both: on a failed start Kafka logs the root cause (e.g. a BindException)
        and then dozens of shutdown lines, which push the cause out of a plain tail.
        """
        errors: list[str] = []
        with contextlib.suppress(FileNotFoundError), self.server_log.open("rb") as fh:
            fh.seek(self._log_offset)
            for raw in fh:
                line = raw.decode("utf-8", errors="replace").rstrip()
                if " ERROR " in line or " FATAL " in line:
                    errors.append(line)
        text = self.log_tail()
        if errors:
            text = (
                "--- errors logged during this start ---\n" + "\n".join(errors[:10]) + "\n" + text
            )
        return text

    # ---- lifecycle ---------------------------------------------------------------

    def start(self) -> str:
        """Configure, format (first time only), launch and wait for the broker.

        Returns the bootstrap address. Raises ``BrokerError`` with the log tail if the
        JVM exits or does not answer within ``startup_timeout``. If ports were picked
        automatically and lost a race with another process, retries with new ones.
        """
        if self._proc is not None and self._proc.poll() is None:
            return self.bootstrap
        if self.running_pid() is not None:
            raise BrokerError(
                f"a broker from {self.data_dir} is already running (pid {self.running_pid()}, "
                f"{self.running_bootstrap()}); stop it first"
            )
        java = shutil.which("java")
        if java is None:
            raise BrokerError(
                "'java' is not on PATH; Kafka needs Java 17+ (e.g. apt-get install "
                f"openjdk-17-jre-headless) or set {BOOTSTRAP_ENV} to an existing cluster"
            )
        libs = ensure_jars(self.repo_root)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.kraft_dir.mkdir(parents=True, exist_ok=True)

        # Retrying only helps when we choose both ports; a fixed busy port stays busy.
        auto_ports = self._fixed_port is None and self._fixed_controller_port is None
        attempts = 3 if auto_ports else 1
        for attempt in range(1, attempts + 1):
            self._choose_ports()
            if self.secured and not self.ca_file.is_file():
                make_broker_certificates(self.tls_dir, (HOST, "localhost"))
            self._write_config()
            self._format_storage(java, libs)
            self._launch(java, libs)
            try:
                wait_until_ready(
                    self.connection(),
                    self.startup_timeout,
                    proc=self._proc,
                    diagnostics=self._diagnostics,
                    expected_cluster_id=self._cluster_id,
                )
            except BrokerError as exc:
                self._kill_quietly()
                port_race = "Address already in use" in str(exc)
                if port_race and attempt < attempts:
                    log.warning("Kafka lost a port race; retrying with new ports")
                    continue
                raise
            log.debug("Kafka ready at %s (pid %d)", self.bootstrap, self._proc_pid())
            return self.bootstrap
        raise AssertionError("unreachable")

    def stop(self, timeout: float = DEFAULT_STOP_TIMEOUT) -> None:
        """Stop the broker: SIGTERM to its group, up to ``timeout`` s, then SIGKILL.

        Works both for a broker this object started and for one recorded in the data
        dir's pid file by an earlier process (the CLI ``down``). No error if none runs.
        """
        if self._proc is not None:
            _terminate(self._proc.pid, timeout, self._proc)
            self._proc = None
        else:
            pid = self.running_pid()
            if pid is not None:
                _terminate(pid, timeout, None)
        with contextlib.suppress(FileNotFoundError):
            self.pid_file.unlink()
        if self._fixed_port is None:
            self._port = None
        if self._fixed_controller_port is None:
            self._controller_port = None

    def __enter__(self) -> LocalKafka:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ---- internals ---------------------------------------------------------------

    def _proc_pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def _choose_ports(self) -> None:
        if self._fixed_port is not None:
            if not _port_is_free(self._fixed_port):
                raise BrokerError(
                    f"port {self._fixed_port} on {HOST} is already in use (another Kafka? "
                    f"try 'python -m tools.local_kafka status' or pick another --port)"
                )
            self._port = self._fixed_port
        else:
            self._port = free_port()
        if self._fixed_controller_port is not None:
            self._controller_port = self._fixed_controller_port
        else:
            cport = free_port()
            while cport == self._port:
                cport = free_port()
            self._controller_port = cport

    def config(self) -> dict[str, str]:
        """The server.properties content for the chosen ports.

        Tuned for a small, fast-starting dev broker: replication factors of 1 for the
        internal topics (there is one node), few internal partitions (fewer logs to
        create at startup), no group rebalance delay (consumers in tests join at once),
        and no auto-created topics (the project creates every topic from its registry,
        so a typo must fail loudly rather than silently create a topic).
        """
        port, cport = self.port, self.controller_port
        cfg: dict[str, str] = {
            # --- KRaft identity and listeners
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{HOST}:{cport}",
            "listeners": f"PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{cport}",
            "advertised.listeners": f"PLAINTEXT://{HOST}:{port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            # --- storage
            "log.dirs": str(self.kraft_dir),
            "num.partitions": "1",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "auto.create.topics.enable": "false",
            "delete.topic.enable": "true",
            "log.segment.bytes": str(64 * 1024 * 1024),
            "log.retention.hours": "168",
            "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
            "num.recovery.threads.per.data.dir": "1",
            # --- internal topics: single node, few partitions for a fast start
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "4",
            # --- quick group handling for tests and dev
            "group.initial.rebalance.delay.ms": "0",
            # --- a small machine (2 cores): fewer threads than the defaults
            "num.network.threads": "2",
            "num.io.threads": "4",
            "background.threads": "4",
            # --- one node: nothing to rebalance, skip the periodic check
            "auto.leader.rebalance.enable": "false",
        }
        if self.secured:
            cfg.update(self._security_config())
        cfg.update(self.extra_config)
        return cfg

    def _security_config(self) -> dict[str, str]:
        """SASL_SSL with SCRAM-SHA-512 for clients, mutual TLS for the controller, ACLs on.

        The key store is one PEM file (key, certificate, CA) and the trust store the
        CA's PEM: Kafka 3.9 reads both (KIP-651). The broker's inter-broker login is
        the admin user; on the controller listener it presents its certificate, whose
        principal is a super user too. Nothing without an ACL is allowed to anyone else.
        """
        port, cport = self.port, self.controller_port
        certificates = BrokerCertificates(self.ca_file, self.tls_dir / "broker-keystore.pem")
        login = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{ADMIN_USER}" password="{self.users[ADMIN_USER]}";'
        )
        return {
            "listeners": f"SASL_SSL://{HOST}:{port},CONTROLLER://{HOST}:{cport}",
            "advertised.listeners": f"SASL_SSL://{HOST}:{port}",
            "listener.security.protocol.map": "CONTROLLER:SSL,SASL_SSL:SASL_SSL",
            "inter.broker.listener.name": "SASL_SSL",
            "sasl.enabled.mechanisms": SCRAM_MECHANISM,
            "sasl.mechanism.inter.broker.protocol": SCRAM_MECHANISM,
            f"listener.name.sasl_ssl.{SCRAM_MECHANISM.lower()}.sasl.jaas.config": login,
            "listener.name.controller.ssl.client.auth": "required",
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(certificates.keystore_file),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(certificates.ca_file),
            "ssl.endpoint.identification.algorithm": "https",
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": f"User:{ADMIN_USER};{certificates.broker_principal}",
            "allow.everyone.if.no.acl.found": "false",
        }

    def _write_config(self) -> None:
        _write_properties(
            self.server_properties,
            self.config(),
            "generated by tools/local_kafka.py; rewritten on start",
        )
        log4j = {
            "log4j.rootLogger": "INFO, file",
            "log4j.appender.file": "org.apache.log4j.RollingFileAppender",
            "log4j.appender.file.File": str(self.server_log),
            "log4j.appender.file.MaxFileSize": "20MB",
            "log4j.appender.file.MaxBackupIndex": "2",
            "log4j.appender.file.layout": "org.apache.log4j.PatternLayout",
            "log4j.appender.file.layout.ConversionPattern": "[%d] %p %m (%c)%n",
            # Noisy at INFO: per-request, per-partition and state-change chatter.
            "log4j.logger.kafka.request.logger": "WARN",
            "log4j.logger.kafka.network.RequestChannel$": "WARN",
            "log4j.logger.state.change.logger": "WARN",
            "log4j.logger.kafka.controller": "WARN",
            "log4j.logger.kafka.log.LogCleaner": "WARN",
            "log4j.logger.kafka.authorizer.logger": "WARN",
            "log4j.logger.kafka.cluster.Partition": "WARN",
            "log4j.logger.kafka.log.UnifiedLog": "WARN",
            "log4j.logger.kafka.server.ReplicaFetcherManager": "WARN",
            "log4j.logger.kafka.server.metadata": "WARN",
            "log4j.logger.org.apache.kafka.storage.internals.log": "WARN",
            "log4j.logger.org.apache.kafka.raft": "WARN",
            "log4j.logger.org.apache.kafka.image": "WARN",
            "log4j.logger.org.apache.kafka.metadata": "WARN",
            "log4j.logger.org.apache.kafka.controller": "WARN",
            "log4j.logger.org.apache.kafka.common.config": "WARN",
            "log4j.logger.kafka.server.DelayedOperationPurgatory$ExpiredOperationReaper": "WARN",
            "log4j.logger.kafka.server.ClientQuotaManager$ThrottledChannelReaper": "WARN",
            "log4j.logger.kafka.server.NodeToControllerRequestThread": "WARN",
            "log4j.logger.org.apache.kafka.queue.KafkaEventQueue": "WARN",
            "log4j.logger.org.apache.zookeeper": "WARN",
        }
        _write_properties(self.log4j_properties, log4j, "generated by tools/local_kafka.py")

    def _java_base(self, java: str, libs: Path) -> list[str]:
        return [
            java,
            f"-Xmx{self.heap}",
            "-Xms64m",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dlog4j.configuration={self.log4j_properties.as_uri()}",
            f"-Dkafka.logs.dir={self.data_dir}",
            "-cp",
            str(libs / "*"),  # expanded by the JVM itself (no shell involved)
        ]

    def _format_storage(self, java: str, libs: Path) -> None:
        """Format the KRaft storage dir once; later starts reuse it (and its data)."""
        meta = self.kraft_dir / "meta.properties"
        if meta.is_file():
            self._cluster_id = _read_properties(meta).get("cluster.id")
            return
        cluster_id = _new_cluster_id()
        cmd = [
            *self._java_base(java, libs),
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster_id,
            "-c",
            str(self.server_properties),
            "--ignore-formatted",
        ]
        for user, password in self.users.items():  # SCRAM credentials, stored in the metadata
            cmd += ["--add-scram", f"{SCRAM_MECHANISM}=[name={user},password={password}]"]
        result = subprocess.run(
            cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False, timeout=120
        )
        if result.returncode != 0 or not meta.is_file():
            output = _text_tail(f"{result.stdout}\n{result.stderr}")
            raise BrokerError(
                f"formatting Kafka storage in {self.kraft_dir} failed (exit "
                f"{result.returncode})\n--- StorageTool output ---\n{output}\n"
                f"--- {self.server_log} ---\n{file_tail(self.server_log)}"
            )
        self._cluster_id = _read_properties(meta).get("cluster.id", cluster_id)

    def _launch(self, java: str, libs: Path) -> None:
        try:
            self._log_offset = self.server_log.stat().st_size
        except FileNotFoundError:
            self._log_offset = 0
        cmd = [*self._java_base(java, libs), KAFKA_MAIN, str(self.server_properties)]
        setpriv = shutil.which("setpriv") if sys.platform.startswith("linux") else None
        if self.die_with_parent and setpriv is not None:
            # The kernel sends SIGTERM to the JVM when we die; survives the exec.
            cmd = [setpriv, "--pdeathsig", "TERM", "--", *cmd]
        with self.stdout_log.open("ab") as out:
            out.write(f"\n=== start {time.strftime('%Y-%m-%d %H:%M:%S')} ===\n".encode())
            out.flush()
            self._proc = subprocess.Popen(
                cmd,
                cwd=self.data_dir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own session + process group; no terminal SIGHUP
                close_fds=True,
            )
        self.pid_file.write_text(f"{self._proc.pid}\n")

    def _kill_quietly(self) -> None:
        if self._proc is not None:
            _terminate(self._proc.pid, 5.0, self._proc)
            self._proc = None
        with contextlib.suppress(FileNotFoundError):
            self.pid_file.unlink()


# --------------------------------------------------------------------------- CLI


def _check_external(bootstrap: str, timeout: float) -> int:
    """Ask the cluster of KAFKA_BOOTSTRAP_SERVERS, logged in as the settings say (SASL_SSL…)."""
    from shared.settings import load_settings

    kafka = KafkaConnection.from_settings(load_settings())
    try:
        info = wait_until_ready(kafka, timeout)
    except BrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    brokers = len(info.get("brokers", []))
    print(
        f"using {BOOTSTRAP_ENV}={bootstrap} (cluster {info.get('cluster_id')}, {brokers} broker(s))"
    )
    print(bootstrap)
    return 0


def _cmd_up(args: argparse.Namespace) -> int:
    external = os.environ.get(BOOTSTRAP_ENV)
    if external:
        return _check_external(external, args.timeout)
    kafka = LocalKafka(
        args.data_dir,
        port=args.port,
        controller_port=args.controller_port,
        startup_timeout=args.timeout,
        die_with_parent=False,  # the whole point of `up` is to outlive this command
    )
    running = kafka.running_bootstrap()
    if running is not None:
        print(
            f"Kafka already running from {kafka.data_dir} (pid {kafka.running_pid()})",
            file=sys.stderr,
        )
        print(running)
        return 0
    started = time.monotonic()
    try:
        bootstrap = kafka.start()
    except BrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"Kafka ready in {time.monotonic() - started:.1f}s (pid {kafka.pid}, data "
        f"{kafka.data_dir}, log {kafka.server_log})",
        file=sys.stderr,
    )
    print(bootstrap)
    return 0


def _cmd_down(args: argparse.Namespace) -> int:
    if os.environ.get(BOOTSTRAP_ENV):
        print(f"{BOOTSTRAP_ENV} is set: not stopping an external cluster", file=sys.stderr)
        return 0
    kafka = LocalKafka(args.data_dir)
    pid = kafka.running_pid()
    if pid is None:
        with contextlib.suppress(FileNotFoundError):
            kafka.pid_file.unlink()  # stale
        print(f"Kafka not running (data dir {kafka.data_dir})")
        return 0
    kafka.stop(args.timeout)
    print(f"Kafka stopped (pid {pid})")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    external = os.environ.get(BOOTSTRAP_ENV)
    if external:
        return _check_external(external, args.timeout)
    kafka = LocalKafka(args.data_dir)
    pid = kafka.running_pid()
    bootstrap = kafka.running_bootstrap()
    if pid is None or bootstrap is None:
        print(f"Kafka not running (data dir {kafka.data_dir})")
        return 1
    try:
        info = wait_until_ready(bootstrap, args.timeout)
    except BrokerError as exc:
        print(f"Kafka process {pid} is up but not answering at {bootstrap}: {exc}")
        return 1
    print(f"Kafka running: pid {pid}, bootstrap {bootstrap}, cluster {info.get('cluster_id')}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tools.local_kafka up|down|status``: manage the dev broker."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.local_kafka",
        description="Run a local single-node Kafka 3.9 (KRaft) broker for development. "
        f"If {BOOTSTRAP_ENV} is set, 'up' and 'status' only check that cluster.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text, timeout in (
        (
            "up",
            "start the broker in the background and wait until it is ready",
            DEFAULT_STARTUP_TIMEOUT,
        ),
        ("down", "stop the broker started by 'up' (no error if not running)", DEFAULT_STOP_TIMEOUT),
        ("status", "report whether the broker runs and answers", 10.0),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument(
            "--data-dir",
            type=Path,
            default=default_data_dir(),
            help="broker data dir (default: %(default)s)",
        )
        p.add_argument(
            "--timeout", type=float, default=timeout, help="seconds to wait (default: %(default)s)"
        )
        if name == "up":
            p.add_argument(
                "--port",
                type=int,
                default=DEFAULT_PORT,
                help="PLAINTEXT port on 127.0.0.1 (default: %(default)s)",
            )
            p.add_argument(
                "--controller-port",
                type=int,
                default=None,
                help="KRaft controller port (default: a free port)",
            )
    args = parser.parse_args(argv)
    # kafka-python logs every refused connection while we poll; that is expected noise.
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    handlers = {"up": _cmd_up, "down": _cmd_down, "status": _cmd_status}
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
