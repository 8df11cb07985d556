"""The local PostgreSQL server the tests run on: separate databases, clean stop, clear failures."""

from __future__ import annotations

import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.support.postgres import HOST, LocalPostgres, PostgresError


def alive(pid: int) -> bool:
    """Whether ``pid`` is a process that has not exited (a zombie counts as exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


async def test_each_database_starts_empty_and_stays_apart(
    new_database_url: Callable[[str], str],
) -> None:
    first = create_async_engine(new_database_url("postgresql"))
    second = create_async_engine(new_database_url("postgresql"))
    try:
        async with first.begin() as conn:
            await conn.execute(text("CREATE TABLE only_here (id int)"))
        async with second.connect() as conn:
            found = await conn.scalar(text("SELECT to_regclass('only_here') IS NOT NULL"))
        assert found is False
    finally:
        await first.dispose()
        await second.dispose()


def test_database_names_are_plain_identifiers_never_quoted_input() -> None:
    with pytest.raises(ValueError, match="not a lower-case identifier"):
        LocalPostgres().create_database('t"; DROP DATABASE postgres; --')


def test_a_stopped_server_leaves_no_process_and_no_dir() -> None:
    server = LocalPostgres()
    server.start()
    pid, cluster_dir = server.pid, server.cluster_dir
    assert pid is not None and alive(pid) and cluster_dir.is_dir()
    server.stop()
    assert not alive(pid)
    assert not cluster_dir.exists()
    server.stop()  # a second stop is harmless


@pytest.fixture
def own_temp_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private system temp dir, so a test can see exactly what a server left in it.

    Not pytest's ``tmp_path``: as root the server runs as ``postgres``, which cannot
    enter pytest's mode-0700 base dir.
    """
    path = Path(tempfile.mkdtemp(prefix="tradelane-test-"))
    path.chmod(0o755)
    monkeypatch.setattr(tempfile, "tempdir", str(path))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_a_server_that_cannot_start_fails_with_its_log_and_leaves_nothing(
    own_temp_dir: Path,
) -> None:
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        server = LocalPostgres(port=taken.getsockname()[1])
        with pytest.raises(PostgresError, match="Address already in use") as failure:
            server.start()
    assert "--- server log" in str(failure.value)  # with the log: the dir is gone by now
    assert server.pid is None
    assert list(own_temp_dir.iterdir()) == []
