"""A service's `/health` problems, from a service built in-process (no broker needed)."""

from __future__ import annotations

from pathlib import Path

from services.pricing.app import create_service
from shared.contract import OrderState, OrderStatusChanged
from shared.settings import Settings
from shared.topics import ORDERS_STATUS


async def test_a_parked_outbox_row_is_a_health_problem_naming_the_ops_command(
    tmp_path: Path,
) -> None:
    service = create_service(Settings(TRADELANE_DATA_DIR=tmp_path))
    await service.db.create_tables()
    try:
        assert await service.problems() == []
        async with service.db.transaction() as tx:
            status = OrderStatusChanged.new(
                order_id="o-1", status=OrderState.RECEIVED, reported_by="pricing"
            )
            await tx.publish(ORDERS_STATUS, status)
        async with service.db.sending(10) as batch:
            batch.park(batch.rows[0], "MessageSizeTooLargeError: too large")
        [problem] = await service.problems()
        assert problem.startswith("1 outbox rows parked")
        assert "tradelane outbox list --service pricing" in problem
    finally:
        await service.db.dispose()
