"""Approvals' own database: accounts, policies, delegations, requests, their audit and spend.

A request is stored whole (the domain object as JSON, with its snapshot of
policy and members) next to a few columns the service queries by: state,
account, and `next_due_at`, the moment its clock next needs attention. The
timer loop reads `next_due_at`, so reminders, escalations and expiries
survive a restart: they live here, not in memory.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache, partial
from typing import NamedTuple

from pydantic import TypeAdapter
from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, Text, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.approvals.domain import (
    AccountNow,
    ApprovalRequest,
    DecisionOutcome,
    DelegationWindow,
    Gate,
    RequestState,
    TimerEvent,
)
from services.approvals.policy import LimitKey
from shared.batch_reads import find, forget_reads, known_absent, read_ahead, read_once
from shared.contract import (
    Account,
    ApprovalDecision,
    ApprovalPolicy,
    AuditEntry,
    Delegation,
    LimitScope,
    OrderPriced,
)
from shared.db import (
    ExactDecimal,
    OrderRecord,
    as_utc,
    insert_unless_present,
    messaging_tables,
)
from shared.reference_cache import read_reference

REQUEST_JSON: TypeAdapter[ApprovalRequest] = TypeAdapter(ApprovalRequest)


class Base(DeclarativeBase):
    pass


messaging_tables(Base.metadata)


# --- reference data ---------------------------------------------------------------------------


class AccountRow(Base):
    """The account as CRM last sent it (members, roles, terms), kept whole."""

    __tablename__ = "accounts"
    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account: Mapped[str] = mapped_column(Text)


class MembershipRow(Base):
    """Who belongs to which account: the approver inbox starts here."""

    __tablename__ = "memberships"
    member_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)


class PolicyRow(Base):
    __tablename__ = "policies"
    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    policy: Mapped[str] = mapped_column(Text)


class DelegationRow(Base):
    __tablename__ = "delegations"
    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    delegator_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    delegate_id: Mapped[str] = mapped_column(String(64), index=True)
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


async def save_account(session: AsyncSession, account: Account) -> None:
    forget_reads(session, ACCOUNTS_NOW_READ, [account.account_id])
    forget_reads(session, ACCOUNTS_READ)
    await session.merge(
        AccountRow(account_id=account.account_id, account=account.model_dump_json(by_alias=True))
    )
    await session.execute(
        delete(MembershipRow).where(MembershipRow.account_id == account.account_id)
    )
    session.add_all(
        MembershipRow(member_id=m.member_id, account_id=account.account_id) for m in account.members
    )


ACCOUNTS_READ = "accounts"


async def find_account(session: AsyncSession, account_id: str) -> Account | None:
    """The account, or None for one approvals was never told of (a consumer's); from the
    worker's `ReferenceCache` while it remembers it (`read_reference`)."""
    found = await read_reference(
        session, ACCOUNTS_READ, [account_id], partial(load_accounts, session)
    )
    return found.get(account_id)


async def load_accounts(session: AsyncSession, account_ids: set[str]) -> dict[str, Account]:
    rows = await session.scalars(select(AccountRow).where(AccountRow.account_id.in_(account_ids)))
    return {row.account_id: _account_from(row.account) for row in rows}


async def accounts_of(session: AsyncSession, member_id: str) -> list[str]:
    rows = await session.scalars(
        select(MembershipRow.account_id).where(MembershipRow.member_id == member_id)
    )
    return list(rows)


async def save_policy(session: AsyncSession, policy: ApprovalPolicy) -> None:
    await session.merge(
        PolicyRow(
            account_id=policy.account_id,
            version=policy.version,
            policy=policy.model_dump_json(by_alias=True),
        )
    )


async def read_orders_ahead(session: AsyncSession, orders: Iterable[tuple[str, str]]) -> None:
    """The rows the gate looks up for a batch of orders (id, account), three statements at
    most: the orders seen before, their accounts and the accounts' own policies (none for a
    batch of consumers, whose accounts approvals does not know, nor for accounts the worker
    remembers).

    Spend is not read: the gate passes an order it saw before by, and an order it has not
    seen has no spend row (one is written only for an order recorded here).
    """
    keys = set(orders)
    order_ids = {order_id for order_id, _ in keys}
    seen = await read_ahead(session, OrderRow, order_ids)
    known_absent(session, SpendRow, order_ids - seen)
    account_ids = {account_id for _, account_id in keys}
    known = await read_reference(
        session, ACCOUNTS_READ, account_ids, partial(load_accounts, session)
    )
    await read_ahead(session, PolicyRow, known.keys())


async def find_policy(session: AsyncSession, account_id: str) -> ApprovalPolicy | None:
    row = await find(session, PolicyRow, account_id)
    return None if row is None else _policy_from(row.policy)


PARSED_REFERENCES = 256
"""Accounts and policies kept parsed, by their stored text (each kind)."""


@lru_cache(maxsize=PARSED_REFERENCES)
def _account_from(text: str) -> Account:
    """An account parsed once per stored text, not once per transaction: a few accounts
    place most orders, and the models are frozen, so one parse serves every reader. Keyed
    by the text itself, a changed account is a new entry: nothing to invalidate."""
    return Account.model_validate_json(text)


@lru_cache(maxsize=PARSED_REFERENCES)
def _policy_from(text: str) -> ApprovalPolicy:
    """A policy parsed once per stored text (as `_account_from`)."""
    return ApprovalPolicy.model_validate_json(text)


async def save_delegation(session: AsyncSession, delegation: Delegation) -> None:
    """The latest delegation of a delegator replaces the one before (out of office, again)."""
    forget_reads(session, ACCOUNTS_NOW_READ, [delegation.account_id])
    await session.merge(
        DelegationRow(
            account_id=delegation.account_id,
            delegator_id=delegation.delegator_id,
            delegate_id=delegation.delegate_id,
            starts_at=delegation.starts_at,
            ends_at=delegation.ends_at,
        )
    )


ACCOUNTS_NOW_READ = "members and delegations"
"""`read_once`'s name for the accounts' members and delegations a transaction read."""


async def account_now(session: AsyncSession, account_id: str) -> AccountNow:
    """Today's members and delegations of an account (not the snapshot a request keeps).

    Read once per transaction: a decision asks twice (to count it, then to
    report progress), and a batch of decisions often names one account."""
    found = await read_once(
        session, ACCOUNTS_NOW_READ, [account_id], partial(_read_accounts_now, session)
    )
    return found[account_id]


async def _read_accounts_now(session: AsyncSession, account_ids: set[str]) -> dict[str, AccountNow]:
    return {account_id: await _read_account_now(session, account_id) for account_id in account_ids}


async def _read_account_now(session: AsyncSession, account_id: str) -> AccountNow:
    # From the database, not the worker's cache: who may decide must not lag a member's removal.
    account = (await load_accounts(session, {account_id})).get(account_id)
    rows = await session.scalars(
        select(DelegationRow).where(DelegationRow.account_id == account_id)
    )
    return AccountNow(
        members=frozenset(m.member_id for m in account.members) if account else frozenset(),
        delegations=tuple(
            DelegationWindow(r.delegator_id, r.delegate_id, as_utc(r.starts_at), as_utc(r.ends_at))
            for r in rows
        ),
    )


# --- orders and requests -------------------------------------------------------------------------


class OrderRow(OrderRecord, Base):
    """Every order approvals has gated or heard the end of: a second `orders.priced` is ignored."""

    __tablename__ = "orders"
    # state: where it stands at the gate, a `domain.Gate`.
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ApprovalRequestRow(Base):
    __tablename__ = "approval_requests"
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.order_id"), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(64), index=True)
    state: Mapped[str] = mapped_column(String(20), index=True)
    next_due_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True, index=True
    )
    request: Mapped[str] = mapped_column(Text)
    """The domain `ApprovalRequest` as JSON: steps, signatures, snapshot, deadline."""
    priced: Mapped[str] = mapped_column(Text)
    """The `orders.priced` event as received, to build `orders.approved` days later."""


