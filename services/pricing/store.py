"""Pricing's own database: accounts' terms, price lists with their tiers, and priced orders."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from functools import partial

from sqlalchemy import JSON, Integer, String, and_, delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.pricing.domain import AccountTerms, PriceBook, Tier
from shared.batch_reads import find, forget_reads, read_ahead
from shared.contract import Account, Channel, Order
from shared.db import ExactDecimal, OrderRecord, messaging_tables
from shared.reference_cache import read_reference


class Base(DeclarativeBase):
    pass


messaging_tables(Base.metadata)


class AccountRow(Base):
    __tablename__ = "accounts"
    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    channel: Mapped[str] = mapped_column(String(3))
    price_list_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    payment_terms: Mapped[list[str]] = mapped_column(JSON)


class PriceListRow(Base):
    __tablename__ = "price_lists"
    price_list_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3))


class PriceTierRow(Base):
    """One volume tier of one SKU in one list; a list's tiers are replaced whole on each update."""

    __tablename__ = "price_tiers"
    price_list_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    min_quantity: Mapped[int] = mapped_column(Integer, primary_key=True)
    unit_price: Mapped[Decimal] = mapped_column(ExactDecimal)


class OrderRow(OrderRecord, Base):
    """Every order pricing has seen and its outcome: a replayed order is never priced twice."""

    __tablename__ = "orders"
    currency: Mapped[str] = mapped_column(String(3))
    total: Mapped[Decimal | None] = mapped_column(ExactDecimal, nullable=True)


class OrderStates:
    PRICED = "priced"
    REJECTED = "rejected"


# --- reference data ---------------------------------------------------------------------


async def save_account(session: AsyncSession, account: Account) -> None:
    forget_reads(session, ACCOUNTS_READ)
    await session.merge(
        AccountRow(
            account_id=account.account_id,
            channel=account.channel.value,
            price_list_id=account.price_list_id,
            payment_terms=list(account.payment_terms),
        )
    )


async def save_price_list(session: AsyncSession, book: PriceBook) -> None:
    """Replace the list and all its tiers: each message carries the list's full current state."""
    forget_reads(session, PRICES_READ)
    await session.merge(PriceListRow(price_list_id=book.price_list_id, currency=book.currency))
    await session.execute(
        delete(PriceTierRow).where(PriceTierRow.price_list_id == book.price_list_id)
    )
    session.add_all(
        PriceTierRow(
            price_list_id=book.price_list_id,
            sku=sku,
            min_quantity=tier.min_quantity,
            unit_price=tier.unit_price,
        )
        for sku, tiers in book.tiers.items()
        for tier in tiers
    )


# --- reads for the rules -------------------------------------------------------------------


ACCOUNTS_READ = "accounts"


async def account_terms(session: AsyncSession, account_id: str) -> AccountTerms | None:
    """The account's terms, or None for one pricing was never told of; from the worker's
    `ReferenceCache` while it remembers them (`read_reference`)."""
    found = await read_reference(
        session, ACCOUNTS_READ, [account_id], partial(load_account_terms, session)
    )
    return found.get(account_id)


async def load_account_terms(
    session: AsyncSession, account_ids: set[str]
) -> dict[str, AccountTerms]:
    rows = await session.scalars(select(AccountRow).where(AccountRow.account_id.in_(account_ids)))
    return {
        row.account_id: AccountTerms(
            row.account_id, Channel(row.channel), row.price_list_id, tuple(row.payment_terms)
        )
        for row in rows
    }


PRICES_READ = "prices"


@dataclass(frozen=True)
class ListedPrice:
    """One SKU's tiers in one list, with the list's currency (no tiers: the list exists
    but does not price the SKU)."""

    currency: str
    tiers: tuple[Tier, ...]


async def price_books(
    session: AsyncSession, price_list_ids: set[str], skus: set[str]
) -> dict[str, PriceBook]:
    """The named lists that exist, each holding only the tiers of `skus` (lists can be long).

    Each (list, SKU) is read once per transaction at most: a batch of orders on
    the same lists and products reads their prices once; and transactions that
    follow are answered from the worker's `ReferenceCache` (`read_reference`).
    """
    pairs = {(list_id, sku) for list_id in price_list_ids for sku in skus}
    listed = await read_reference(session, PRICES_READ, pairs, partial(load_prices, session))
    currencies = {list_id: price.currency for (list_id, _), price in listed.items()}
    return {
        list_id: PriceBook(
            list_id,
            currency,
            {
                sku: price.tiers
                for (priced_in, sku), price in listed.items()
                if priced_in == list_id and price.tiers
            },
        )
        for list_id, currency in currencies.items()
    }


async def load_prices(
    session: AsyncSession, pairs: set[tuple[str, str]]
) -> dict[tuple[str, str], ListedPrice]:
    """One statement: each list joined with its tiers of those SKUs, if any."""
    list_ids, skus = {list_id for list_id, _ in pairs}, {sku for _, sku in pairs}
    rows = await session.execute(
        select(PriceListRow, PriceTierRow)
        .outerjoin(
            PriceTierRow,
            and_(
                PriceTierRow.price_list_id == PriceListRow.price_list_id,
                PriceTierRow.sku.in_(skus),
            ),
        )
        .where(PriceListRow.price_list_id.in_(list_ids))
    )
    currencies: dict[str, str] = {}
    tiers: dict[tuple[str, str], list[Tier]] = defaultdict(list)
    for price_list, tier in rows:
        currencies[price_list.price_list_id] = price_list.currency
        if tier is not None:
            tiers[(tier.price_list_id, tier.sku)].append(Tier(tier.min_quantity, tier.unit_price))
    return {
        (list_id, sku): ListedPrice(currencies[list_id], tuple(tiers.get((list_id, sku), ())))
        for list_id, sku in pairs
        if list_id in currencies
    }


async def find_order(session: AsyncSession, order_id: str) -> OrderRow | None:
    return await find(session, OrderRow, order_id)


async def read_orders_ahead(session: AsyncSession, orders: Iterable[tuple[str, str]]) -> None:
    """Whether each order (id, account) of a batch was priced before, and its account's
    terms: two statements for the batch at most (none for accounts the worker remembers)."""
    keys = set(orders)
    await read_ahead(session, OrderRow, {order_id for order_id, _ in keys})
    account_ids = {account_id for _, account_id in keys}
    await read_reference(session, ACCOUNTS_READ, account_ids, partial(load_account_terms, session))


# --- changes -----------------------------------------------------------------------------


async def record_order(
    session: AsyncSession, order: Order, state: str, total: Decimal | None = None
) -> None:
    """Remember the order's outcome; `total` is what a priced order came to."""
    session.add(
        OrderRow(
            order_id=order.order_id,
            account_id=order.account_id,
            channel=order.channel.value,
            state=state,
            currency=order.currency,
            total=total,
        )
    )
