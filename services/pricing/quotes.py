"""Negotiated quotes (B2B): may this order take the quote's prices, and what are they?

Pure rules over plain data; `quote_handlers` loads, locks and publishes.

An order naming `quote_id` is priced from the quote, or rejected — never
silently priced from lists instead, since the buyer ordered at the quoted price:

- `unknown_quote`: pricing knows no such quote **or it is another account's**;
  both are answered alike, so a shop cannot learn that another account's quote
  exists.
- `quote_expired`: the quote's `valid_until` is not after the moment pricing
  prices the order (UTC, pricing's clock: what counts is when the price is fixed).
- `quote_mismatch`: the order does not fit the quote. An order **fits** when
  it is in the quote's currency, every SKU it orders is quoted, and the units
  it orders of each SKU (all its lines of that SKU together) are at most the
  quoted quantity. An order may take fewer SKUs or fewer units than quoted; a
  SKU the quote does not name refuses the whole order (no mixing with list
  prices in one quoted order).
- `quote_already_used`: a single-use quote another live order holds.

A quoted line's `price_source` is `quote:<quote_id> v<version>`; promotions do
not apply to it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from services.pricing.domain import PricedOrder, totals_of
from shared.contract import Order, PricedLine, Quote, QuoteUse, ReasonCode, ReservedLine
from shared.contract.money import round_money
from shared.rejection import Rejected


@dataclass(frozen=True)
class QuotedSku:
    quantity: int
    unit_price: Decimal


@dataclass(frozen=True)
class QuoteTerms:
    """A quote as pricing keeps it (its highest version)."""

    quote_id: str
    account_id: str
    version: int
    currency: str
    lines: dict[str, QuotedSku]
    valid_until: datetime
    single_use: bool

    @classmethod
    def of(cls, quote: Quote) -> QuoteTerms:
        return cls(
            quote.quote_id,
            quote.account_id,
            quote.version,
            quote.currency,
            {line.sku: QuotedSku(line.quantity, line.unit_price) for line in quote.lines},
            quote.valid_until,
            quote.use is QuoteUse.SINGLE,
        )

    @property
    def source(self) -> str:
        return f"quote:{self.quote_id} v{self.version}"


def newer(incoming: int, kept: int | None) -> bool:
    """Whether a quote version replaces the kept one: only a higher version does."""
    return kept is None or incoming > kept


def expired(quote: QuoteTerms, now: datetime) -> bool:
    """A quote is valid strictly before `valid_until`."""
    return now >= quote.valid_until


def quote_for(order: Order, quote: QuoteTerms | None, now: datetime) -> QuoteTerms:
    """The order's quote if the order may use it; `Rejected` (unknown or expired) otherwise."""
    if quote is None or quote.account_id != order.account_id:
        raise Rejected(
            ReasonCode.UNKNOWN_QUOTE,
            f"quote {order.quote_id!r} is not known for account {order.account_id!r}",
        )
    if expired(quote, now):
        raise Rejected(
            ReasonCode.QUOTE_EXPIRED,
            f"quote {quote.quote_id!r} (v{quote.version}) expired at "
            f"{quote.valid_until.isoformat()}",
        )
    return quote


def check_fit(order: Order, lines: Sequence[ReservedLine], quote: QuoteTerms) -> None:
    """`Rejected` (`quote_mismatch`) unless the order fits the quote, saying what does not."""
    if order.currency != quote.currency:
        raise Rejected(
            ReasonCode.QUOTE_MISMATCH,
            f"the order is in {order.currency}, quote {quote.quote_id!r} in {quote.currency}",
        )
    ordered: Counter[str] = Counter()
    for line in lines:
        ordered[line.sku] += line.quantity
    for sku, units in ordered.items():
        quoted = quote.lines.get(sku)
        if quoted is None:
            raise Rejected(
                ReasonCode.QUOTE_MISMATCH,
                f"SKU {sku!r} is not in quote {quote.quote_id!r} (v{quote.version})",
            )
        if units > quoted.quantity:
            raise Rejected(
                ReasonCode.QUOTE_MISMATCH,
                f"{units} units of SKU {sku!r} ordered; quote {quote.quote_id!r} "
                f"(v{quote.version}) covers at most {quoted.quantity}",
            )


def price_from_quote(
    order: Order, lines: Sequence[ReservedLine], quote: QuoteTerms, now: datetime
) -> PricedOrder:
    """Every line at the quote's unit price, or the whole order rejected."""
    terms = quote_for(order, quote, now)
    check_fit(order, lines, terms)
    priced = [quoted_line(line, terms, order.currency) for line in lines]
    return PricedOrder(priced, totals_of(order.currency, priced))


def quoted_line(line: ReservedLine, quote: QuoteTerms, currency: str) -> PricedLine:
    unit_price = quote.lines[line.sku].unit_price
    return PricedLine(
        **line.model_dump(),
        unit_price=unit_price,
        currency=currency,
        line_total=round_money(unit_price * line.quantity, currency),
        price_source=quote.source,
    )