async def gate_of(session: AsyncSession, order_id: str) -> Gate | None:
    """Where the order stands at the gate; None for an order approvals has not heard of."""
    row = await find(session, OrderRow, order_id)
    return None if row is None else Gate(row.state)


async def record_order(
    session: AsyncSession, order_id: str, account_id: str | None, gate: Gate
) -> None:
    session.add(
        OrderRow(
            order_id=order_id, account_id=account_id, state=gate, recorded_at=datetime.now(UTC)
        )
    )


async def add_request(session: AsyncSession, request: ApprovalRequest, priced: OrderPriced) -> None:
    await session.flush()  # the order's row first: the request names it (a foreign key)
    session.add(
        ApprovalRequestRow(
            order_id=request.order_id,
            account_id=request.account_id,
            state=request.state.value,
            next_due_at=request.next_due(),
            request=REQUEST_JSON.dump_json(request).decode(),
            priced=priced.model_dump_json(by_alias=True),
        )
    )
    await session.flush()


async def find_request(session: AsyncSession, order_id: str) -> ApprovalRequest | None:
    row = await session.get(ApprovalRequestRow, order_id)
    return None if row is None else REQUEST_JSON.validate_json(row.request)


async def save_request(session: AsyncSession, request: ApprovalRequest) -> None:
    """Write back what a decision, a timer or a withdrawal changed."""
    row = await session.get(ApprovalRequestRow, request.order_id)
    if row is None:
        raise LookupError(f"no approval request for order {request.order_id!r}")
    row.state = request.state.value
    row.next_due_at = request.next_due()
    row.request = REQUEST_JSON.dump_json(request).decode()


