"""Pricing's own metrics: credit checks and payments, never per account.

Credit utilisation is a histogram of the ratio `exposure after the order /
limit`, observed once per priced B2B order of an account with a limit — the
buckets are the utilisation bands (up to 50 %, 80 % (the usual warning), 90 %,
100 %, over). Labels are closed lists only (the check's outcome); an account id
would make a series per customer.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from services.pricing.credit import CreditOutcome

PAYMENT_OUTCOMES = ("partial", "settled", "overpaid")

CREDIT_CHECKS = Counter(
    "tradelane_credit_checks_total",
    "Credit checks of priced B2B orders, by outcome: unlimited, within_limit, warned "
    "(past the account's warning threshold), finance_override (over the limit, sent to "
    "finance) or rejected (credit_limit_exceeded).",
    ["outcome"],
)
CREDIT_UTILISATION = Histogram(
    "tradelane_credit_utilisation_ratio",
    "Open exposure after the order over the account's credit limit, at pricing time "
    "(1 = at the limit), for accounts with a limit.",
    buckets=(0.25, 0.5, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0),
)
CREDIT_PAYMENTS = Counter(
    "tradelane_credit_payments_total",
    "Payments applied to invoiced orders, by outcome: partial (the order still owes), "
    "settled (paid in full) or overpaid (the surplus is credit on account).",
    ["outcome"],
)

QUOTE_OUTCOMES = (
    "used",
    "priced",
    "released",
    "expired",
    "unknown_quote",
    "quote_expired",
    "quote_mismatch",
    "quote_already_used",
)
QUOTE_USES = Counter(
    "tradelane_quote_uses_total",
    "Orders naming a negotiated quote and quote lifecycle moves, by outcome: used (a single-use "
    "quote taken), priced (a multi-use quote's prices applied), released (its order rejected or "
    "cancelled), expired (valid-until passed), or the reason an order was refused it.",
    ["outcome"],
)


def show_every_outcome() -> None:
    """Every outcome from the start at 0, so dashboards and alerts see a series before the
    first order or payment of its kind."""
    for outcome in CreditOutcome:
        CREDIT_CHECKS.labels(outcome.value)
    for payment in PAYMENT_OUTCOMES:
        CREDIT_PAYMENTS.labels(payment)
    for quote_outcome in QUOTE_OUTCOMES:
        QUOTE_USES.labels(quote_outcome)


# --- promotions ----------------------------------------------------------------------------

ORDER_VALUE_BUCKETS = tuple(step * 10**power for power in range(1, 8) for step in (1, 2.5, 5))
"""10 to 50 million in 1, 2.5, 5 steps: one set for every currency, from BHD (a few per
order) to JPY (tens of thousands per order), so no currency piles up in one bucket."""

ORDER_VALUE = Histogram(
    "tradelane_order_value_amount",
    "Totals of priced orders (after promotions), in the order's currency, by channel and "
    "currency: what shops sell per order.",
    ["channel", "currency"],
    buckets=ORDER_VALUE_BUCKETS,
)
PROMOTION_DISCOUNTS = Counter(
    "tradelane_promotion_discount_amount_total",
    "Discounts granted by promotions on priced orders, in the order's currency, by promotion "
    "kind (percentage, fixed), scope (sku, category, order) and currency.",
    ["kind", "scope", "currency"],
)
PROMO_CODE_REJECTIONS = Counter(
    "tradelane_promo_code_rejections_total",
    "Orders rejected invalid_promo_code, by reason: unknown, expired, not_yet_valid, exhausted, "
    "customer_limit_reached, channel_not_allowed, currency_mismatch, minimum_not_met, "
    "not_applicable.",
    ["reason"],
)
SHOWN_CURRENCIES = ("EUR",)
"""Currencies shown at 0 from the start (the demo's); others appear with their first order."""


def show_every_promotion_outcome() -> None:
    """Promotion series at 0 from the start, so the dashboard's panels have data at once."""
    from services.pricing.promotions import CODE_REJECTIONS
    from shared.contract import Channel, PromotionKind, PromotionScope

    for reason in CODE_REJECTIONS:
        PROMO_CODE_REJECTIONS.labels(reason.value)
    for currency in SHOWN_CURRENCIES:
        for kind in PromotionKind:
            for scope in PromotionScope:
                PROMOTION_DISCOUNTS.labels(kind.value, scope.value, currency)
        for channel in Channel:
            ORDER_VALUE.labels(channel.value, currency)
