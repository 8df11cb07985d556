"""`python -m tools.bench.statement_cost` at a tiny scale on both backends, so it keeps working.

It asserts that every path ran its transactions in full (each read found its
row, each insert wrote its rows) and that the table names every path; it
asserts no timing.
"""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import NewDatabase
from tools.bench.statement_cost import ORDERS, PATHS, SEEDED, measure, table

TRANSACTIONS, READS, ROWS = 5, 2, 3
RUNS_PER_PATH = 1 + 2 * TRANSACTIONS
"""A warm-up transaction, then two timed rounds."""


async def _rows(url: str) -> int:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            counted = await connection.execute(select(func.count()).select_from(ORDERS))
            return int(counted.scalar_one())
    finally:
        await engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_every_path_runs_the_same_transactions_and_is_reported(
    backend: str, new_database_url: NewDatabase
) -> None:
    url = new_database_url(backend)

    costs = asyncio.run(measure(url, TRANSACTIONS, READS, ROWS))

    assert [cost.path for cost in costs] == list(PATHS)
    assert all(cost.cpu_us > 0 and cost.wall_us > 0 for cost in costs)
    assert asyncio.run(_rows(url)) == SEEDED + len(PATHS) * RUNS_PER_PATH * ROWS
    rows = table(backend, costs, READS, ROWS).splitlines()[3:]
    assert [row.split(" | ")[0].removeprefix("| ") for row in rows] == list(PATHS)
