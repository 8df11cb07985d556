"""Approvals' store on SQLite and PostgreSQL: request round trips, due timers, spend windows."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from services.approvals import store
from services.approvals.domain import ApprovalRequest, RequestState
from services.approvals.policy import ApprovalPlan, LimitKey, PlannedStep, period_start
from shared.contract import LimitScope, OrderPriced, Period, Role
from shared.db import ServiceDatabase
from shared.topics import TopicNames
from tools.seed import b2b_order

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
MONTH = LimitKey(LimitScope.BUYER, "acme-buyer", Period.MONTHLY, "EUR")


@pytest.fixture(params=["sqlite", "postgresql"])
async def database(
    request: pytest.FixtureRequest, new_database_url: Callable[[str], str]
) -> AsyncIterator[ServiceDatabase]:
    """The store on both databases a service may be given."""
    url = new_database_url(request.param)
    db = ServiceDatabase(url, store.Base.metadata, TopicNames("t."))
    await db.create_tables()
    yield db
    await db.dispose()  # before the test's event loop closes (aiosqlite's thread, asyncpg)


def priced(order_id: str, total: str, cost_centre: str | None = None) -> OrderPriced:
    order = b2b_order(order_id, [("BOLT-M8-100", 1)]).order()
    if cost_centre:
        order = order.model_copy(update={"cost_centre": cost_centre})
    return OrderPriced.new(
        order=order, lines=[], totals={"currency": "EUR", "subtotal": total, "total": total}
    )


def a_request(order_id: str, expires_after: timedelta) -> ApprovalRequest:
    plan = ApprovalPlan(
        policy_version=3,
        matches=(),
        steps=(PlannedStep("manager", Role.MANAGER, 1, frozenset()),),
        distinct_signers=False,
        expires_after=expires_after,
        remind_before=None,
    )
    return ApprovalRequest.open(
        order_id=order_id,
        account_id="acme-gmbh",
        buyer_id="acme-buyer",
        plan=plan,
        members={"acme-manager": frozenset({Role.MANAGER})},
        now=NOW,
    )


async def test_a_request_comes_back_exactly_as_it_was_saved(database: ServiceDatabase) -> None:
    request = a_request("o-1", timedelta(days=2))
    async with database.transaction() as tx:
        await store.record_order(tx.session, "o-1", "acme-gmbh", store.Gates.APPROVAL_REQUESTED)
        await store.add_request(tx.session, request, priced("o-1", "10.00"))
    async with database.sessions() as session:
        assert await store.find_request(session, "o-1") == request


async def test_only_open_requests_past_their_next_moment_are_due(
    database: ServiceDatabase,
) -> None:
    soon, later = a_request("soon", timedelta(hours=1)), a_request("later", timedelta(days=1))
    closed = a_request("closed", timedelta(hours=1))
    closed.withdraw(NOW)
    async with database.transaction() as tx:
        for request in (soon, later, closed):
            oid = request.order_id
            await store.record_order(tx.session, oid, "acme-gmbh", store.Gates.APPROVAL_REQUESTED)
            await store.add_request(tx.session, request, priced(oid, "10.00"))
    async with database.sessions() as session:
        assert await store.due_requests(session, NOW + timedelta(minutes=59)) == []
        assert await store.due_requests(session, NOW + timedelta(hours=2)) == ["soon"]
        assert await store.count_open(session) == 2
        found = await store.find_request(session, "closed")
        assert found is not None and found.state is RequestState.WITHDRAWN


async def test_spend_counts_within_the_period_and_is_given_back_on_release(
    database: ServiceDatabase,
) -> None:
    async with database.transaction() as tx:
        await store.record_spend(tx.session, priced("old", "500.00"), NOW - timedelta(days=30))
        await store.record_spend(tx.session, priced("a", "1200.10"), NOW)
        await store.record_spend(tx.session, priced("b", "0.20"), NOW)
    since = period_start(Period.MONTHLY, NOW)
    async with database.transaction() as tx:
        assert await store.spent_since(tx.session, "acme-gmbh", MONTH, since) == Decimal("1200.30")
        assert await store.release_spend(tx.session, "a")
        assert not await store.release_spend(tx.session, "a")
    async with database.sessions() as session:
        assert await store.spent_since(session, "acme-gmbh", MONTH, since) == Decimal("0.20")


async def test_cost_centre_spend_is_separate_from_other_centres(database: ServiceDatabase) -> None:
    async with database.transaction() as tx:
        await store.record_spend(tx.session, priced("a", "100.00", "CC-1"), NOW)
        await store.record_spend(tx.session, priced("b", "900.00", "CC-2"), NOW)
    key = LimitKey(LimitScope.COST_CENTRE, "CC-1", Period.DAILY, "EUR")
    async with database.sessions() as session:
        spent = await store.spent_since(session, "acme-gmbh", key, period_start(Period.DAILY, NOW))
    assert spent == Decimal("100.00")


async def test_recording_the_same_order_twice_counts_it_once(database: ServiceDatabase) -> None:
    async with database.transaction() as tx:
        await store.record_spend(tx.session, priced("a", "100.00"), NOW)
    async with database.transaction() as tx:
        await store.record_spend(tx.session, priced("a", "100.00"), NOW)
    async with database.sessions() as session:
        spent = await store.spent_since(session, "acme-gmbh", MONTH, NOW - timedelta(days=1))
    assert spent == Decimal("100.00")


async def test_a_decision_id_is_claimed_once_and_then_names_its_decision(
    database: ServiceDatabase,
) -> None:
    decision_id = uuid.UUID("3f2b8c1e-5d4a-4b6f-9e8d-7c6b5a4f3e21")
    first = store.ClaimedDecision("o-1", "acme-manager", "approve", "ok")
    async with database.transaction() as tx:
        assert await store.claim_decision_id(tx.session, decision_id, first) is None
    again = store.ClaimedDecision("o-2", "acme-manager", "reject", None)
    async with database.transaction() as tx:
        assert await store.claim_decision_id(tx.session, decision_id, again) == first
    async with database.sessions() as session:
        assert await store.decision_with_id(session, decision_id) == first
        assert await store.decision_with_id(session, uuid.uuid4()) is None
