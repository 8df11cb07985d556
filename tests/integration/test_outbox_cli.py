"""`tradelane outbox` on a service's real SQLite database: ops see, retry and drop parked rows."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import MetaData

from cli.main import main
from shared.contract import OrderState, OrderStatusChanged
from shared.db import ServiceDatabase
from shared.topics import ORDERS_STATUS, TopicNames


async def park_two_rows(url: str) -> None:
    db = ServiceDatabase(url, MetaData(), TopicNames())
    await db.create_tables()
    async with db.transaction() as tx:
        for order_id in ("o-1", "o-2"):
            status = OrderStatusChanged.new(
                order_id=order_id, status=OrderState.RECEIVED, reported_by="t"
            )
            await tx.publish(ORDERS_STATUS, status)
    async with db.sending(10) as batch:
        for row in batch.rows:
            batch.park(row, "MessageSizeTooLargeError: too large")
    await db.dispose()


def test_ops_list_retry_and_drop_parked_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'catalog.db'}"
    asyncio.run(park_two_rows(url))
    monkeypatch.setenv("DATABASE_URL", url)

    assert main(["outbox", "list", "--service", "catalog"]) == 0
    listed = capsys.readouterr().out
    assert "2 parked row(s) in catalog's outbox" in listed
    assert "orders.status" in listed and "MessageSizeTooLargeError" in listed
    first_id = int(listed.splitlines()[0].split("\t")[0])

    assert main(["outbox", "retry", str(first_id), "--service", "catalog"]) == 0
    assert "1 parked row(s) put back in line" in capsys.readouterr().out
    assert main(["outbox", "drop", "--all", "--service", "catalog"]) == 0
    assert "1 parked row(s) dropped" in capsys.readouterr().out
    assert main(["outbox", "list", "--service", "catalog"]) == 0
    assert "0 parked row(s)" in capsys.readouterr().out
