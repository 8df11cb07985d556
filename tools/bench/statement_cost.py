"""``python -m tools.bench.statement_cost``: what a handler's statements cost the CPU, by path.

    python -m tools.bench.statement_cost [--backend postgres|sqlite|both]
                                         [--transactions N] [--reads R] [--rows W]

At low rates each order is a batch of its own, and a service's CPU goes to a
dozen statements per batch, each paying its way through SQLAlchemy. Whether
moving the hot statements from the ORM session to Core would pay for
rewriting the stores is a question of how much each layer costs per
statement, so this measures the same transaction four ways: `R` reads by
primary key, then `W` new rows written in one insert, as a handler reads
ahead and then writes its rows together:

- ``orm``: an ORM session reading mapped rows and adding new ones (flushed at commit);
- ``session core``: the same session executing Core statements;
- ``core``: Core statements on an engine connection, no session;
- ``driver``: the database driver alone (asyncpg, or aiosqlite), the floor.

Prints CPU and wall microseconds per transaction, and CPU per statement
(the `R + 1` statements, BEGIN and COMMIT shared among them). CPU is this
process's, all its threads (aiosqlite runs SQLite in a thread of its own);
the database server's is not counted.
PostgreSQL is a throwaway local server with fsync on, as in `make bench`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import aiosqlite
import asyncpg
from sqlalchemy import String, Table, bindparam, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import PREPARED_STATEMENTS

PATHS = ("orm", "session core", "core", "driver")
SEEDED = 200
"""Rows present before the run: what the reads find."""


class _Base(DeclarativeBase):
    pass


class OrderRow(_Base):
    """A row shaped like a service's own order record."""

    __tablename__ = "orders"
    order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(30))


ORDERS = cast(Table, OrderRow.__table__)
ORM_READ = select(OrderRow).where(OrderRow.order_id == bindparam("order_id"))
CORE_READ = select(ORDERS).where(ORDERS.c.order_id == bindparam("order_id"))
CORE_INSERT = insert(ORDERS)
PREPARED_STATEMENT_ARGS = {"prepared_statement_cache_size": PREPARED_STATEMENTS}
"""As the services connect: every statement here stays prepared."""
DRIVER_READ = "SELECT order_id, account_id, state FROM orders WHERE order_id = {}"
DRIVER_INSERT = "INSERT INTO orders (order_id, account_id, state) VALUES ({}, {}, {})"


@dataclass(frozen=True)
class Cost:
    path: str
    cpu_us: float
    wall_us: float


Transaction = Callable[[], Awaitable[None]]


class Paths:
    """The four ways to run one transaction of `reads` reads and an insert of `inserts` rows."""

    def __init__(self, engine: AsyncEngine, reads: int, inserts: int) -> None:
        self.engine = engine
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)
        self.reads = reads
        self.inserts = inserts
        self.new_ids = (f"new-{n}" for n in itertools.count())
        self.driver: Transaction | None = None
        """Set once the driver's own connection is open (`_postgres_driver`, `_sqlite_driver`)."""

    def read_ids(self) -> list[str]:
        """Keys of seeded rows: every read finds its row."""
        return [f"seed-{n % SEEDED}" for n in range(self.reads)]

    def new_rows(self) -> list[dict[str, str]]:
        """Rows never written before, so no insert conflicts."""
        return [
            {"order_id": next(self.new_ids), "account_id": "acct", "state": "priced"}
            for _ in range(self.inserts)
        ]

    async def orm(self) -> None:
        async with self.sessions() as session, session.begin():
            for order_id in self.read_ids():
                (await session.scalars(ORM_READ, {"order_id": order_id})).one()
            session.add_all(OrderRow(**row) for row in self.new_rows())

    async def session_core(self) -> None:
        async with self.sessions() as session, session.begin():
            for order_id in self.read_ids():
                (await session.execute(CORE_READ, {"order_id": order_id})).one()
            await session.execute(CORE_INSERT, self.new_rows())

    async def core(self) -> None:
        async with self.engine.begin() as connection:
            for order_id in self.read_ids():
                (await connection.execute(CORE_READ, {"order_id": order_id})).one()
            await connection.execute(CORE_INSERT, self.new_rows())

    def by_name(self) -> dict[str, Transaction]:
        paths: dict[str, Transaction] = {
            "orm": self.orm,
            "session core": self.session_core,
            "core": self.core,
        }
        if self.driver is not None:
            paths["driver"] = self.driver
        return paths


