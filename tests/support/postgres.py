"""Run a real, throwaway PostgreSQL server for tests and CI, from the machine's own install.

Why this exists: each service's database is chosen by ``DATABASE_URL``, SQLite by default,
and the stores must behave the same on PostgreSQL. SQLite is forgiving where PostgreSQL is
not (string lengths, time zones, types), so only a real server proves the stores portable.
Like ``tools/local_kafka.py`` for Kafka, no Docker is needed: Debian's ``postgresql`` package
ships ``initdb`` and ``postgres`` under ``/usr/lib/postgresql/<version>/bin``, and we run
them directly as a subprocess.

* ``tests/conftest.py`` starts one server per test session in a throwaway dir and gives
  each test its own database (``create_database``);
* ``.ci/run`` apt-installs ``postgresql`` when no ``initdb`` is found.

The cluster is ours alone: a free port on 127.0.0.1 (never the 5432 that Debian's own
``main`` cluster may hold), its unix socket inside its data dir, trust authentication for
the superuser ``tradelane``, and ``fsync=off`` since its data is thrown away. PostgreSQL
refuses to run as root, so when we are root the server runs as the ``postgres`` OS user.
Readiness is judged by a real login and query (asyncpg), never by a fixed sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import logging
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final, TypeVar

from tools.local_kafka import file_tail, free_port

__all__ = [
    "HOST",
    "SUPERUSER",
    "LocalPostgres",
    "PgBinaries",
    "PostgresError",
    "find_binaries",
]

log = logging.getLogger(__name__)

HOST: Final = "127.0.0.1"
"""Listen on loopback only: a server with trust authentication must not be reachable."""

SUPERUSER: Final = "tradelane"
"""The cluster's superuser (``initdb -U``); with trust auth it needs no password."""

OS_USER: Final = "postgres"
"""Who runs the server when we are root (created by Debian's postgresql package)."""

DEBIAN_BIN_GLOB: Final = "/usr/lib/postgresql/*/bin"
INSTALL_HINT: Final = (
    "install PostgreSQL's server binaries (Debian/Ubuntu: apt-get install postgresql; "
    ".ci/run does this on CI)"
)

DEFAULT_STARTUP_TIMEOUT: Final = 60.0
DEFAULT_STOP_TIMEOUT: Final = 30.0
LOG_TAIL_LINES: Final = 40
PROBE_TIMEOUT: Final = 5.0
"""One login attempt's limit, after which we try again (until the startup timeout)."""

# Layout inside the cluster dir: PGDATA (initdb's) and the server's stderr next to it.
PGDATA: Final = "data"
SERVER_LOG: Final = "server.log"

# A database name we create: lower-case identifier, so it never needs quoting rules.
DB_NAME: Final = re.compile(r"[a-z_][a-z0-9_]{0,62}")

T = TypeVar("T")


class PostgresError(RuntimeError):
    """The local PostgreSQL server could not be provided.

    The message carries the cause and, once the server was launched, its log tail, so a
    failure can be diagnosed without looking for files.
    """


# --------------------------------------------------------------------------- binaries


@dataclass(frozen=True)
class PgBinaries:
    """One PostgreSQL installation's server programs (all from the same version)."""

    bin_dir: Path

    @property
    def initdb(self) -> Path:
        return self.bin_dir / "initdb"

    @property
    def pg_ctl(self) -> Path:
        return self.bin_dir / "pg_ctl"

    @property
    def postgres(self) -> Path:
        return self.bin_dir / "postgres"

    def complete(self) -> bool:
        """Whether the dir holds all three programs (Debian's /usr/bin has only wrappers)."""
        return all(os.access(p, os.X_OK) for p in (self.initdb, self.pg_ctl, self.postgres))


def _version_key(bin_dir: Path) -> tuple[int, ...]:
    """``/usr/lib/postgresql/15/bin`` -> (15,), so that 15 sorts above 9.6."""
    parts = bin_dir.parent.name.split(".")
    return tuple(int(p) for p in parts) if all(p.isdigit() for p in parts) else (-1,)


