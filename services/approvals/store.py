"""Approvals' own database: account policies, the orders it gated, requests and their audit."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, Text, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.approvals.domain import (
    AccountPolicy,
    ApprovalRequest,
    DecisionOutcome,
    RequestState,
)
from shared.contract import Account, ApprovalDecision, Channel, OrderPriced, Role
from shared.db import messaging_tables


class Base(DeclarativeBase):
    pass


messaging_tables(Base.metadata)


class AccountRow(Base):
    """The part of an account approvals needs.

    The threshold is kept as text: SQLite has no exact decimal type, and a total
    compared with the threshold to the cent must not pass through a float.
    """

    __tablename__ = "accounts"
    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    channel: Mapped[str] = mapped_column(String(3))
    currency: Mapped[str] = mapped_column(String(3))
    approval_threshold: Mapped[str | None] = mapped_column(String(40), nullable=True)
    members: Mapped[dict[str, list[str]]] = mapped_column(JSON)
    """member_id -> roles"""


class OrderRow(Base):
    """Every order approvals has gated or heard the end of: a second `orders.priced` is ignored."""

    __tablename__ = "orders"
    order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    gate: Mapped[str] = mapped_column(String(30))
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Gates:
    APPROVED_AT_ONCE = "approved_at_once"
    APPROVAL_REQUESTED = "approval_requested"
    REJECTED = "rejected"
    ENDED_ELSEWHERE = "ended_elsewhere"
    """Cancelled or rejected by another step before it was priced here: never approve it."""


class ApprovalRequestRow(Base):
    __tablename__ = "approval_requests"
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.order_id"), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(64))
    buyer_id: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(20), index=True)
    why: Mapped[str] = mapped_column(Text)
    required_approvals: Mapped[int] = mapped_column(Integer)
    eligible_approvers: Mapped[list[str]] = mapped_column(JSON)
    approved_by: Mapped[list[str]] = mapped_column(JSON)
    priced: Mapped[str] = mapped_column(Text)
    """The `orders.priced` event as received, to build `orders.approved` days later."""
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class DecisionRow(Base):
    """The audit: every decision on a known request, counted or refused, and why."""

    __tablename__ = "approval_decisions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("approval_requests.order_id"), index=True)
    approver_id: Mapped[str] = mapped_column(String(64))
    decision: Mapped[str] = mapped_column(String(10))
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str] = mapped_column(String(30))
    counted: Mapped[bool]
    why: Mapped[str] = mapped_column(Text)


# --- reference data ---------------------------------------------------------------------


async def save_account(session: AsyncSession, account: Account) -> None:
    threshold = account.approval_threshold
    await session.merge(
        AccountRow(
            account_id=account.account_id,
            channel=account.channel.value,
            currency=account.currency,
            approval_threshold=None if threshold is None else format(threshold, "f"),
            members={m.member_id: [r.value for r in m.roles] for m in account.members},
        )
    )


async def account_policy(session: AsyncSession, account_id: str) -> AccountPolicy | None:
    row = await session.get(AccountRow, account_id)
    if row is None:
        return None
    return AccountPolicy(
        account_id=row.account_id,
        channel=Channel(row.channel),
        currency=row.currency,
        approval_threshold=(
            None if row.approval_threshold is None else Decimal(row.approval_threshold)
        ),
        members={
            member_id: frozenset(Role(r) for r in roles) for member_id, roles in row.members.items()
        },
    )


# --- orders and requests ---------------------------------------------------------------------


async def find_order(session: AsyncSession, order_id: str) -> OrderRow | None:
    return await session.get(OrderRow, order_id)


async def record_order(
    session: AsyncSession, order_id: str, account_id: str | None, gate: str
) -> OrderRow:
    row = OrderRow(
        order_id=order_id, account_id=account_id, gate=gate, recorded_at=datetime.now(UTC)
    )
    session.add(row)
    await session.flush()
    return row


async def add_request(
    session: AsyncSession, request: ApprovalRequest, priced: OrderPriced, why: str
) -> None:
    session.add(
        ApprovalRequestRow(
            order_id=request.order_id,
            account_id=priced.order.account_id,
            buyer_id=request.buyer_id,
            state=request.state.value,
            why=why,
            required_approvals=request.required_approvals,
            eligible_approvers=list(request.eligible_approvers),
            approved_by=list(request.approved_by),
            priced=priced.model_dump_json(by_alias=True),
            opened_at=datetime.now(UTC),
        )
    )
    await session.flush()


async def find_request_row(session: AsyncSession, order_id: str) -> ApprovalRequestRow | None:
    return await session.get(ApprovalRequestRow, order_id)


async def find_request(session: AsyncSession, order_id: str) -> ApprovalRequest | None:
    row = await find_request_row(session, order_id)
    if row is None:
        return None
    return ApprovalRequest(
        order_id=row.order_id,
        buyer_id=row.buyer_id,
        required_approvals=row.required_approvals,
        eligible_approvers=tuple(row.eligible_approvers),
        approved_by=list(row.approved_by),
        state=RequestState(row.state),
    )


async def save_request(session: AsyncSession, request: ApprovalRequest) -> None:
    """Write back what a decision or a withdrawal changed; stamps the close once."""
    row = await session.get(ApprovalRequestRow, request.order_id)
    if row is None:
        raise LookupError(f"no approval request for order {request.order_id!r}")
    row.state = request.state.value
    row.approved_by = list(request.approved_by)
    if not request.is_open and row.closed_at is None:
        row.closed_at = datetime.now(UTC)


async def priced_order(session: AsyncSession, order_id: str) -> OrderPriced:
    row = await session.get(ApprovalRequestRow, order_id)
    if row is None:
        raise LookupError(f"no approval request for order {order_id!r}")
    return OrderPriced.model_validate_json(row.priced)


# --- the audit ---------------------------------------------------------------------------


async def record_decision(
    session: AsyncSession, decision: ApprovalDecision, outcome: DecisionOutcome
) -> None:
    session.add(
        DecisionRow(
            event_id=str(decision.event_id),
            order_id=decision.order_id,
            approver_id=decision.approver_id,
            decision=decision.decision.value,
            comment=decision.comment,
            decided_at=decision.occurred_at,
            recorded_at=datetime.now(UTC),
            outcome=outcome.kind.value,
            counted=outcome.counted,
            why=outcome.why,
        )
    )


async def decisions_on(session: AsyncSession, order_id: str) -> list[DecisionRow]:
    rows = await session.scalars(
        select(DecisionRow).where(DecisionRow.order_id == order_id).order_by(DecisionRow.id)
    )
    return list(rows)
