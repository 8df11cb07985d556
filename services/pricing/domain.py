"""Pricing's rules: what each line costs this customer, what the order totals, how it may be paid.

Pure functions over plain data. The store loads the account and the price lists
an order needs, these rules decide, the app publishes the outcome.

Where a line's price comes from:

- **B2C** pays list prices from `list-<CURRENCY>` (e.g. `list-EUR`). An account
  record is optional: guests check out without one.
- **B2B** needs a known business account and pays its contract price list
  (`price_list_id`), which must be in the order's currency.
- **Fallback to list prices (a decision).** A SKU the contract does not price —
  absent from it, or ordered below its smallest tier — is priced from
  `list-<CURRENCY>` instead of rejecting the order: contracts cover the
  negotiated assortment, the rest of the catalog is sold to the account at list
  price. `price_source` on the line says which list priced it, so the buyer and
  an approver can see it. A contract list that pricing has not received is *not*
  a fallback case: the order is rejected (`price_not_found`), because pricing a
  contract customer at list prices by accident is the expensive mistake.
- **Volume tiers:** within a list, the tier with the highest `min_quantity` not
  above the line's quantity wins. A list whose tiers *raise* the unit price for a
  larger quantity is refused (dead-letter topic, the previous version stays):
  buyers expect volume tiers never to cost more per unit.

Totals: each line total is `unit_price * quantity` rounded to the currency's minor
unit (JPY 0, EUR 2, BHD 3 decimals) with banker's rounding (`round_money`);
`subtotal` is their sum and `total` equals `subtotal`. Not priced yet:
tax, shipping, promotions and promo codes. An order naming a negotiated quote is
priced from the quote instead (`services/pricing/quotes.py`). The credit limit
is checked after pricing, in `services/pricing/credit.py`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from shared.contract import (
    Channel,
    Order,
    PaymentMethod,
    PricedLine,
    PriceList,
    ReasonCode,
    ReservedLine,
    Totals,
    round_money,
)
from shared.rejection import Rejected

ALWAYS_ALLOWED_FOR_BUSINESS = frozenset({PaymentMethod.CARD, PaymentMethod.PREPAID})


def list_price_list_id(currency: str) -> str:
    """The public list prices in one currency, e.g. `list-EUR`."""
    return f"list-{currency}"


class AmbiguousPriceList(ValueError):
    """A price list that does not say one price per SKU and quantity; it is not applied."""


@dataclass(frozen=True)
class Tier:
    """From `min_quantity` units on, each unit costs `unit_price`."""

    min_quantity: int
    unit_price: Decimal


@dataclass(frozen=True)
class PriceBook:
    """One price list as pricing reads it: the volume tiers of each SKU it prices."""

    price_list_id: str
    currency: str
    tiers: Mapping[str, Sequence[Tier]]

    @classmethod
    def of(cls, price_list: PriceList) -> PriceBook:
        """Read a published price list; refuse one that would make a line's price a guess.

        Two tiers of one SKU at the same `min_quantity` (in one entry or in two
        entries for the SKU) leave the price undecided: that raises
        `AmbiguousPriceList`, so the list goes to the dead-letter topic and the
        previous version stays in force. (A negative price never gets here: the
        contract refuses it.)
        """
        tiers: dict[str, dict[int, Decimal]] = {}
        for entry in price_list.prices:
            by_quantity = tiers.setdefault(entry.sku, {})
            for tier in entry.tiers:
                if tier.min_quantity in by_quantity:
                    raise AmbiguousPriceList(
                        f"price list {price_list.price_list_id!r} prices SKU {entry.sku!r} twice "
                        f"from {tier.min_quantity} units"
                    )
                by_quantity[tier.min_quantity] = tier.unit_price
        book = cls(
            price_list.price_list_id,
            price_list.currency,
            {
                sku: tuple(Tier(q, price) for q, price in sorted(by_quantity.items()))
                for sku, by_quantity in tiers.items()
            },
        )
        book.refuse_rising_tiers()
        return book

    def refuse_rising_tiers(self) -> None:
        """Volume tiers never raise the unit price: a list where buying more costs more per
        unit is a data error (a swapped price, a missing digit), not a deal. It raises
        `AmbiguousPriceList` and goes to the dead-letter topic like any undecided list."""
        for sku, sku_tiers in self.tiers.items():
            for lower, higher in itertools.pairwise(sku_tiers):
                if higher.unit_price > lower.unit_price:
                    raise AmbiguousPriceList(
                        f"price list {self.price_list_id!r} raises the unit price of SKU "
                        f"{sku!r} from {lower.unit_price} (from {lower.min_quantity} units) to "
                        f"{higher.unit_price} (from {higher.min_quantity} units); volume tiers "
                        "may only keep or lower it"
                    )

    def tier_for(self, sku: str, quantity: int) -> Tier | None:
        """The tier with the highest `min_quantity` not above `quantity`; None if unpriced."""
        reached = [tier for tier in self.tiers.get(sku, ()) if tier.min_quantity <= quantity]
        return max(reached, key=lambda tier: tier.min_quantity, default=None)


@dataclass(frozen=True)
class AccountTerms:
    """What pricing knows of an account: its channel, contract list and agreed invoice terms."""

    account_id: str
    channel: Channel
    price_list_id: str | None
    payment_terms: tuple[str, ...]


@dataclass(frozen=True)
class UnitPrice:
    amount: Decimal
    source: str
    """Where the price came from, e.g. `list:list-EUR` or `contract:acme-2026 tier>=100`."""


@dataclass(frozen=True)
class PriceSource:
    """A price list in the role it plays for this order: the account's contract, or list prices."""

    kind: Literal["contract", "list"]
    book: PriceBook

    def unit_price(self, sku: str, quantity: int) -> UnitPrice | None:
        tier = self.book.tier_for(sku, quantity)
        if tier is None:
            return None
        source = f"{self.kind}:{self.book.price_list_id}"
        if tier.min_quantity > 1:
            source += f" tier>={tier.min_quantity}"
        return UnitPrice(tier.unit_price, source)


