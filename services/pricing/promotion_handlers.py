"""Pricing's promotion handlers: keep the promotions, apply them to an order, hold their uses.

- `promotion_changed` (`pricing.promotions`): keep the promotion's current state
  (a nonsense promotion never gets here: the contract refuses it to the DLQ).
- `apply_promotions`: called while pricing an order, after its lines are priced
  and before its payment plan and credit check, so both see the discounted total.
  It locks the limited promotions, counts their live uses and applies the
  combination rule (`promotions.py`); `hold_uses` holds one use per applied
  promotion once the order can no longer be rejected.
  The uses are committed or given back by the order's reports like every hold
  (`credit_handlers.order_status_changed` moves all of an order's holds).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from services.pricing import holds, promotion_ledger, promotions
from services.pricing.domain import PricedOrder
from services.pricing.holds import HoldKind
from services.pricing.metrics import ORDER_VALUE, PROMO_CODE_REJECTIONS, PROMOTION_DISCOUNTS
from services.pricing.promotions import InvalidPromoCode
from shared.contract import Order, Promotion
from shared.db import Transaction


async def promotion_changed(promotion: Promotion, tx: Transaction) -> None:
    await promotion_ledger.save_promotion(tx.session, promotion)


@dataclass(frozen=True)
class PromotedOrder:
    """The order with its promotions applied; the uses they take are held by `hold_uses`."""

    priced: PricedOrder
    uses: list[tuple[Promotion, Decimal]]
    """Each applied promotion and what it took off."""


async def apply_promotions(
    tx: Transaction, order: Order, priced: PricedOrder, at: datetime
) -> PromotedOrder:
    """The order with its promotions applied; `Rejected` for a bad code. Holds nothing yet.

    `at` is when pricing prices the order, not the shop's `submitted_at`: a shop
    sets its own event time and could backdate an order into an expired window.
    The limited promotions stay locked until the transaction ends, so the uses
    counted here are still free when `hold_uses` takes them after the last check.
    """
    found = await promotion_ledger.candidates(tx.session, order.promo_codes)
    await promotion_ledger.lock_limited(tx.session, found)
    usage = {
        p.promotion_id: await promotion_ledger.usage(tx.session, p.promotion_id, order.account_id)
        for p in found
        if p.max_uses_total is not None or p.max_uses_per_customer is not None
    }
    try:
        promoted = promotions.apply_promotions(order, priced.lines, found, usage, at)
    except InvalidPromoCode as invalid:
        tx.on_commit(PROMO_CODE_REJECTIONS.labels(invalid.why.value).inc)
        raise
    by_id = {p.promotion_id: p for p in found}
    uses = [(by_id[promotion_id], discount) for promotion_id, discount in promoted.applied.items()]
    return PromotedOrder(PricedOrder(promoted.lines, promoted.totals), uses)


async def hold_uses(tx: Transaction, order: Order, promoted: PromotedOrder) -> None:
    """Hold one use per applied promotion: only once nothing can reject the order any more.

    Pricing never hears its own rejections (it skips its own statuses), so a use
    held for an order it then rejected would never be given back.
    """
    for promotion, discount in promoted.uses:
        await holds.hold(
            tx.session,
            HoldKind.PROMOTION,
            order.order_id,
            promotion.promotion_id,
            discount,
            order.currency,
        )
        counter = PROMOTION_DISCOUNTS.labels(
            promotion.kind.value, promotion.scope.value, order.currency
        )
        tx.on_commit(functools.partial(counter.inc, float(discount)))


def count_order_value(tx: Transaction, order: Order, total: float) -> None:
    """The priced order's value, by channel and currency, once the order is priced for good."""
    tx.on_commit(lambda: ORDER_VALUE.labels(order.channel.value, order.currency).observe(total))
