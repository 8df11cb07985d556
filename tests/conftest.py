"""Shared pytest fixtures.

Only fixtures that several test packages need live here. Nothing is autouse: unit tests
must never start a broker or a database server, so one exists only for tests that ask.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.postgres import LocalPostgres, PostgresError
from tools.local_kafka import BOOTSTRAP_ENV, LocalKafka

NewDatabase = Callable[[str], str]
"""``new_database_url``'s type: backend name -> URL of a new, empty database."""


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap address of a real Kafka broker for the whole test session.

    Uses the cluster in ``KAFKA_BOOTSTRAP_SERVERS`` when set (CI or a dev broker from
    ``make kafka-up``); otherwise starts a throwaway single-node KRaft broker on free
    ports in a temp dir (a few seconds) and stops it when the session ends.
    """
    external = os.environ.get(BOOTSTRAP_ENV)
    if external:
        yield external
        return
    with LocalKafka(tmp_path_factory.mktemp("kafka")) as kafka:
        yield kafka.bootstrap


@pytest.fixture(scope="session")
def postgres() -> Iterator[LocalPostgres]:
    """A real PostgreSQL server for the whole test session (about a second to start).

    A throwaway cluster on a free port of 127.0.0.1, in a temp dir the ``postgres`` OS
    user can reach (not pytest's tmp dir: that is closed to other users when we are
    root); stopped and removed when the session ends. Missing server programs fail the
    tests that need it rather than skip them: a skipped backend would look like a pass.
    """
    server = LocalPostgres()
    try:
        server.start()
    except PostgresError as exc:  # the message says it all; a traceback would be noise
        message = f"cannot start PostgreSQL for the tests: {exc}"
        raise pytest.fail.Exception(message, pytrace=False) from None
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def new_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NewDatabase]:
    """Factory: ``new_database_url("sqlite" | "postgresql")`` -> URL of a new, empty database.

    Every call gives a database of its own (a file in the test's tmp dir, or a database
    on the session's server, dropped after the test), so tests stay independent. The
    server is started only when a test first asks for ``"postgresql"``, so SQLite-only
    runs never need it. The drop closes connections a test left open (``WITH (FORCE)``).
    """
    created: list[str] = []

    def new(backend: str) -> str:
        name = f"t_{uuid.uuid4().hex}"
        if backend == "sqlite":
            return f"sqlite+aiosqlite:///{tmp_path / f'{name}.db'}"
        if backend == "postgresql":
            server: LocalPostgres = request.getfixturevalue("postgres")
            url = server.create_database(name)
            created.append(name)
            return url
        raise ValueError(f"unknown database backend {backend!r}")

    yield new
    if created:
        server: LocalPostgres = request.getfixturevalue("postgres")
        for name in created:
            server.drop_database(name)