@dataclass(frozen=True)
class PricedOrder:
    lines: list[PricedLine]
    totals: Totals


# --- the account -------------------------------------------------------------------------


def business_account(order: Order, account: AccountTerms | None) -> AccountTerms:
    """A B2B order needs a business account pricing knows: its contract and terms live there."""
    if account is None:
        raise Rejected(
            ReasonCode.UNKNOWN_ACCOUNT,
            f"business account {order.account_id!r} is not known to pricing",
        )
    if account.channel is not Channel.B2B:
        raise Rejected(
            ReasonCode.UNKNOWN_ACCOUNT,
            f"account {order.account_id!r} is a consumer account; it cannot place B2B orders",
        )
    return account


# --- prices ------------------------------------------------------------------------------


def price_lists_to_consult(order: Order, account: AccountTerms | None) -> set[str]:
    """The ids of the price lists the store should load for this order."""
    wanted = {list_price_list_id(order.currency)}
    if order.channel is Channel.B2B and account is not None and account.price_list_id:
        wanted.add(account.price_list_id)
    return wanted


def price_sources(
    order: Order, account: AccountTerms | None, price_books: Mapping[str, PriceBook]
) -> list[PriceSource]:
    """The lists to price from, best first: a B2B account's contract, then list prices."""
    sources = []
    if order.channel is Channel.B2B:
        business = business_account(order, account)
        if business.price_list_id:
            sources.append(PriceSource("contract", contract_of(order, business, price_books)))
    list_prices = price_books.get(list_price_list_id(order.currency))
    if list_prices is not None and list_prices.currency == order.currency:
        sources.append(PriceSource("list", list_prices))
    if not sources:
        raise Rejected(
            ReasonCode.CURRENCY_NOT_SUPPORTED,
            f"nothing is priced in {order.currency}: there is no price list "
            f"{list_price_list_id(order.currency)!r} in {order.currency}",
        )
    return sources


def contract_of(
    order: Order, account: AccountTerms, price_books: Mapping[str, PriceBook]
) -> PriceBook:
    """The account's contract list, in the order's currency; never silently list prices instead."""
    contract_id = account.price_list_id
    contract = price_books.get(contract_id) if contract_id else None
    if contract is None:
        raise Rejected(
            ReasonCode.PRICE_NOT_FOUND,
            f"contract price list {contract_id!r} of account {account.account_id!r} "
            "is not known to pricing",
        )
    if contract.currency != order.currency:
        raise Rejected(
            ReasonCode.CURRENCY_NOT_SUPPORTED,
            f"the order is in {order.currency}, but account {account.account_id!r} buys in "
            f"{contract.currency} (contract price list {contract.price_list_id!r})",
        )
    return contract


