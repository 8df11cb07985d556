"""The SQL statements a test's databases are sent: to show what a change saves, by count."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import event
from sqlalchemy.engine import Engine

from shared.db import ServiceDatabase


def every(statement: str) -> bool:
    return True


def reading(*tables: str) -> Callable[[str], bool]:
    """A `SELECT` from one of `tables`."""
    return lambda statement: (
        statement.lstrip().upper().startswith("SELECT")
        and any(f"FROM {table}" in statement for table in tables)
    )


@contextmanager
def statements_sent(
    *databases: ServiceDatabase, matching: Callable[[str], bool] = every
) -> Iterator[list[str]]:
    """The statements `matching` that these databases are sent while the block runs."""
    sent: list[str] = []

    def note(_connection: object, _cursor: object, statement: str, *_: object) -> None:
        if matching(statement):
            sent.append(statement)

    engines: list[Engine] = [database.engine.sync_engine for database in databases]
    for engine in engines:
        event.listen(engine, "before_cursor_execute", note)
    try:
        yield sent
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", note)