async def _seed(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.run_sync(_Base.metadata.create_all)
        rows = [
            {"order_id": f"seed-{n}", "account_id": "acct", "state": "priced"}
            for n in range(SEEDED)
        ]
        await connection.execute(CORE_INSERT, rows)


def _found(row: object, order_id: str) -> None:
    """The driver's read found its row, as the ORM's and Core's `.one()` insist."""
    if row is None:
        raise LookupError(f"seeded row {order_id} not found")


@contextlib.asynccontextmanager
async def _postgres_driver(url: str, paths: Paths) -> AsyncIterator[Transaction]:
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    read, write = DRIVER_READ.format("$1"), DRIVER_INSERT.format("$1", "$2", "$3")

    async def transaction() -> None:
        async with connection.transaction():
            for order_id in paths.read_ids():
                _found(await connection.fetchrow(read, order_id), order_id)
            await connection.executemany(write, [tuple(row.values()) for row in paths.new_rows()])

    try:
        yield transaction
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def _sqlite_driver(path: Path, paths: Paths) -> AsyncIterator[Transaction]:
    connection = await aiosqlite.connect(path, isolation_level=None)
    read, write = DRIVER_READ.format("?"), DRIVER_INSERT.format("?", "?", "?")

    async def transaction() -> None:
        await connection.execute("BEGIN IMMEDIATE")
        for order_id in paths.read_ids():
            async with connection.execute(read, (order_id,)) as cursor:
                _found(await cursor.fetchone(), order_id)
        await connection.executemany(write, [tuple(row.values()) for row in paths.new_rows()])
        await connection.execute("COMMIT")

    try:
        yield transaction
    finally:
        await connection.close()


async def _timed(transaction: Transaction, count: int) -> tuple[float, float]:
    """CPU and wall microseconds per transaction over `count` of them."""
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(count):
        await transaction()
    per = 1e6 / count
    return (time.process_time() - cpu) * per, (time.perf_counter() - wall) * per


async def measure(url: str, transactions: int, reads: int, inserts: int) -> list[Cost]:
    """Each path, warmed up, then timed twice in turn (the machine's drift falls on
    every path alike); a path's cost is the lower of its two rounds."""
    options = {} if url.startswith("sqlite") else {"connect_args": PREPARED_STATEMENT_ARGS}
    engine = create_async_engine(url, **options)
    try:
        await _seed(engine)
        paths = Paths(engine, reads, inserts)
        driver = (
            _sqlite_driver(Path(url.split("///", 1)[1]), paths)
            if url.startswith("sqlite")
            else _postgres_driver(url, paths)
        )
        async with driver as paths.driver:
            chosen = paths.by_name()
            for transaction in chosen.values():
                await _timed(transaction, max(transactions // 10, 1))
            rounds = [
                {name: await _timed(run, transactions) for name, run in chosen.items()}
                for _ in range(2)
            ]
        return [Cost(name, *min(round_[name] for round_ in rounds)) for name in chosen]
    finally:
        await engine.dispose()


@contextlib.contextmanager
def database(backend: str) -> Iterator[str]:
    """A fresh database of `backend`: a SQLite file, or a durable throwaway PostgreSQL."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="statement-cost-") as directory:
            yield f"sqlite+aiosqlite:///{directory}/cost.db"
        return
    from tests.support.postgres import LocalPostgres

    with LocalPostgres(durable=True) as server:
        yield server.create_database("statement_cost")


def table(backend: str, costs: list[Cost], reads: int, inserts: int) -> str:
    """A markdown table, as docs/performance.md quotes it."""
    floor = next((cost.cpu_us for cost in costs if cost.path == "driver"), None)
    lines = [
        f"{backend}: a transaction of {reads} reads and an insert of {inserts} rows, µs",
        "| path | CPU per transaction | wall | CPU per statement | CPU / driver's |",
        "|---|---|---|---|---|",
    ]
    for cost in costs:
        ratio = f"{cost.cpu_us / floor:.1f}" if floor else "-"
        per_statement = f"{cost.cpu_us / (reads + 1):.0f}"
        lines.append(
            f"| {cost.path} | {cost.cpu_us:.0f} | {cost.wall_us:.0f} | {per_statement} | {ratio} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--backend", choices=("postgres", "sqlite", "both"), default="both")
    parser.add_argument("--transactions", type=int, default=400)
    parser.add_argument("--reads", type=int, default=5)
    parser.add_argument("--rows", type=int, default=3)
    args = parser.parse_args(argv)
    backends = ("postgres", "sqlite") if args.backend == "both" else (args.backend,)
    for backend in backends:
        with database(backend) as url:
            costs = asyncio.run(measure(url, args.transactions, args.reads, args.rows))
        print(table(backend, costs, args.reads, args.rows), flush=True)


if __name__ == "__main__":
    main()
