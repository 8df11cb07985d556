"""Quotes in pricing's database: each quote's highest version, locked while a single use is taken.

**Exact under concurrency.** Taking a single-use quote locks its `quotes` row
(`SELECT … FOR UPDATE` on PostgreSQL; SQLite's `BEGIN IMMEDIATE` already
serialises writers), then reads the quote's live holds, decides and holds, all
in the pricing transaction. Two workers pricing two orders for one quote at
once therefore decide one after the other: the second sees the first's hold.
The expiry clock locks the same row, so `expired` is announced once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import JSON, Boolean, DateTime, Integer, String, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from services.pricing.quotes import QuotedSku, QuoteTerms, newer
from services.pricing.store import Base
from shared.contract import Quote, QuoteUse


class QuoteRow(Base):
    """A quote at the highest version seen; `lines` maps SKU → [quantity, unit price]."""

    __tablename__ = "quotes"
    quote_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    lines: Mapped[dict[str, list[str | int]]] = mapped_column(JSON)
    valid_until: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    single_use: Mapped[bool] = mapped_column(Boolean)
    expiry_announced: Mapped[bool] = mapped_column(Boolean, default=False)

    def terms(self) -> QuoteTerms:
        return QuoteTerms(
            self.quote_id,
            self.account_id,
            self.version,
            self.currency,
            {sku: QuotedSku(int(q), Decimal(str(p))) for sku, (q, p) in self.lines.items()},
            as_utc(self.valid_until),
            self.single_use,
        )


class QuoteUseRow(Base):
    """Which version of a single-use quote an order was priced with: `released` names it too."""

    __tablename__ = "quote_uses"
    order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    quote_id: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)


def record_use(session: AsyncSession, order_id: str, quote_id: str, version: int) -> None:
    session.add(QuoteUseRow(order_id=order_id, quote_id=quote_id, version=version))


async def version_used(session: AsyncSession, order_id: str) -> int | None:
    row = await session.get(QuoteUseRow, order_id)
    return row.version if row is not None else None


def as_utc(moment: datetime) -> datetime:
    """SQLite hands times back naive; they were stored in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def save_quote(session: AsyncSession, quote: Quote) -> bool:
    """Keep the quote if it is newer than the one kept; returns whether it was kept."""
    row = await session.get(QuoteRow, quote.quote_id, with_for_update=True)
    if row is not None and not newer(quote.version, row.version):
        return False
    if row is None:
        row = QuoteRow(quote_id=quote.quote_id, expiry_announced=False)
        session.add(row)
    elif row.valid_until != quote.valid_until:
        row.expiry_announced = False  # a new valid-until is announced when it passes
    row.account_id = quote.account_id
    row.version = quote.version
    row.currency = quote.currency
    row.lines = {line.sku: [line.quantity, format(line.unit_price, "f")] for line in quote.lines}
    row.valid_until = quote.valid_until
    row.single_use = quote.use is QuoteUse.SINGLE
    return True


async def find_quote(
    session: AsyncSession, quote_id: str, *, lock: bool = False
) -> QuoteRow | None:
    """The kept quote; `lock` holds its row until the transaction ends."""
    query = select(QuoteRow).where(QuoteRow.quote_id == quote_id)
    if lock:
        query = query.with_for_update()
    return await session.scalar(query.execution_options(populate_existing=True))


async def due_expiries(session: AsyncSession, now: datetime) -> list[str]:
    """Quotes whose valid-until has passed and whose expiry nobody announced yet."""
    return list(
        await session.scalars(
            select(QuoteRow.quote_id).where(
                QuoteRow.valid_until <= now, QuoteRow.expiry_announced.is_(False)
            )
        )
    )
