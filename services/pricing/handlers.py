"""Pricing's handlers: the second step of an order's life, one function per incoming event.

It prices every line catalog reserved — list prices for consumers, the
account's contract price list and volume tiers for businesses, or the order's
negotiated quote (`quote_handlers`, single use held until the order's fate) — totals the order
in Decimal, checks that the customer may pay the way the order says, plans
when each amount falls due (terms, deposit, instalments: `terms.py`), and hands
the priced order to approvals. A business order is also held against the
account's credit limit (`credit_handlers`); promotions and promo codes
apply between the prices and the plan (`promotion_handlers`); the `approved`,
`rejected` and `cancelled` reports (`orders.status.holds`)
and `payments.received` tell pricing when that exposure ends. A rejection goes
out on `orders.status` and is repeated for the other services
(`shared.topics.repeating`); catalog hears it and releases the stock. A priced
order gets no status from here: approvals reports the order's next transition.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from services.pricing import (
    credit_handlers,
    domain,
    holds,
    promotion_handlers,
    quote_handlers,
    store,
    terms,
)
from services.pricing.quotes import QuoteTerms
from services.pricing.store import OrderStates
from shared import metrics
from shared.consume import Handler, ReadingAhead
from shared.contract import (
    Account,
    Order,
    OrderPriced,
    OrderState,
    OrderStatusChanged,
    OrderValidated,
    PriceList,
    ReservedLine,
)
from shared.contract.envelope import now_utc
from shared.db import Transaction
from shared.metrics import OrderStage
from shared.rejection import Rejected
from shared.topics import (
    ACCOUNTS,
    HOLD_MOVES,
    ORDERS_PRICED,
    ORDERS_VALIDATED,
    PAYMENTS_RECEIVED,
    PRICE_LISTS,
    PROMOTIONS,
    QUOTES,
    TopicSpec,
)

log = logging.getLogger(__name__)

PRICED = "priced"
"""The outcome counted for an order that leaves pricing priced (no status is published)."""


# --- reference data ------------------------------------------------------------------------


async def account_changed(account: Account, tx: Transaction) -> None:
    await store.save_account(tx.session, account)
    await credit_handlers.credit_terms_changed(account, tx)


async def price_list_changed(price_list: PriceList, tx: Transaction) -> None:
    """A list that leaves a price undecided raises, goes to the DLQ, and the old one stays."""
    await store.save_price_list(tx.session, domain.PriceBook.of(price_list))


# --- the order ---------------------------------------------------------------------------


async def read_orders_ahead(events: Sequence[OrderValidated], tx: Transaction) -> None:
    """Whether each order of the batch was priced before, and its account: one statement
    each for the whole batch."""
    orders = ((e.order.order_id, e.order.account_id) for e in events)
    await store.read_orders_ahead(tx.session, orders)


async def read_holds_ahead(reports: Sequence[OrderStatusChanged], tx: Transaction) -> None:
    """The holds every report of the batch may move, read at once."""
    await holds.read_holds_ahead(tx.session, {report.order_id for report in reports})


async def order_validated(event: OrderValidated, tx: Transaction) -> None:
    """Price the order and pass it on, or reject it; an order priced before changes nothing."""
    order = event.order
    if await store.find_order(tx.session, order.order_id) is not None:
        log.info("order %s was priced before; its outcome stands", order.order_id)
        return
    try:
        priced, quote = await price(tx, order, event.lines)
        promoted = await promotion_handlers.apply_promotions(tx, order, priced, now_utc())
        priced = promoted.priced
        plan = terms.payment_plan(order, priced.totals.total, now_utc().date())
        # The credit check is the last that may reject the order: every hold after it
        # stands, since pricing never hears its own rejection to give a hold back.
        credit = await credit_handlers.hold_credit(tx, order, priced.totals.total)
        await promotion_handlers.hold_uses(tx, order, promoted)
        if quote is not None:
            await quote_handlers.hold_quote(tx, order, quote, priced.totals.total)
    except Rejected as rejected:
        await store.record_order(tx.session, order, OrderStates.REJECTED)
        await tx.report(order, OrderState.REJECTED, reason=rejected.reason)
        tx.order_reached(OrderStage.REJECTED, event.submitted_at)
        return
    await store.record_order(tx.session, order, OrderStates.PRICED, priced.totals.total)
    await tx.publish(
        ORDERS_PRICED,
        OrderPriced.new(
            order=order,
            lines=priced.lines,
            totals=priced.totals,
            payment=plan,
            submitted_at=event.submitted_at,
            credit_limit_override=credit.override,
            credit_warning=credit.warning,
            holds=holds.holds_placed(tx.session, order.order_id),
        ),
    )
    tx.on_commit(metrics.ORDERS.labels(tx.service, order.channel.value, PRICED).inc)
    promotion_handlers.count_order_value(tx, order, float(priced.totals.total))
    tx.order_reached(OrderStage.PRICED, event.submitted_at)


async def price(
    tx: Transaction, order: Order, lines: Sequence[ReservedLine]
) -> tuple[domain.PricedOrder, QuoteTerms | None]:
    """From the order's quote if it names one, else from the account's contract and lists."""
    account = await store.account_terms(tx.session, order.account_id)
    domain.check_payment_terms(order, account)
    if order.quote_id is not None:
        return await quote_handlers.price_quoted(tx, order, lines, now_utc())
    books = await store.price_books(
        tx.session,
        domain.price_lists_to_consult(order, account),
        {line.sku for line in lines},
    )
    return domain.price_order(order, lines, account, books), None


async def order_status_changed(event: OrderStatusChanged, tx: Transaction) -> None:
    """An order's fate moves its holds: quotes announce their release before the ledger moves."""
    await quote_handlers.order_status_changed(event, tx)
    await credit_handlers.order_status_changed(event, tx)


HANDLERS: dict[TopicSpec, Handler[Any]] = {
    ACCOUNTS: account_changed,
    PRICE_LISTS: price_list_changed,
    QUOTES: quote_handlers.quote_changed,
    PROMOTIONS: promotion_handlers.promotion_changed,
    ORDERS_VALIDATED: ReadingAhead(order_validated, read_orders_ahead),
    HOLD_MOVES: ReadingAhead(order_status_changed, read_holds_ahead),
    PAYMENTS_RECEIVED: credit_handlers.payment_received,
}