def find_binaries() -> PgBinaries | None:
    """The PostgreSQL server programs: ``initdb`` on PATH, else Debian's newest version.

    PATH wins so that a developer's own build or Homebrew install is used as is; Debian
    keeps the server programs off PATH, under ``/usr/lib/postgresql/<version>/bin``.
    None if neither has a complete set (initdb, pg_ctl, postgres).
    """
    candidates: list[Path] = []
    on_path = shutil.which("initdb")
    if on_path is not None:
        candidates.append(Path(on_path).resolve().parent)
    debian = sorted(map(Path, glob.glob(DEBIAN_BIN_GLOB)), key=_version_key, reverse=True)
    candidates.extend(debian)
    for bin_dir in candidates:
        found = PgBinaries(bin_dir)
        if found.complete():
            return found
    return None


# --------------------------------------------------------------------------- OS user


def _server_user() -> pwd.struct_passwd | None:
    """The account to run initdb and postgres as: ``postgres`` if we are root, else us.

    Why: postgres refuses to start as root (a compromised server must not own the box).
    """
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(OS_USER)
    except KeyError:
        raise PostgresError(
            f"running as root, and PostgreSQL refuses to run as root, but there is no "
            f"'{OS_USER}' OS user to run it as; {INSTALL_HINT} (the package creates the user)"
        ) from None


def _as_user(user: pwd.struct_passwd | None) -> dict[str, Any]:
    """subprocess keyword arguments that drop to ``user`` in the child (none for us)."""
    if user is None:
        return {}
    return {
        "user": user.pw_uid,
        "group": user.pw_gid,
        "extra_groups": os.getgrouplist(user.pw_name, user.pw_gid),
    }


