"""Promotions and promo codes: which apply to an order, what each takes off, and why not.

Pure rules over the priced lines. The store loads the promotions an order may
get (the automatic ones and those its codes name) and how often each was used;
these rules decide; `promotion_handlers` holds one use per applied promotion.

**The combination rule** (docs/pricing.md, "Promotions and promo codes"):

1. Each line gets **at most one line promotion** (scope `sku` or `category`):
   the one that takes the most off it (ties: the smaller `promotion_id`).
   Lines priced from a quote get none (`quoted_line`).
2. The order then gets **at most one order promotion** (scope `order`): the one
   that takes the most off the subtotal left after the line promotions.
3. Automatic promotions and promo codes compete alike; a code only makes its
   promotion a candidate. A code outdone by a better promotion everywhere is
   not an error: it shows as `better_promotion_applied` and uses nothing.

Whether a promotion may apply to this order at all (window, channel, currency,
uses left, minimum order value on the subtotal before promotions) is decided
first; a named code that may not apply, or that matches nothing in the order,
rejects the order `invalid_promo_code` with the code and the reason.

**Never negative:** a percentage is at most 100 % of what it applies to, a
fixed amount is capped at it, so no line total or order total goes below 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from shared.categories import within
from shared.contract import (
    Order,
    PricedLine,
    Promotion,
    PromotionKind,
    PromotionOutcome,
    PromotionScope,
    ReasonCode,
    Totals,
    round_money,
)
from shared.rejection import Rejected

MAX_NOTES = 100
"""Most promotions listed per line or order (the contract's bound): the applied one first."""

QUOTE_SOURCE = "quote:"
"""A line priced from a negotiated quote (`price_source` starts with it) gets no promotion."""


class NotApplied(StrEnum):
    """Why a promotion did not apply: a closed list, also the promo-code rejection reasons."""

    UNKNOWN = "unknown"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    EXHAUSTED = "exhausted"
    CUSTOMER_LIMIT_REACHED = "customer_limit_reached"
    CHANNEL_NOT_ALLOWED = "channel_not_allowed"
    CURRENCY_MISMATCH = "currency_mismatch"
    MINIMUM_NOT_MET = "minimum_not_met"
    NOT_APPLICABLE = "not_applicable"
    QUOTED_LINE = "quoted_line"
    BETTER_PROMOTION_APPLIED = "better_promotion_applied"


CODE_REJECTIONS = tuple(
    r for r in NotApplied if r not in (NotApplied.QUOTED_LINE, NotApplied.BETTER_PROMOTION_APPLIED)
)
"""The reasons a named promo code rejects an order (metric label values)."""


@dataclass(frozen=True)
class Usage:
    """Live (held or committed) uses of a promotion: in total, and by this order's customer."""

    total: int = 0
    by_customer: int = 0


@dataclass(frozen=True)
class Promoted:
    """The order after promotions: its lines and totals, and each applied promotion's discount."""

    lines: list[PricedLine]
    totals: Totals
    applied: dict[str, Decimal] = field(default_factory=dict)


def normalise(code: str) -> str:
    """Codes are case-insensitive: 'spring10' is 'SPRING10'."""
    return code.upper()


def barrier(
    promotion: Promotion, order: Order, at: datetime, usage: Usage, gross: Decimal
) -> NotApplied | None:
    """Why this promotion may not apply to this order at all; None if it may."""
    if not promotion.active:
        return NotApplied.UNKNOWN
    if at < promotion.valid_from:
        return NotApplied.NOT_YET_VALID
    if at >= promotion.valid_until:
        return NotApplied.EXPIRED
    if order.channel not in promotion.channels:
        return NotApplied.CHANNEL_NOT_ALLOWED
    if promotion.currency is not None and promotion.currency != order.currency:
        return NotApplied.CURRENCY_MISMATCH
    if promotion.max_uses_total is not None and usage.total >= promotion.max_uses_total:
        return NotApplied.EXHAUSTED
    limit = promotion.max_uses_per_customer
    if limit is not None and usage.by_customer >= limit:
        return NotApplied.CUSTOMER_LIMIT_REACHED
    if promotion.min_order_value is not None and gross < promotion.min_order_value:
        return NotApplied.MINIMUM_NOT_MET
    return None


def covers(promotion: Promotion, line: PricedLine) -> bool:
    """Whether a line promotion targets this line's SKU or category."""
    if promotion.scope is PromotionScope.SKU:
        return line.sku in promotion.skus
    if promotion.scope is PromotionScope.CATEGORY:
        return any(within(line.category, subtree) for subtree in promotion.categories)
    return False


def discount_on(promotion: Promotion, base: Decimal, units: int, currency: str) -> Decimal:
    """What the promotion takes off `base` (a line's or the order's amount); never more than it.

    A fixed amount is per unit on a line (`units`), once on the order (`units` 1).
    """
    if promotion.kind is PromotionKind.PERCENTAGE:
        off = round_money(base * (promotion.percent or Decimal(0)) / 100, currency)
    else:
        off = (promotion.amount or Decimal(0)) * units
    return max(Decimal(0), min(off, base))


def outcome(
    promotion: Promotion, discount: Decimal, reason: NotApplied | None = None
) -> PromotionOutcome:
    return PromotionOutcome(
        promotion_id=promotion.promotion_id,
        name=promotion.name,
        kind=promotion.kind,
        scope=promotion.scope,
        code=promotion.code,
        applied=reason is None,
        discount=discount if reason is None else Decimal(0),
        reason=None if reason is None else reason.value,
    )


def gross_of(line: PricedLine, currency: str) -> Decimal:
    """The line before any promotion: its unit price times its quantity, rounded."""
    return round_money(line.unit_price * line.quantity, currency)


def promote_line(
    line: PricedLine,
    candidates: Sequence[Promotion],
    barred: Mapping[str, NotApplied],
    currency: str,
) -> tuple[PricedLine, Promotion | None]:
    """The line with its best line promotion applied, and every other one it was considered for."""
    matching = sorted(
        (p for p in candidates if p.scope is not PromotionScope.ORDER and covers(p, line)),
        key=lambda p: p.promotion_id,
    )
    gross = gross_of(line, currency)
    quoted = line.price_source.startswith(QUOTE_SOURCE)
    offers = {
        p.promotion_id: discount_on(p, gross, line.quantity, currency)
        for p in matching
        if p.promotion_id not in barred and not quoted
    }
    best = max(
        matching, key=lambda p: (offers.get(p.promotion_id, Decimal(-1)), _neg(p)), default=None
    )
    if best is None or best.promotion_id not in offers:
        best = None
    notes = []
    for p in matching:
        if p is best:
            notes.append(outcome(p, offers[p.promotion_id]))
        elif quoted:
            notes.append(outcome(p, Decimal(0), NotApplied.QUOTED_LINE))
        else:
            why = barred.get(p.promotion_id, NotApplied.BETTER_PROMOTION_APPLIED)
            notes.append(outcome(p, Decimal(0), why))
    discount = offers[best.promotion_id] if best else Decimal(0)
    source = f"{line.price_source} promotion:{best.promotion_id}" if best else line.price_source
    return (
        line.model_copy(
            update={
                "discount": discount,
                "line_total": gross - discount,
                "price_source": source[:200],
                "promotions": first_applied(notes),
            }
        ),
        best,
    )


def _neg(promotion: Promotion) -> tuple[int, ...]:
    """Tie-break key: the smaller promotion id wins a tie."""
    return tuple(-ord(c) for c in promotion.promotion_id)


def apply_promotions(
    order: Order,
    lines: Sequence[PricedLine],
    candidates: Sequence[Promotion],
    usage: Mapping[str, Usage],
    at: datetime,
) -> Promoted:
    """Apply the combination rule to the priced lines; reject an order whose code may not apply.

    `candidates` are the automatic promotions and those the order's codes name
    (retired ones included, so a retired code reads as unknown).
    """
    currency = order.currency
    gross = round_money(sum((gross_of(line, currency) for line in lines), Decimal(0)), currency)
    barred = {
        p.promotion_id: why
        for p in candidates
        if (why := barrier(p, order, at, usage.get(p.promotion_id, Usage()), gross)) is not None
    }
    check_codes(order, candidates, barred)
    live = [p for p in candidates if p.active]
    applied: dict[str, Decimal] = {}
    promoted = []
    for line in lines:
        new, best = promote_line(line, live, barred, currency)
        promoted.append(new)
        if best is not None:
            applied[best.promotion_id] = applied.get(best.promotion_id, Decimal(0)) + new.discount
    subtotal = round_money(sum((line.line_total for line in promoted), Decimal(0)), currency)
    order_notes, order_best, order_discount = promote_order(live, barred, subtotal, currency)
    if order_best is not None:
        applied[order_best.promotion_id] = order_discount
    check_codes_matched(order, candidates, promoted, order_notes)
    totals = Totals(
        currency=currency,
        subtotal=subtotal,
        discount=order_discount,
        total=subtotal - order_discount,
        promotions=order_notes,
    )
    return Promoted(promoted, totals, applied)


def promote_order(
    candidates: Sequence[Promotion],
    barred: Mapping[str, NotApplied],
    subtotal: Decimal,
    currency: str,
) -> tuple[list[PromotionOutcome], Promotion | None, Decimal]:
    """The best order promotion on the subtotal after line promotions, and the others' reasons."""
    considered = sorted(
        (p for p in candidates if p.scope is PromotionScope.ORDER), key=lambda p: p.promotion_id
    )
    offers = {
        p.promotion_id: discount_on(p, subtotal, 1, currency)
        for p in considered
        if p.promotion_id not in barred
    }
    best = max(
        (p for p in considered if p.promotion_id in offers),
        key=lambda p: (offers[p.promotion_id], _neg(p)),
        default=None,
    )
    notes = [
        outcome(p, offers[p.promotion_id])
        if p is best
        else outcome(p, Decimal(0), barred.get(p.promotion_id, NotApplied.BETTER_PROMOTION_APPLIED))
        for p in considered
    ]
    return first_applied(notes), best, offers[best.promotion_id] if best else Decimal(0)


def first_applied(notes: list[PromotionOutcome]) -> list[PromotionOutcome]:
    """The applied promotion first, then the others by id, at most `MAX_NOTES`: a shop with
    hundreds of automatic promotions must not make an order unpublishable."""
    return sorted(notes, key=lambda note: not note.applied)[:MAX_NOTES]


def check_codes(
    order: Order, candidates: Sequence[Promotion], barred: Mapping[str, NotApplied]
) -> None:
    """Each code the order names is known and may apply to this order; else `invalid_promo_code`."""
    for code in named_codes(order):
        mine = [p for p in candidates if p.code is not None and normalise(p.code) == code]
        if not mine:
            raise invalid_code(code, NotApplied.UNKNOWN, "no such promo code")
        usable = [p for p in mine if p.promotion_id not in barred]
        if not usable:
            why = barred[mine[0].promotion_id]
            raise invalid_code(code, why, explain(mine[0], why))


def check_codes_matched(
    order: Order,
    candidates: Sequence[Promotion],
    lines: Sequence[PricedLine],
    order_notes: Sequence[PromotionOutcome],
) -> None:
    """A code whose promotion covers nothing it may discount (no line but quoted ones, and no
    order scope) is refused `not_applicable`."""
    reached = {n.promotion_id for n in order_notes}
    reached |= {
        n.promotion_id
        for line in lines
        for n in line.promotions
        if n.reason != NotApplied.QUOTED_LINE
    }
    for code in named_codes(order):
        mine = {p.promotion_id for p in candidates if p.code and normalise(p.code) == code}
        if not mine & reached:
            raise invalid_code(
                code,
                NotApplied.NOT_APPLICABLE,
                "it covers none of the order's products (lines priced from a quote get none)",
            )


def named_codes(order: Order) -> list[str]:
    """The order's codes, normalised, each once, in the order given."""
    return list(dict.fromkeys(normalise(code) for code in order.promo_codes))


class InvalidPromoCode(Rejected):
    """A code that rejects the order; `why` is the closed reason for metrics."""

    def __init__(self, code: str, why: NotApplied, message: str) -> None:
        super().__init__(ReasonCode.INVALID_PROMO_CODE, message)
        self.code = code
        self.why = why


def invalid_code(code: str, why: NotApplied, detail: str) -> InvalidPromoCode:
    return InvalidPromoCode(code, why, f"promo code {code!r}: {why.value}: {detail}")


def explain(promotion: Promotion, why: NotApplied) -> str:
    """A shop-readable reason, with the figures that decided it."""
    texts = {
        NotApplied.UNKNOWN: "the promotion has ended (retired)",
        NotApplied.EXPIRED: f"valid until {promotion.valid_until.isoformat()}",
        NotApplied.NOT_YET_VALID: f"valid from {promotion.valid_from.isoformat()}",
        NotApplied.EXHAUSTED: f"all {promotion.max_uses_total} uses are taken",
        NotApplied.CUSTOMER_LIMIT_REACHED: (
            f"already used {promotion.max_uses_per_customer} time(s) by this customer"
        ),
        NotApplied.CHANNEL_NOT_ALLOWED: (
            f"offered to {', '.join(c.value for c in promotion.channels)} orders only"
        ),
        NotApplied.CURRENCY_MISMATCH: f"for orders in {promotion.currency} only",
        NotApplied.MINIMUM_NOT_MET: (
            f"needs an order value of at least {promotion.min_order_value} {promotion.currency}"
        ),
    }
    return texts.get(why, why.value)