async def priced_order(session: AsyncSession, order_id: str) -> OrderPriced:
    row = await session.get(ApprovalRequestRow, order_id)
    if row is None:
        raise LookupError(f"no approval request for order {order_id!r}")
    return OrderPriced.model_validate_json(row.priced)


async def open_requests_of(
    session: AsyncSession, account_ids: list[str]
) -> list[tuple[ApprovalRequest, OrderPriced]]:
    rows = await session.scalars(
        select(ApprovalRequestRow)
        .where(ApprovalRequestRow.account_id.in_(account_ids))
        .where(ApprovalRequestRow.state == RequestState.OPEN.value)
        .order_by(ApprovalRequestRow.order_id)
    )
    return [
        (REQUEST_JSON.validate_json(r.request), OrderPriced.model_validate_json(r.priced))
        for r in rows
    ]


async def requests_of(
    session: AsyncSession, order_ids: list[str]
) -> list[tuple[ApprovalRequest, OrderPriced]]:
    rows = await session.scalars(
        select(ApprovalRequestRow).where(ApprovalRequestRow.order_id.in_(order_ids))
    )
    return [
        (REQUEST_JSON.validate_json(r.request), OrderPriced.model_validate_json(r.priced))
        for r in rows
    ]


async def due_requests(session: AsyncSession, now: datetime, limit: int = 100) -> list[str]:
    """Open requests whose clock needs a look: a reminder, an escalation or the deadline."""
    rows = await session.scalars(
        select(ApprovalRequestRow.order_id)
        .where(ApprovalRequestRow.state == RequestState.OPEN.value)
        .where(ApprovalRequestRow.next_due_at <= now)
        .order_by(ApprovalRequestRow.next_due_at)
        .limit(limit)
    )
    return list(rows)


async def count_open(session: AsyncSession) -> int:
    found = await session.scalar(
        select(func.count())
        .select_from(ApprovalRequestRow)
        .where(ApprovalRequestRow.state == RequestState.OPEN.value)
    )
    return int(found or 0)


# --- decision ids ------------------------------------------------------------------------------


class DecisionIdRow(Base):
    """The decisions taken over HTTP, by the `decision_id` the approver's client chose.

    The id becomes the decision event's `event_id`, so the inbox drops a second
    event with it: kept here, an id names one decision on one order, and a reuse
    can be told from a retry before anything is sent.
    """

    __tablename__ = "decision_ids"
    decision_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(64))
    approver_id: Mapped[str] = mapped_column(String(64))
    decision: Mapped[str] = mapped_column(String(10))
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ClaimedDecision(NamedTuple):
    """What a decision id was first used for."""

    order_id: str
    approver_id: str
    decision: str
    comment: str | None


async def decision_with_id(session: AsyncSession, decision_id: uuid.UUID) -> ClaimedDecision | None:
    row = await session.get(DecisionIdRow, str(decision_id))
    if row is None:
        return None
    return ClaimedDecision(row.order_id, row.approver_id, row.decision, row.comment)


async def claim_decision_id(
    session: AsyncSession, decision_id: uuid.UUID, decision: ClaimedDecision
) -> ClaimedDecision | None:
    """Record `decision` under `decision_id`; None if the id was free, else what holds it.

    Two requests claiming one id at once: the second waits for the first to
    commit and then finds its decision.
    """
    result = await session.execute(
        insert_unless_present(
            session,
            DecisionIdRow,
            "decision_id",
            decision_id=str(decision_id),
            at=datetime.now(UTC),
            **decision._asdict(),
        )
    )
    if result.rowcount:  # type: ignore[attr-defined]
        return None
    return await decision_with_id(session, decision_id)


# --- the audit ---------------------------------------------------------------------------------


