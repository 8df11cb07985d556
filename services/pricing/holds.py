"""Pricing's hold ledger: what pricing set aside for an order, until the order's fate is known.

Pricing decides an order's price once, but some of what it decides only
counts while the order lives: the account's credit exposure today, a promo
code's uses and a single-use quote later. Each is a **hold**, one per order,
kind and subject (the account for credit; the code or quote for the others):

    held ──approved──▶ committed ──rejected / cancelled──▶ released
      └──────────rejected / cancelled / expired──────────────▲

- `held`: taken when the order is priced, in the same transaction as the
  `orders.priced` event, so a priced order always has its holds.
- `committed`: the order was approved; the hold stays (credit: the order is
  open exposure until it is paid).
- `released`: the order was rejected (by approvals, an approver, or because its
  approval expired) or cancelled; the hold no longer counts. Final: a late or
  redelivered status never takes it back.

Pricing learns an order's fate from its `approved`, `rejected` and `cancelled` reports
(`fate_of`). A status that
would not move a hold (the same state again, or anything after `released`)
changes nothing, so redelivery and reordering are harmless. The ledger knows
nothing about what a kind means: credit (`services.pricing.credit`) reads its
rows and reacts to what moved.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from functools import partial

from sqlalchemy import DateTime, String, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from services.pricing.store import Base
from shared.batch_reads import forget_reads, read_once
from shared.contract import OrderState
from shared.db import ExactDecimal


class HoldKind(StrEnum):
    """What is held: credit exposure, promotion uses and single-use quotes."""

    CREDIT = "credit"
    PROMOTION = "promotion"
    """One use of a promotion by the order (subject: the promotion id), see `promotion_ledger`."""
    QUOTE = "quote"


class HoldState(StrEnum):
    HELD = "held"
    COMMITTED = "committed"
    RELEASED = "released"


LIVE = (HoldState.HELD, HoldState.COMMITTED)
"""States in which a hold still counts."""

MOVES = {
    (HoldState.HELD, HoldState.COMMITTED),
    (HoldState.HELD, HoldState.RELEASED),
    (HoldState.COMMITTED, HoldState.RELEASED),
}


def moves(current: HoldState, wanted: HoldState) -> bool:
    """Whether a hold in `current` moves to `wanted`; anything else is a no-op, never an error."""
    return (current, wanted) in MOVES


def fate_of(status: OrderState) -> HoldState | None:
    """What an order's transition means for its holds; None: nothing (still on its way)."""
    if status is OrderState.APPROVED:
        return HoldState.COMMITTED
    if status in (OrderState.REJECTED, OrderState.CANCELLED):
        return HoldState.RELEASED
    return None


class HoldRow(Base):
    """One hold: `amount` set aside for `order_id` against `subject`; `settled` of it paid off."""

    __tablename__ = "holds"
    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)
    subject: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)
    state: Mapped[str] = mapped_column(String(10))
    amount: Mapped[Decimal] = mapped_column(ExactDecimal)
    settled: Mapped[Decimal] = mapped_column(ExactDecimal, default=Decimal(0))
    currency: Mapped[str | None] = mapped_column(String(3), nullable=True)
    held_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    @property
    def open(self) -> Decimal:
        """What still counts of this hold: nothing once released, else the unsettled rest."""
        return self.amount - self.settled if self.state in LIVE else Decimal(0)


HELD_NOW = "orders given holds"
"""`Session.info`'s key for the orders this transaction set something aside for."""


async def hold(
    session: AsyncSession,
    kind: HoldKind,
    order_id: str,
    subject: str,
    amount: Decimal,
    currency: str | None = None,
) -> HoldRow:
    """Set `amount` aside for the order; the caller has checked that it may."""
    now = datetime.now(UTC)
    row = HoldRow(
        kind=kind.value,
        order_id=order_id,
        subject=subject,
        state=HoldState.HELD.value,
        amount=amount,
        settled=Decimal(0),
        currency=currency,
        held_at=now,
        changed_at=now,
    )
    forget_reads(session, HOLDS_READ, [order_id])
    session.info.setdefault(HELD_NOW, set()).add(order_id)
    session.add(row)
    await session.flush()
    return row


def holds_placed(session: AsyncSession, order_id: str) -> bool:
    """Whether this transaction set anything aside for the order: only then does its
    approval move a hold, and need reach pricing."""
    return order_id in session.info.get(HELD_NOW, ())


HOLDS_READ = "holds of orders"
"""`read_once`'s name for the holds of each order a transaction read."""


async def read_holds_ahead(session: AsyncSession, order_ids: Iterable[str]) -> None:
    """The holds of every order a batch of reports names, in one statement: nearly every
    order's approval commits its holds, and each would otherwise be a look-up of its own."""
    await read_once(session, HOLDS_READ, order_ids, partial(_holds_of_orders, session))


async def all_holds_of_order(
    session: AsyncSession, order_id: str, *, again: bool = False
) -> list[HoldRow]:
    """Every hold of the order, of any kind and state, as the database has it: read once
    per transaction (or ahead for the batch), unless asked `again` (under a lock just taken).
    Holds move only by changing these rows, so what was read stays true in the batch."""
    if again:
        forget_reads(session, HOLDS_READ, [order_id])
    found = await read_once(session, HOLDS_READ, [order_id], partial(_holds_of_orders, session))
    return found[order_id]


async def _holds_of_orders(session: AsyncSession, order_ids: set[str]) -> dict[str, list[HoldRow]]:
    rows = await session.scalars(
        select(HoldRow)
        .where(HoldRow.order_id.in_(order_ids))
        .order_by(HoldRow.order_id, HoldRow.kind, HoldRow.subject)
        .execution_options(populate_existing=True)
    )
    held: dict[str, list[HoldRow]] = {order_id: [] for order_id in order_ids}
    for row in rows:
        held[row.order_id].append(row)
    return held


def move_holds(rows: list[HoldRow], wanted: HoldState) -> list[HoldRow]:
    """Move each of `rows` that may go to `wanted`; returns the holds that moved."""
    moved = [row for row in rows if moves(HoldState(row.state), wanted)]
    for row in moved:
        row.state = wanted.value
        row.changed_at = datetime.now(UTC)
    return moved


async def live_holds(session: AsyncSession, kind: HoldKind, subject: str) -> list[HoldRow]:
    """The holds of `kind` on `subject` that still count, oldest first."""
    rows = await session.scalars(
        select(HoldRow)
        .where(
            HoldRow.kind == kind.value,
            HoldRow.subject == subject,
            HoldRow.state.in_([s.value for s in LIVE]),
        )
        .order_by(HoldRow.held_at, HoldRow.order_id)
        .execution_options(populate_existing=True)
    )
    return list(rows)


async def holds_of_order(session: AsyncSession, kind: HoldKind, order_id: str) -> list[HoldRow]:
    """Every hold of `kind` the order has or had, whatever its state."""
    return list(
        await session.scalars(
            select(HoldRow)
            .where(HoldRow.kind == kind.value, HoldRow.order_id == order_id)
            .execution_options(populate_existing=True)
        )
    )
