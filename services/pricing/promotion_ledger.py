"""Promotions in pricing's database: each promotion's current state, and its uses as holds.

A use of a promotion is a `HoldKind.PROMOTION` hold in the shared hold ledger
(subject: the promotion id; amount: what it took off the order): held when the
order is priced, committed when it is approved, released — given back — when
the order is rejected, cancelled or its approval expires (`holds.fate_of`).
Uses left are counted from the live holds, never kept as a counter that a
lost or repeated message could skew.

**Exact under concurrency.** Before counting the uses of a promotion with a
usage limit, pricing locks its row (`SELECT … FOR UPDATE` on PostgreSQL;
SQLite's `BEGIN IMMEDIATE` already serialises writers), and holds the new use
in the same transaction. Two workers pricing orders with the last use of a
code therefore decide one after the other: the second sees the first's hold.
Rows are locked in promotion id order, so two orders never wait on each other.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import partial

from sqlalchemy import JSON, Boolean, String, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from services.pricing.holds import LIVE, HoldKind, HoldRow
from services.pricing.promotions import Usage, normalise
from services.pricing.store import Base, OrderRow
from shared.batch_reads import forget_reads
from shared.contract import Promotion
from shared.reference_cache import read_reference


class PromotionRow(Base):
    """One promotion as last published; the row a use of a limited promotion locks."""

    __tablename__ = "promotions"
    promotion_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    code: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    active: Mapped[bool] = mapped_column(Boolean)
    payload: Mapped[dict[str, object]] = mapped_column(JSON)

    def promotion(self) -> Promotion:
        return Promotion.model_validate(self.payload)


PROMOTIONS_READ = "promotions"


async def save_promotion(session: AsyncSession, promotion: Promotion) -> None:
    """Keep the promotion's full current state; uses already held keep their fate."""
    forget_reads(session, PROMOTIONS_READ)
    await session.merge(
        PromotionRow(
            promotion_id=promotion.promotion_id,
            code=normalise(promotion.code) if promotion.code else None,
            active=promotion.active,
            payload=promotion.model_dump(mode="json", by_alias=True),
        )
    )


async def candidates(session: AsyncSession, codes: Iterable[str]) -> list[Promotion]:
    """The active automatic promotions, and every promotion (even retired) the codes name;
    read once per transaction for each set of codes at most, and from the worker's
    `ReferenceCache` while it remembers them (`read_reference`)."""
    named = frozenset(normalise(code) for code in codes)
    found = await read_reference(
        session, PROMOTIONS_READ, [named], partial(load_candidates, session)
    )
    return list(found[named])


async def load_candidates(
    session: AsyncSession, code_sets: set[frozenset[str]]
) -> dict[frozenset[str], tuple[Promotion, ...]]:
    return {codes: tuple(await promotions_for(session, codes)) for codes in code_sets}


async def promotions_for(session: AsyncSession, codes: frozenset[str]) -> list[Promotion]:
    rows = await session.scalars(
        select(PromotionRow)
        .where(
            or_(
                (PromotionRow.code.is_(None)) & PromotionRow.active,
                PromotionRow.code.in_(codes),
            )
        )
        .order_by(PromotionRow.promotion_id)
    )
    return [row.promotion() for row in rows]


async def lock_limited(session: AsyncSession, promotions: Sequence[Promotion]) -> None:
    """Lock the rows of the limited promotions, in id order, until the transaction ends."""
    limited = sorted(
        p.promotion_id
        for p in promotions
        if p.max_uses_total is not None or p.max_uses_per_customer is not None
    )
    if limited:
        await session.execute(
            select(PromotionRow.promotion_id)
            .where(PromotionRow.promotion_id.in_(limited))
            .order_by(PromotionRow.promotion_id)
            .with_for_update()
        )


async def usage(session: AsyncSession, promotion_id: str, account_id: str) -> Usage:
    """Live uses of the promotion, in total and by this account (from the hold ledger)."""
    live = (
        HoldRow.kind == HoldKind.PROMOTION.value,
        HoldRow.subject == promotion_id,
        HoldRow.state.in_([s.value for s in LIVE]),
    )
    total = await session.scalar(select(func.count()).select_from(HoldRow).where(*live))
    mine = await session.scalar(
        select(func.count())
        .select_from(HoldRow)
        .join(OrderRow, OrderRow.order_id == HoldRow.order_id)
        .where(*live, OrderRow.account_id == account_id)
    )
    return Usage(total or 0, mine or 0)
