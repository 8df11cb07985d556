"""Credit in pricing's database: each account's terms and credit on account, payments, holds.

**Exact under concurrency.** Every change to an account's credit first locks
the account's `credit_accounts` row (`SELECT … FOR UPDATE` on PostgreSQL;
SQLite's `BEGIN IMMEDIATE` already serialises writers), then reads the
exposure from the hold ledger, decides, and writes, all in the handler's one
transaction. Two workers pricing two orders of one account at once — as
during a rebalance — therefore decide one after the other: the second sees
the first's hold. Releases and payments only lower exposure, but they lock
too, because they write the credit on account.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import DateTime, Integer, String, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from services.pricing import holds
from services.pricing.credit import CreditLine, exposure_of
from services.pricing.holds import HoldKind, HoldRow
from services.pricing.store import Base
from shared.batch_reads import read_once
from shared.contract import Account, CreditPolicy, PaymentReceived
from shared.db import ExactDecimal, insert_unless_present


class CreditAccountRow(Base):
    """One account's credit line and its credit on account: the row every credit change locks."""

    __tablename__ = "credit_accounts"
    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3))
    limit: Mapped[Decimal | None] = mapped_column(ExactDecimal, nullable=True)
    policy: Mapped[str] = mapped_column(String(20), default=CreditPolicy.REJECT.value)
    warning_percent: Mapped[int] = mapped_column(Integer, default=80)
    credit_on_account: Mapped[Decimal] = mapped_column(ExactDecimal, default=Decimal(0))

    def line(self) -> CreditLine:
        return CreditLine(
            self.account_id,
            self.currency,
            self.limit,
            CreditPolicy(self.policy),
            self.warning_percent,
        )


class PaymentRow(Base):
    """A payment applied once (by finance's `payment_id`): how much paid the order, how much
    became credit on account."""

    __tablename__ = "credit_payments"
    payment_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(64), index=True)
    order_id: Mapped[str] = mapped_column(String(64))
    amount: Mapped[Decimal] = mapped_column(ExactDecimal)
    currency: Mapped[str] = mapped_column(String(3))
    applied: Mapped[Decimal] = mapped_column(ExactDecimal)
    surplus: Mapped[Decimal] = mapped_column(ExactDecimal)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True)
class CreditPosition:
    """An account's credit as `GET /accounts/{id}/credit` shows it."""

    line: CreditLine
    credit_on_account: Decimal
    open_items: list[HoldRow]

    @property
    def exposure(self) -> Decimal:
        return exposure_of([row.open for row in self.open_items], self.credit_on_account)

    @property
    def available(self) -> Decimal | None:
        return None if self.line.limit is None else self.line.limit - self.exposure


async def save_terms(session: AsyncSession, account: Account) -> None:
    """Keep the account's credit terms; its credit on account is pricing's own and stays."""
    row = await locked_account(session, account.account_id, account.currency)
    terms = account.credit
    row.currency = account.currency
    row.limit = terms.limit if terms else None
    row.policy = (terms.policy if terms else CreditPolicy.REJECT).value
    row.warning_percent = terms.warning_percent if terms else 80


LOCKED_ACCOUNTS = "locked credit accounts"
"""`read_once`'s name for the credit rows a transaction has locked."""


async def locked_account(session: AsyncSession, account_id: str, currency: str) -> CreditAccountRow:
    """The account's credit row, created if new (no limit), locked until the transaction ends.

    Locked and read once per transaction: a batch with many orders of one account
    holds the lock from the first, so what it read stays what the database has. A
    savepoint rolled back gives the lock up and `read_once` forgets the row with it.
    """
    locked = await read_once(
        session,
        LOCKED_ACCOUNTS,
        [account_id],
        lambda _: _lock_account(session, account_id, currency),
    )
    return locked[account_id]


async def _lock_account(
    session: AsyncSession, account_id: str, currency: str
) -> dict[str, CreditAccountRow]:
    await session.execute(
        insert_unless_present(
            session,
            CreditAccountRow,
            "account_id",
            account_id=account_id,
            currency=currency,
            limit=None,
            policy=CreditPolicy.REJECT.value,
            warning_percent=80,
            credit_on_account=Decimal(0),
        )
    )
    row = await session.scalar(
        select(CreditAccountRow)
        .where(CreditAccountRow.account_id == account_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    assert row is not None
    return {account_id: row}


async def position(session: AsyncSession, account: CreditAccountRow) -> CreditPosition:
    open_items = await holds.live_holds(session, HoldKind.CREDIT, account.account_id)
    return CreditPosition(account.line(), account.credit_on_account, open_items)


async def position_of(session: AsyncSession, account_id: str) -> CreditPosition | None:
    """An account's credit for reading (no lock); None if pricing never heard of it."""
    account = await session.get(CreditAccountRow, account_id)
    return None if account is None else await position(session, account)


async def find_payment(session: AsyncSession, payment_id: str) -> PaymentRow | None:
    return await session.get(PaymentRow, payment_id)


def record_payment(
    session: AsyncSession, payment: PaymentReceived, applied: Decimal, surplus: Decimal
) -> None:
    session.add(
        PaymentRow(
            payment_id=payment.payment_id,
            account_id=payment.account_id,
            order_id=payment.order_id,
            amount=payment.amount,
            currency=payment.currency,
            applied=applied,
            surplus=surplus,
            received_at=payment.received_at,
        )
    )