class AuditRow(Base):
    """Every event in a request's life: opened, each decision (counted or not), timers, the end."""

    __tablename__ = "approval_audit"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    kind: Mapped[str] = mapped_column(String(20))
    approver_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    on_behalf_of: Mapped[str | None] = mapped_column(String(64), nullable=True)
    role: Mapped[str | None] = mapped_column(String(20), nullable=True)
    step_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    decision: Mapped[str | None] = mapped_column(String(10), nullable=True)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(30), nullable=True)
    why: Mapped[str] = mapped_column(Text)
    event_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    details: Mapped[dict[str, object] | None] = mapped_column(JSON, nullable=True)


async def audit(session: AsyncSession, order_id: str, entry: AuditEntry) -> None:
    session.add(AuditRow(order_id=order_id, **entry.model_dump()))
    await session.flush()


def decision_entry(
    decision: ApprovalDecision, outcome: DecisionOutcome, at: datetime
) -> AuditEntry:
    return AuditEntry(
        at=at,
        kind="decision",
        approver_id=decision.approver_id,
        on_behalf_of=outcome.on_behalf_of,
        role=outcome.role.value if outcome.role else None,
        step_id=outcome.step_id,
        decision=decision.decision.value,
        comment=decision.comment,
        outcome=outcome.kind.value,
        why=outcome.why,
    )


def timer_entry(event: TimerEvent, at: datetime) -> AuditEntry:
    recipients = f" (to {', '.join(event.recipients)})" if event.recipients else ""
    return AuditEntry(
        at=at, kind=event.kind.value, step_id=event.step_id, why=event.why + recipients
    )


async def history(session: AsyncSession, order_id: str) -> list[AuditEntry]:
    rows = await session.scalars(
        select(AuditRow).where(AuditRow.order_id == order_id).order_by(AuditRow.id)
    )
    return [
        AuditEntry(
            at=as_utc(r.at),
            kind=r.kind,
            approver_id=r.approver_id,
            on_behalf_of=r.on_behalf_of,
            role=r.role,
            step_id=r.step_id,
            decision=r.decision,
            comment=r.comment,
            outcome=r.outcome,
            why=r.why,
        )
        for r in rows
    ]


async def decided_by(session: AsyncSession, approver_id: str, limit: int = 100) -> list[str]:
    """Orders this person decided on (counted or not), most recent first."""
    rows = await session.execute(
        select(AuditRow.order_id, func.max(AuditRow.id).label("last"))
        .where(AuditRow.approver_id == approver_id)
        .where(AuditRow.kind == "decision")
        .group_by(AuditRow.order_id)
        .order_by(func.max(AuditRow.id).desc())
        .limit(limit)
    )
    return [order_id for order_id, _ in rows]


# --- spend against limits ----------------------------------------------------------------------


class SpendRow(Base):
    """Approved orders' totals, for buyer limits and cost-centre budgets; released on cancel."""

    __tablename__ = "spend"
    order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(64), index=True)
    buyer_id: Mapped[str] = mapped_column(String(64))
    cost_centre: Mapped[str | None] = mapped_column(String(64), nullable=True)
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[Decimal] = mapped_column(ExactDecimal)
    approved_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


async def record_spend(session: AsyncSession, priced: OrderPriced, at: datetime) -> None:
    """The approved order's spend, counted against its buyer's and cost centre's limits
    (written again if the order was approved before: the last approval counts)."""
    order = priced.order
    row = await find(session, SpendRow, order.order_id)
    if row is None:
        row = SpendRow(order_id=order.order_id)
        session.add(row)
    row.account_id = order.account_id
    row.buyer_id = order.buyer_id
    row.cost_centre = order.cost_centre
    row.currency = priced.totals.currency
    row.amount = priced.totals.total
    row.approved_at = at


async def release_spend(session: AsyncSession, order_id: str) -> bool:
    result = await session.execute(delete(SpendRow).where(SpendRow.order_id == order_id))
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def spent_since(
    session: AsyncSession, account_id: str, key: LimitKey, since: datetime
) -> Decimal:
    """Approved spend of one buyer or cost centre since `since`, in the limit's currency.

    Summed in Python: the amounts are decimal text, which SQL would sum as floats.
    """
    subject = SpendRow.buyer_id if key.scope is LimitScope.BUYER else SpendRow.cost_centre
    amounts = await session.scalars(
        select(SpendRow.amount)
        .where(SpendRow.account_id == account_id)
        .where(subject == key.subject)
        .where(SpendRow.currency == key.currency)
        .where(SpendRow.approved_at >= since)
    )
    return sum(amounts, Decimal(0))
