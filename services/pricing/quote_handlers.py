"""Pricing's quote handlers: keep the CRM's quotes, price an order from one, hold a single use.

- `quote_changed` (`pricing.quotes`): keep the highest version; an unsound quote
  never gets here (the contract refuses it to the DLQ with the reason), and a
  version naming another account than the kept one is refused (`another_account`).
- `price_quoted`: while pricing an order that names `quote_id`: the quote's
  prices, or a rejection (`quotes.py` says which). A single-use quote's row is
  locked and its live holds read, so a second order is refused while the first lives.
- `hold_quote`: after every other check passed, hold the single use and
  publish `used` (in the pricing transaction: exactly once).
- `order_status_changed` (`orders.status.holds`): a rejected or cancelled order
  frees its quote (`released`); an approved one keeps it (the hold is committed
  by the ledger, and nothing is published: the quote was announced `used`).
- `announce_expiries`: the clock: `expired` once per quote and valid-until.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from services.pricing import holds, quote_ledger, quotes
from services.pricing.domain import PricedOrder
from services.pricing.holds import HoldKind, HoldState
from services.pricing.metrics import QUOTE_USES
from services.pricing.quotes import QuoteTerms
from shared.contract import (
    Order,
    OrderStatusChanged,
    Quote,
    QuoteEvent,
    QuoteEventKind,
    ReasonCode,
    ReservedLine,
)
from shared.db import ServiceDatabase, Transaction
from shared.rejection import Refused, Rejected
from shared.topics import QUOTE_EVENTS

log = logging.getLogger(__name__)


async def quote_changed(quote: Quote, tx: Transaction) -> None:
    """Keep the highest version; a version naming another account than the kept one is refused.

    A quote is negotiated with one account: moving it would give that account's quote to
    another, and announce its live orders' `released` under the other account's name.
    """
    kept = await quote_ledger.find_quote(tx.session, quote.quote_id, lock=True)
    if kept is not None and kept.account_id != quote.account_id:
        raise Refused(
            "another_account",
            f"quote {quote.quote_id} belongs to account {kept.account_id}; "
            f"version {quote.version} names account {quote.account_id}",
        )
    if not await quote_ledger.save_quote(tx.session, quote):
        log.info("quote %s v%d is not newer than the one kept", quote.quote_id, quote.version)


async def price_quoted(
    tx: Transaction, order: Order, lines: Sequence[ReservedLine], now: datetime
) -> tuple[PricedOrder, QuoteTerms]:
    """The order priced from its quote, the quote's single use still free; `Rejected` otherwise."""
    assert order.quote_id is not None
    row = await quote_ledger.find_quote(tx.session, order.quote_id, lock=True)
    try:
        terms = quotes.quote_for(order, row.terms() if row is not None else None, now)
        priced = quotes.price_from_quote(order, lines, terms, now)
        if terms.single_use:
            await refuse_if_taken(tx, terms)
    except Rejected as rejected:
        tx.on_commit(QUOTE_USES.labels(rejected.reason.code.value).inc)
        raise
    return priced, terms


async def refuse_if_taken(tx: Transaction, quote: QuoteTerms) -> None:
    taken = await holds.live_holds(tx.session, HoldKind.QUOTE, quote.quote_id)
    if taken:
        raise Rejected(
            ReasonCode.QUOTE_ALREADY_USED,
            f"single-use quote {quote.quote_id!r} is already used by another order",
        )


async def hold_quote(tx: Transaction, order: Order, quote: QuoteTerms, total: Decimal) -> None:
    """Take the quote's single use for the order (a multi-use quote only counts as priced)."""
    if not quote.single_use:
        tx.on_commit(QUOTE_USES.labels("priced").inc)
        return
    quote_ledger.record_use(tx.session, order.order_id, quote.quote_id, quote.version)
    await holds.hold(
        tx.session, HoldKind.QUOTE, order.order_id, quote.quote_id, total, order.currency
    )
    await publish(
        tx, quote.quote_id, order.account_id, quote.version, QuoteEventKind.USED, order.order_id
    )
    tx.on_commit(QUOTE_USES.labels(QuoteEventKind.USED.value).inc)


async def order_status_changed(event: OrderStatusChanged, tx: Transaction) -> None:
    """A rejected or cancelled order frees its single-use quote; runs before the ledger moves."""
    if holds.fate_of(event.status) is not HoldState.RELEASED:
        return
    for row in await holds.holds_of_order(tx.session, HoldKind.QUOTE, event.order_id):
        if not holds.moves(HoldState(row.state), HoldState.RELEASED):
            continue
        quote = await quote_ledger.find_quote(tx.session, row.subject)
        if quote is None:  # quotes are never deleted; a hold names one pricing kept
            continue
        version = await quote_ledger.version_used(tx.session, event.order_id) or quote.version
        await publish(
            tx,
            quote.quote_id,
            quote.account_id,
            version,
            QuoteEventKind.RELEASED,
            event.order_id,
        )
        tx.on_commit(QUOTE_USES.labels(QuoteEventKind.RELEASED.value).inc)


async def announce_expiries(db: ServiceDatabase, now: datetime) -> list[str]:
    """Publish `expired` for every quote whose valid-until passed; each in its own transaction."""
    async with db.sessions() as session:
        due = await quote_ledger.due_expiries(session, now)
    for quote_id in due:
        async with db.transaction() as tx:
            row = await quote_ledger.find_quote(tx.session, quote_id, lock=True)
            if row is None or row.expiry_announced or quote_ledger.as_utc(row.valid_until) > now:
                continue
            row.expiry_announced = True
            await publish(tx, quote_id, row.account_id, row.version, QuoteEventKind.EXPIRED, None)
            tx.on_commit(QUOTE_USES.labels(QuoteEventKind.EXPIRED.value).inc)
    return due


async def publish(
    tx: Transaction,
    quote_id: str,
    account_id: str,
    version: int,
    kind: QuoteEventKind,
    order_id: str | None,
) -> None:
    await tx.publish(
        QUOTE_EVENTS,
        QuoteEvent.new(
            quote_id=quote_id, account_id=account_id, version=version, kind=kind, order_id=order_id
        ),
    )
