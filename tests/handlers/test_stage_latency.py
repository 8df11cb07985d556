"""End-to-end latency per stage, in-process: the submission time travels with the order, and each
service times the order from it when its transaction commits.

One order is carried by hand from bench to bench — catalog, pricing,
approvals, fulfillment — the way the topics would carry it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from shared.contract import (
    ApprovalDecision,
    ApprovalDecisionKind,
    OrderApproved,
    OrderPriced,
    OrderState,
    OrderSubmitted,
    OrderValidated,
    ShipmentDispatched,
)
from shared.contract.envelope import now_utc
from shared.topics import (
    APPROVAL_DECISIONS,
    DISPATCHES,
    ORDERS_APPROVED,
    ORDERS_PRICED,
    ORDERS_SUBMITTED,
    ORDERS_VALIDATED,
)
from tests.handlers.conftest import priced, validated
from tests.handlers.four_services import Benches, four_services
from tools.seed import (
    b2b_order,
    b2c_order,
)

LATENCY = "tradelane_order_stage_latency_seconds"


def timed(service: str, stage: str) -> tuple[float, float]:
    """How many orders `service` timed at `stage`, and their seconds in all."""
    labels = {"service": service, "stage": stage}
    count = REGISTRY.get_sample_value(f"{LATENCY}_count", labels) or 0.0
    total = REGISTRY.get_sample_value(f"{LATENCY}_sum", labels) or 0.0
    return count, total


@pytest.fixture
async def benches(tmp_path: Path) -> AsyncIterator[Benches]:
    async with four_services(tmp_path) as running:
        yield running


async def test_each_stage_times_the_order_from_the_shops_submission(benches: Benches) -> None:
    submitted_at = now_utc() - timedelta(seconds=90)  # the shop sent it a minute and a half ago
    order = b2c_order("lat-1", [("GLOVE-L", 1)]).model_copy(update={"occurred_at": submitted_at})
    stages = [
        ("catalog", "received"),
        ("catalog", "validated"),
        ("pricing", "priced"),
        ("approvals", "approved"),
        ("fulfillment", "fulfillment_planned"),
        ("fulfillment", "shipped"),
    ]
    before = {stage: timed(*stage) for stage in stages}

    await benches.catalog.deliver(ORDERS_SUBMITTED, order)
    [validated_] = await benches.catalog.published(ORDERS_VALIDATED, OrderValidated)
    assert validated_.submitted_at == submitted_at
    await benches.pricing.deliver(ORDERS_VALIDATED, validated_)
    [priced_] = await benches.pricing.published(ORDERS_PRICED, OrderPriced)
    assert priced_.submitted_at == submitted_at
    await benches.approvals.deliver(ORDERS_PRICED, priced_)
    [approved] = await benches.approvals.published(ORDERS_APPROVED, OrderApproved)
    assert approved.submitted_at == submitted_at
    await benches.fulfillment.deliver(ORDERS_APPROVED, approved)
    [planned] = await benches.fulfillment.statuses("lat-1")
    assert planned.status is OrderState.FULFILLMENT_PLANNED and planned.shipments
    shipment_id = planned.shipments[0].shipment_id
    await benches.fulfillment.deliver(
        DISPATCHES, ShipmentDispatched.new(order_id="lat-1", shipment_id=shipment_id)
    )

    for stage in stages:
        count, seconds = timed(*stage)
        was_count, was_seconds = before[stage]
        assert count == was_count + 1, stage
        assert 90 <= seconds - was_seconds < 90 + 60, stage  # from the submission, not the hop


async def test_awaiting_approval_is_timed_once_however_often_the_shop_hears_of_it(
    benches: Benches,
) -> None:
    order: OrderSubmitted = b2b_order("lat-2", [("BOLT-M8-100", 400)])  # needs two approvers
    awaiting, approved = timed("approvals", "awaiting_approval"), timed("approvals", "approved")
    await benches.approvals.deliver(ORDERS_PRICED, priced(order))
    for approver in ("acme-manager", "acme-finance"):
        await benches.approvals.deliver(
            APPROVAL_DECISIONS,
            ApprovalDecision.new(
                order_id="lat-2", approver_id=approver, decision=ApprovalDecisionKind.APPROVE
            ),
        )
    assert await benches.approvals.history("lat-2") == [
        "awaiting_approval",
        "awaiting_approval",
        "approved",
    ]
    assert timed("approvals", "awaiting_approval")[0] == awaiting[0] + 1
    assert timed("approvals", "approved")[0] == approved[0] + 1


async def test_a_rejection_is_timed_as_a_stage_of_the_service_that_rejects(
    benches: Benches,
) -> None:
    order = b2b_order("lat-3", [("BOLT-M8-100", 1)], terms="NET90")  # terms acme may not use
    before = timed("pricing", "rejected")
    await benches.pricing.deliver(ORDERS_VALIDATED, validated(order))
    assert await benches.pricing.history("lat-3") == ["rejected"]
    assert timed("pricing", "rejected")[0] == before[0] + 1


async def test_an_event_from_before_submitted_at_was_carried_is_handled_and_not_timed(
    benches: Benches,
) -> None:
    order = b2c_order("lat-4", [("GLOVE-L", 1)])
    before = timed("pricing", "priced")
    old = validated(order).model_copy(update={"submitted_at": None})
    await benches.pricing.deliver(ORDERS_VALIDATED, old)
    [priced_] = await benches.pricing.published(ORDERS_PRICED, OrderPriced)
    assert priced_.submitted_at is None
    assert timed("pricing", "priced") == before