def _child_env() -> dict[str, str]:
    """Our environment with a locale every system has: initdb fails on a missing one."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "PG"))}
    env.update(LANG="C", LC_ALL="C")
    return env


def _usable_by(path: Path, user: pwd.struct_passwd | None) -> bool:
    """Whether ``user`` can reach and write ``path``, asked of the kernel itself.

    Why ask by running ``test`` as that user: a parent dir of mode 0700 (pytest's
    ``/tmp/pytest-of-root`` is one) blocks the server even if ``path`` is its own, and
    only the kernel knows about ACLs and the like.
    """
    if user is None:
        return os.access(path, os.W_OK | os.X_OK)
    result = subprocess.run(
        ["test", "-w", str(path), "-a", "-x", str(path)],
        cwd="/",
        env=_child_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
        **_as_user(user),
    )
    return result.returncode == 0


# --------------------------------------------------------------------------- helpers


def _run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on a fresh event loop in a helper thread.

    Why a thread: callers may already be inside a running loop (an async fixture), where
    ``asyncio.run`` is refused; a private loop also keeps asyncpg's connection off theirs.
    """
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:  # handed back to the caller's thread below
            box["error"] = exc

    thread = threading.Thread(target=target, name="tradelane-postgres", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    value: T = box["value"]
    return value


def _checked_name(name: str) -> str:
    """``name`` if it is a plain lower-case identifier (safe to quote as is), else ValueError."""
    if not DB_NAME.fullmatch(name):
        raise ValueError(f"database name {name!r} is not a lower-case identifier")
    return name


def _group_alive(pgid: int) -> bool:
    """Whether any process of the group still exists (signal 0 only checks)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --------------------------------------------------------------------------- server


class LocalPostgres:
    """A PostgreSQL server of our own in a subprocess, on a free port of 127.0.0.1.

    Usage::

        with LocalPostgres() as pg:                 # throwaway dir, free port
            url = pg.create_database("t_1234")      # postgresql+asyncpg://...

    ``data_dir=None`` (the default, meant for tests) makes a fresh dir that the server's
    OS user can reach and removes it on ``stop()``; a given ``data_dir`` is kept and
    reused (initdb runs only once). ``port=None`` picks a free port at ``start()``.

    The server runs in its own process group, so ``stop()`` can take all of it down, and
    (Linux, via ``setpriv --pdeathsig``) gets a fast-shutdown signal from the kernel when
    the thread that started it dies, so a crashed test run leaves no server behind.
    """

    def __init__(
        self,
        data_dir: Path | str | None = None,
        port: int | None = None,
        *,
        startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
        durable: bool = False,
    ) -> None:
        self._given_dir = Path(data_dir).resolve() if data_dir is not None else None
        self._fixed_port = port
        self.startup_timeout = startup_timeout
        self.durable = durable
        self._dir: Path | None = self._given_dir
        self._port: int | None = port
        self._proc: subprocess.Popen[bytes] | None = None
        self.started_in: float | None = None
        """Seconds the last ``start()`` took (initdb included), for reports."""

    # ---- paths and state ----------------------------------------------------------

    @property
    def cluster_dir(self) -> Path:
        """The dir holding PGDATA and the server log."""
        if self._dir is None:
            raise PostgresError("no cluster dir yet: call start() first")
        return self._dir

    @property
    def pgdata(self) -> Path:
        return self.cluster_dir / PGDATA

    @property
    def server_log(self) -> Path:
        """The server's stderr: startup errors and warnings land here."""
        return self.cluster_dir / SERVER_LOG

    @property
    def port(self) -> int:
        if self._port is None:
            raise PostgresError("port not chosen yet: call start() first")
        return self._port

    @property
    def pid(self) -> int | None:
        """Pid of the running postmaster, if we started one and it still runs."""
        if self._proc is None or self._proc.poll() is not None:
            return None
        return self._proc.pid

    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy URL of ``database`` on this server, as the superuser (no password)."""
        return f"postgresql+asyncpg://{SUPERUSER}@{HOST}:{self.port}/{database}"

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        tail = file_tail(self.server_log, lines)
        return f"--- {self.server_log} (last {lines} lines) ---\n{tail}"

    # ---- lifecycle ----------------------------------------------------------------

    def start(self) -> None:
        """Create the cluster (first time only), launch the server and wait until it answers.

        Raises ``PostgresError`` (with the log tail once there is one) if the programs are
        missing, the server exits, or it does not answer within ``startup_timeout``.
        Leaves nothing running and no throwaway dir behind when it fails.
        """
        if self.pid is not None:
            return
        started = time.monotonic()
        binaries = find_binaries()
        if binaries is None:
            raise PostgresError(
                f"no PostgreSQL server programs (initdb, pg_ctl, postgres) on PATH or in "
                f"{DEBIAN_BIN_GLOB}; {INSTALL_HINT}"
            )
        user = _server_user()
        try:
            self._prepare_dir(user)
            if not (self.pgdata / "PG_VERSION").is_file():
                self._initdb(binaries, user)
            self._launch_until_ready(binaries, user)
        except BaseException:
            self.stop(timeout=5.0)
            raise
        self.started_in = time.monotonic() - started
        log.debug("PostgreSQL ready at %s in %.1fs", self.url(), self.started_in)

    def stop(self, timeout: float = DEFAULT_STOP_TIMEOUT) -> None:
        """Stop the server (fast shutdown, then immediate, then SIGKILL) and clean up.

        Removes the cluster dir if we made it (``data_dir=None``). No error if nothing runs.
        """
        if self._proc is not None:
            self._terminate(self._proc, timeout)
            self._proc = None
        if self._given_dir is None and self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            if self._dir.exists():
                log.warning("could not remove PostgreSQL dir %s", self._dir)
            self._dir = None
        if self._fixed_port is None:
            self._port = None

    def create_database(self, name: str) -> str:
        """Create an empty database and return its URL: one per test keeps tests apart.

        ``name`` must be a lower-case identifier (``t_<hex>``), so no quoting is involved.
        """
        _run_sync(self._execute(f'CREATE DATABASE "{_checked_name(name)}"'))
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, closing any connection a test left open; no error if absent.

        Why bother on a throwaway server: each database copies ``template1`` (about 8 MB),
        so a long session that kept them all would fill a small temp dir.
        """
        statement = f'DROP DATABASE IF EXISTS "{_checked_name(name)}" WITH (FORCE)'
        _run_sync(self._execute(statement))

    def __enter__(self) -> LocalPostgres:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ---- internals ----------------------------------------------------------------

    def _prepare_dir(self, user: pwd.struct_passwd | None) -> None:
        """Make the cluster dir, owned by the server's user, and check it can get there."""
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="tradelane-pg-")).resolve()
        self._dir.mkdir(parents=True, exist_ok=True)
        if user is not None:
            os.chown(self._dir, user.pw_uid, user.pw_gid)
        if not _usable_by(self._dir, user):
            who = user.pw_name if user is not None else "this user"
            raise PostgresError(
                f"{who} cannot reach or write {self._dir}: a parent dir is closed to it "
                "(pytest's /tmp/pytest-of-root is mode 0700); use data_dir=None for a "
                "throwaway dir under the system temp dir"
            )

    def _initdb(self, binaries: PgBinaries, user: pwd.struct_passwd | None) -> None:
        """A fresh cluster: UTF-8, C locale (same sorting everywhere), trust auth."""
        cmd = [
            str(binaries.initdb),
            "-D",
            str(self.pgdata),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
        ]
        if not self.durable:
            cmd.append("--no-sync")  # the data is thrown away: skip flushing to disk
        result = subprocess.run(
            cmd,
            cwd=self.cluster_dir,
            env=_child_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
            **_as_user(user),
        )
        if result.returncode != 0:
            output = "\n".join(f"{result.stdout}\n{result.stderr}".strip().splitlines()[-30:])
            raise PostgresError(
                f"initdb failed (exit {result.returncode}) for {self.pgdata}\n"
                f"--- initdb output (tail) ---\n{output}"
            )

    def _server_args(self) -> list[str]:
        settings = {
            "listen_addresses": HOST,
            "port": str(self.port),
            "unix_socket_directories": str(self.pgdata),
            "timezone": "UTC",
            "log_timezone": "UTC",
        }
        if not self.durable:
            settings.update(fsync="off", synchronous_commit="off", full_page_writes="off")
        args: list[str] = []
        for key, value in settings.items():
            args += ["-c", f"{key}={value}"]
        return args

    def _launch_until_ready(self, binaries: PgBinaries, user: pwd.struct_passwd | None) -> None:
        """Launch and wait; with an automatic port, retry if another process took it."""
        attempts = 3 if self._fixed_port is None else 1
        for attempt in range(1, attempts + 1):
            if self._fixed_port is None:
                self._port = free_port(HOST)
            log_offset = self._launch(binaries, user)
            try:
                self._wait_until_ready(log_offset)
                return
            except PostgresError as exc:
                assert self._proc is not None
                self._terminate(self._proc, 5.0)
                self._proc = None
                if "Address already in use" in str(exc) and attempt < attempts:
                    log.warning("PostgreSQL lost a port race; retrying with a new port")
                    continue
                raise

    def _launch(self, binaries: PgBinaries, user: pwd.struct_passwd | None) -> int:
        """Start ``postgres`` itself (not ``pg_ctl start``, which detaches it from us).

        Why directly: as our child we see at once if it exits, and it can be told to stop
        when we die. Returns the log size before launch: where this run's lines start.
        """
        cmd = [str(binaries.postgres), "-D", str(self.pgdata), *self._server_args()]
        setpriv = shutil.which("setpriv") if sys.platform.startswith("linux") else None
        if setpriv is not None:
            # SIGINT = fast shutdown: the kernel sends it when the starting thread dies.
            cmd = [setpriv, "--pdeathsig", "INT", "--", *cmd]
        offset = self.server_log.stat().st_size if self.server_log.exists() else 0
        with self.server_log.open("ab") as out:
            self._proc = subprocess.Popen(
                cmd,
                cwd=self.cluster_dir,
                env=_child_env(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: stop() takes all backends
                close_fds=True,
                **_as_user(user),
            )
        return offset

    def _wait_until_ready(self, log_offset: int) -> None:
        """Poll a real login until it works, the server exits, or the timeout passes.

        Why a login and not the port: postgres opens its socket before it has finished
        recovery and answers "the database system is starting up" until it can serve.
        """
        proc = self._proc
        assert proc is not None
        deadline = time.monotonic() + self.startup_timeout
        error = _run_sync(self._poll_login(proc, deadline))
        if error is not None:
            raise PostgresError(
                f"PostgreSQL at {HOST}:{self.port} {error}\n{self._diagnostics(log_offset)}"
            )

    async def _poll_login(self, proc: subprocess.Popen[bytes], deadline: float) -> str | None:
        """None once we logged in to *our* server, else why not (exit or timeout)."""
        last_error = "no attempt made"
        while True:
            if proc.poll() is not None:
                return f"exited with code {proc.returncode} before it accepted connections"
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return f"did not accept connections within {self.startup_timeout:.0f}s " + (
                    f"(last error: {last_error})"
                )
            error = await self._login_once(proc, min(remaining, PROBE_TIMEOUT))
            if error is None:
                return None
            last_error = error
            await asyncio.sleep(0.05)

    async def _login_once(self, proc: subprocess.Popen[bytes], timeout: float) -> str | None:
        """One login and ``SHOW data_directory``: None if it is our server, else the error.

        Gives up as soon as the server exits: a login to a port that some other process
        holds (our server then fails to bind) would otherwise wait out its whole timeout.
        """
        import asyncpg  # only needed while starting and creating databases

        attempt = asyncio.ensure_future(self._fetch("SHOW data_directory", timeout=timeout))
        while not attempt.done() and proc.poll() is None:
            await asyncio.wait({attempt}, timeout=0.05)
        if not attempt.done():
            attempt.cancel()
            with contextlib.suppress(BaseException):
                await attempt
            return "exited during a login attempt"
        try:
            data_dir = attempt.result()
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            return f"{type(exc).__name__}: {exc}"
        if Path(str(data_dir)).resolve() != self.pgdata.resolve():
            return f"a server of {data_dir} answers on our port"
        return None

    async def _fetch(self, query: str, timeout: float = 10.0) -> Any:
        """One value from the ``postgres`` database over TCP, as the real clients connect."""
        import asyncpg

        conn = await asyncpg.connect(
            host=HOST, port=self.port, user=SUPERUSER, database="postgres", timeout=timeout
        )
        try:
            return await conn.fetchval(query, timeout=timeout)
        finally:
            await conn.close()

    async def _execute(self, statement: str) -> None:
        await self._fetch(statement)

    def _diagnostics(self, log_offset: int) -> str:
        """The server log written since ``log_offset``: this start's lines, with the cause.

        Why not the plain tail: a reused data dir's log also holds earlier runs.
        """
        lines: list[str] = []
        with contextlib.suppress(FileNotFoundError), self.server_log.open("rb") as fh:
            fh.seek(log_offset)
            lines = fh.read().decode("utf-8", errors="replace").splitlines()
        tail = "\n".join(lines[-LOG_TAIL_LINES:]) or "(nothing logged)"
        where = "throwaway dir, removed" if self._given_dir is None else self.server_log
        return f"--- server log ({where}; this start, last {LOG_TAIL_LINES} lines) ---\n{tail}"

    @staticmethod
    def _terminate(proc: subprocess.Popen[bytes], timeout: float) -> None:
        """SIGINT (fast shutdown), then SIGQUIT (immediate), then SIGKILL to the group.

        Fast shutdown disconnects clients and checkpoints; waiting for it matters because
        the dir is removed next, which must not race a backend still writing.
        """
        steps = ((signal.SIGINT, timeout), (signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0))
        for sig, wait in steps:
            if proc.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                if sig is signal.SIGKILL:
                    os.killpg(proc.pid, sig)
                else:
                    proc.send_signal(sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(wait)
        for _ in _until(5.0):  # backends exit right after the postmaster; wait for them
            if not _group_alive(proc.pid):
                return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def _until(timeout: float, interval: float = 0.05) -> Iterator[None]:
    """Yield every ``interval`` s until ``timeout`` s have passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        yield
        time.sleep(interval)


async def drop_connections_to(url: str) -> int:
    """What a restart does to the pools of a database's clients: every connection to it but
    the one asking is terminated; how many were."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            dropped = await connection.scalar(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
    finally:
        await engine.dispose()
    return int(dropped or 0)