def price_line(
    line_no: int, line: ReservedLine, sources: Sequence[PriceSource], currency: str
) -> PricedLine:
    """Price one line from the first source that prices its SKU at its quantity."""
    price = next(
        (found for s in sources if (found := s.unit_price(line.sku, line.quantity)) is not None),
        None,
    )
    if price is None:
        consulted = " or ".join(repr(s.book.price_list_id) for s in sources)
        raise Rejected(
            ReasonCode.PRICE_NOT_FOUND,
            f"line {line_no}: SKU {line.sku!r} has no price for {line.quantity} units "
            f"in price list {consulted}",
        )
    return PricedLine(
        **line.model_dump(),
        unit_price=price.amount,
        currency=currency,
        line_total=round_money(price.amount * line.quantity, currency),
        price_source=price.source,
    )


def totals_of(currency: str, lines: Iterable[PricedLine]) -> Totals:
    """Sum of the rounded line totals; no tax or shipping yet, so `total` is the `subtotal`."""
    subtotal = round_money(sum((line.line_total for line in lines), Decimal(0)), currency)
    return Totals(currency=currency, subtotal=subtotal, total=subtotal)


def price_order(
    order: Order,
    lines: Sequence[ReservedLine],
    account: AccountTerms | None,
    price_books: Mapping[str, PriceBook],
) -> PricedOrder:
    """Price every line the catalog reserved and total the order, or reject it whole."""
    sources = price_sources(order, account, price_books)
    priced = [
        price_line(line_no, line, sources, order.currency)
        for line_no, line in enumerate(lines, start=1)
    ]
    return PricedOrder(priced, totals_of(order.currency, priced))


# --- payment -----------------------------------------------------------------------------


def check_payment_terms(order: Order, account: AccountTerms | None) -> None:
    """May this customer pay this way?

    Consumers pay by card, prepaid or installments, never by invoice. A business
    may always pay by card or prepaid; installments are a consumer offer; an
    invoice needs terms (e.g. NET30) that are agreed in the account.
    """
    method = order.payment.method
    if order.channel is Channel.B2C:
        if method is PaymentMethod.INVOICE:
            raise Rejected(
                ReasonCode.PAYMENT_TERMS_NOT_ALLOWED,
                "consumer orders cannot be paid by invoice; pay by card, prepaid or installments",
            )
        return
    business = business_account(order, account)
    if method in ALWAYS_ALLOWED_FOR_BUSINESS:
        return
    if method is PaymentMethod.INSTALLMENTS:
        raise Rejected(
            ReasonCode.PAYMENT_TERMS_NOT_ALLOWED,
            f"installments are offered to consumers only; account {business.account_id!r} "
            f"may pay by {business_methods(business)}",
        )
    check_invoice_terms(order.payment.terms, business)


def check_invoice_terms(terms: str | None, account: AccountTerms) -> None:
    allowed = account.payment_terms
    if not allowed:
        raise Rejected(
            ReasonCode.PAYMENT_TERMS_NOT_ALLOWED,
            f"account {account.account_id!r} has no invoice terms agreed; pay by card or prepaid",
        )
    if terms is None:
        raise Rejected(
            ReasonCode.PAYMENT_TERMS_NOT_ALLOWED,
            f"an invoice needs payment terms; account {account.account_id!r} may use "
            f"{', '.join(allowed)}",
        )
    if terms not in allowed:
        raise Rejected(
            ReasonCode.PAYMENT_TERMS_NOT_ALLOWED,
            f"invoice terms {terms!r} are not agreed with account {account.account_id!r}; "
            f"allowed: {', '.join(allowed)}",
        )


def business_methods(account: AccountTerms) -> str:
    """How a business account may pay, for messages: 'card, prepaid or invoice (NET30, NET60)'."""
    if not account.payment_terms:
        return "card or prepaid"
    return f"card, prepaid or invoice ({', '.join(account.payment_terms)})"
