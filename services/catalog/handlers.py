"""Catalog's handlers: the first step of an order's life, and the keeper of stock.

A reorder first takes the lines of the earlier order it names (`reorder`). It
checks every line against the catalog (exists, sold on this channel, in the
account's assortment, in an allowed quantity), holds the stock in one warehouse
per line (a B2B account that allows backorders waits for what is missing), and
hands the order to pricing. It gives the stock back when a later step rejects
the order, the approval expires, or the shop cancels it; it deducts it when the
shipment leaves; and when stock arrives it fills waiting backorders first.
Where an order may go, and what that does to its stock, is `domain.TRANSITIONS`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from services.catalog import domain, reorder, store
from services.catalog import metrics as m
from services.catalog.domain import Cause, Stage, StockMove
from shared.categories import top_level
from shared.consume import Handler, ReadingAhead, Refusal
from shared.contract import (
    Account,
    BackorderFilled,
    Channel,
    Order,
    OrderCancelled,
    OrderState,
    OrderStatusChanged,
    OrderSubmitted,
    OrderValidated,
    Product,
    Reason,
    ReasonCode,
    ReservedLine,
    Shipment,
    StockAdjustment,
    StockLevel,
    Warehouse,
)
from shared.db import Transaction
from shared.metrics import OrderStage
from shared.order_identity import Resubmission, fingerprint, judge_resubmission
from shared.rejection import Refused, Rejected
from shared.topics import (
    ACCOUNTS,
    BACKORDERS_FILLED,
    ORDERS_CANCELLED,
    ORDERS_SUBMITTED,
    ORDERS_VALIDATED,
    PRODUCTS,
    STOCK,
    STOCK_ADJUSTMENTS,
    STOCK_MOVES,
    WAREHOUSES,
    TopicSpec,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KnownOrder:
    """An order as catalog's own record names it, for a status report without the order."""

    order_id: str
    account_id: str | None
    channel: Channel | None

    @classmethod
    def of(cls, row: store.OrderRow) -> KnownOrder:
        return cls(row.order_id, row.account_id, Channel(row.channel) if row.channel else None)


# --- reference data ------------------------------------------------------------------------


async def product_changed(product: Product, tx: Transaction) -> None:
    await store.save_product(tx.session, product)


async def warehouse_changed(warehouse: Warehouse, tx: Transaction) -> None:
    await store.save_warehouse(tx.session, warehouse)


async def account_changed(account: Account, tx: Transaction) -> None:
    await store.save_account(tx.session, account)


# --- stock -----------------------------------------------------------------------------------


async def stock_level_changed(level: StockLevel, tx: Transaction) -> None:
    """The WMS's absolute level replaces on hand; what is free now goes to waiting backorders."""
    await store.save_stock_level(tx.session, level)
    await fill_backorders(tx, level.sku, level.warehouse_id)


async def stock_adjusted(adjustment: StockAdjustment, tx: Transaction) -> None:
    """A movement the WMS reports as a change; one that would go below zero is dead-lettered."""
    on_hand = await store.adjust_stock(tx.session, adjustment)
    log.info(
        "%s in %s adjusted by %+d (%s): %d on hand",
        adjustment.sku,
        adjustment.warehouse_id,
        adjustment.delta,
        adjustment.reason,
        on_hand,
    )
    await fill_backorders(tx, adjustment.sku, adjustment.warehouse_id)


async def fill_backorders(tx: Transaction, sku: str, warehouse_id: str) -> None:
    """Hold free units for lines waiting in this warehouse, first come first served."""
    free = await store.free_units(tx.session, sku, warehouse_id)
    fills = domain.fill_backorders(free, await store.waiting_lines(tx.session, sku, warehouse_id))
    by_order: dict[str, tuple[str, list[ReservedLine]]] = {}
    for waiting, units in fills:
        account_id, line = await store.hold_backordered(tx.session, waiting, units, warehouse_id)
        by_order.setdefault(waiting.order_id, (account_id, []))[1].append(line)
        tx.on_commit(partial(m.RESERVED.labels(top_level(line.category)).inc, units))
    for order_id, (account_id, lines) in by_order.items():
        log.info("order %s: backorder of %s in %s filled", order_id, sku, warehouse_id)
        await tx.publish(
            BACKORDERS_FILLED,
            BackorderFilled.new(order_id=order_id, account_id=account_id, lines=lines),
        )


async def give_back(tx: Transaction, order_id: str) -> int:
    """Release an order's stock, then let waiting backorders have it; returns units released."""
    freed = await store.release_stock(tx.session, order_id)
    tx.on_commit(partial(m.count_units, m.RELEASED, freed))
    for sku, warehouse_id in sorted({(f.sku, f.warehouse_id) for f in freed}):
        await fill_backorders(tx, sku, warehouse_id)
    return sum(f.units for f in freed)


async def commit_shipments(tx: Transaction, order_id: str, shipments: Sequence[Shipment]) -> None:
    """Take shipped units off the shelf, once per shipment."""
    for shipment in shipments:
        moved = await store.commit_shipment(tx.session, order_id, shipment)
        tx.on_commit(partial(m.count_units, m.COMMITTED, moved or []))


def advance(row: store.OrderRow, cause: Cause) -> domain.Transition | None:
    """Move a known order on as the domain says; None when `cause` changes nothing now."""
    move = domain.transition(row.state, cause)
    if move is not None and move.to != row.state:
        row.state = move.to
    return move


# --- the order ---------------------------------------------------------------------------


async def read_orders_ahead(events: Sequence[OrderSubmitted], tx: Transaction) -> None:
    """Whether each order of the batch is known or was cancelled before it came, its
    account's terms, and the stock (locked) and product of every SKU it asks for: one
    statement each for the whole batch. Read before any order is recorded, so no read
    in the middle of the batch makes the session write what it holds first."""
    await store.read_orders_ahead(tx.session, ((e.order_id, e.account_id) for e in events))
    skus = {line.sku for e in events for line in e.lines}
    await store.lock_stock_ahead(tx.session, skus)
    await store.catalog_items(tx.session, skus)


async def order_submitted(event: OrderSubmitted, tx: Transaction) -> None:
    """Check the lines and hold the stock, or reject; an order id is answered once."""
    order = event.order()
    content = fingerprint(order)
    known = await store.find_order(tx.session, order.order_id)
    if known is not None:
        await submitted_again(tx, known, order, content)
        return
    early = await store.take_early_cancellation(tx.session, order.order_id, order.account_id)
    if early is not None:
        await store.record_order(
            tx.session,
            order.order_id,
            order.account_id,
            order.channel.value,
            Stage.CANCELLED,
            content,
        )
        await store.record_requested_lines(tx.session, order.order_id, order.lines)
        reason = Reason(
            code=ReasonCode.CANCELLED_BY_SHOP,
            message=early.reason or "cancelled by shop before the order arrived",
        )
        await tx.report(order, OrderState.CANCELLED, reason=reason)
        return
    row = await store.record_order(
        tx.session,
        order.order_id,
        order.account_id,
        order.channel.value,
        Stage.RESERVED,
        content,
    )
    await tx.report(order, OrderState.RECEIVED)
    tx.order_reached(OrderStage.RECEIVED, event.occurred_at)
    try:
        order = await requested_lines(tx, order)
        allocations = await plan_allocations(tx, order)
        await store.hold_stock(tx.session, order.order_id, allocations, event.occurred_at)
    except (Rejected, store.StockTaken) as refused:
        advance(row, Cause.REFUSED)
        if isinstance(refused, domain.OutOfStock):
            stockout = m.STOCKOUTS.labels(top_level(refused.category), "rejected")
            tx.on_commit(stockout.inc)
        await tx.report(order, OrderState.REJECTED, reason=rejection_reason(refused))
        tx.order_reached(OrderStage.REJECTED, event.occurred_at)
        return
    tx.on_commit(partial(count_allocations, allocations))
    lines = [reserved_line(a) for a in allocations]
    validated = OrderValidated.new(order=order, lines=lines, submitted_at=event.occurred_at)
    await tx.publish(ORDERS_VALIDATED, validated)
    tx.order_reached(OrderStage.VALIDATED, event.occurred_at)


async def submitted_again(
    tx: Transaction, known: store.OrderRow, order: Order, content: str
) -> None:
    """A second `orders.submitted` under a known order id: a retry, a duplicate or a trespass."""
    verdict = judge_resubmission(
        owner=known.account_id,
        known_fingerprint=known.fingerprint,
        ended=Stage(known.state).ended,
        account_id=order.account_id,
        new_fingerprint=content,
    )
    if verdict is Resubmission.RETRY:
        log.info("order %s was submitted before; its outcome stands", order.order_id)
    elif verdict is Resubmission.FOREIGN:
        log.warning(
            "order %s of account %s refused: the id is another account's",
            order.order_id,
            order.account_id,
        )
        raise Refused(verdict.value, f"order id {order.order_id} belongs to another account")
    elif verdict is Resubmission.DUPLICATE_OF_LIVE:
        raise Refused(
            verdict.value,
            f"order {order.order_id} is under way with other content; an order id is used "
            "once: send a new order under a new order_id",
        )
    else:
        reason = Reason(
            code=ReasonCode.DUPLICATE_ORDER_ID,
            message=f"order {order.order_id} was answered before ({known.state}) and an order id "
            "is used once: submit the corrected order under a new order_id",
        )
        await tx.report(order, OrderState.REJECTED, reason=reason)


async def refuse_order(tx: Transaction, refusal: Refusal) -> bool:
    """An unreadable or unprocessable submission: reject its order id, unless it is taken.

    A known id is someone's order under way or answered: a broken message naming
    it must not change what its shop is told.
    """
    if await store.find_order(tx.session, refusal.order_id) is not None:
        log.warning("dead letter names known order %s: it is not rejected", refusal.order_id)
        return False
    channel = refusal.channel.value if refusal.channel else None
    await store.record_order(
        tx.session, refusal.order_id, refusal.account_id, channel, Stage.REJECTED
    )
    return True


async def requested_lines(tx: Transaction, order: Order) -> Order:
    """The order with the lines it asks for (a reorder's are its earlier order's), kept as
    the template of a later reorder; raises `Rejected` for a reorder of no order of its own."""
    if order.reorder_of is not None:
        earlier = await store.earlier_order(tx.session, order.reorder_of)
        order = reorder.resolve(order, earlier)
        log.info("order %s reorders %s", order.order_id, order.reorder_of)
    await store.record_requested_lines(tx.session, order.order_id, order.lines)
    return order


async def plan_allocations(tx: Transaction, order: Order) -> list[domain.Allocation]:
    skus = {line.sku for line in order.lines}
    items = await store.catalog_items(tx.session, skus)
    terms = await store.buyer_terms(tx.session, order.account_id)
    domain.check_lines(order, items, terms)
    stock = await store.free_stock(tx.session, skus)
    return domain.reserve_stock(order, items, stock, domain.may_backorder(order, terms))


def reserved_line(allocation: domain.Allocation) -> ReservedLine:
    return ReservedLine(
        sku=allocation.sku,
        quantity=allocation.quantity,
        warehouse_id=allocation.warehouse_id,
        category=allocation.category,
        unit_weight_kg=allocation.unit_weight_kg,
        line_no=allocation.line_no,
        backordered=allocation.backordered,
    )


def rejection_reason(refused: Rejected | store.StockTaken) -> Reason:
    if isinstance(refused, Rejected):
        return refused.reason
    return Reason(code=ReasonCode.OUT_OF_STOCK, message=f"SKU {refused} was just sold out")


def count_allocations(allocations: list[domain.Allocation]) -> None:
    for a in allocations:
        category = top_level(a.category)
        m.RESERVED.labels(category).inc(a.in_stock)
        if a.backordered:
            m.BACKORDERED.labels(category).inc(a.backordered)
            m.STOCKOUTS.labels(category, "backordered").inc()


async def order_cancelled(event: OrderCancelled, tx: Transaction) -> None:
    """The shop withdraws the order: release its stock unless fulfillment has it already.

    A cancellation that overtakes its submission is remembered for that account
    only, so its late submission is cancelled on arrival, and no other account's
    order of that id is touched. Another account's cancellation is refused.
    """
    row = await store.find_order(tx.session, event.order_id)
    if row is None:
        await store.remember_early_cancellation(
            tx.session, event.order_id, event.account_id, event.reason
        )
        log.info("cancel of %s kept until the order arrives", event.order_id)
        return
    if row.account_id != event.account_id:
        log.warning(
            "cancel of %s by account %s refused: not its order", row.order_id, event.account_id
        )
        raise Refused(
            Resubmission.FOREIGN.value, f"order id {event.order_id} belongs to another account"
        )
    move = advance(row, Cause.SHOP_CANCELLED)
    if move is None:
        log.info("cancel of %s ignored: order is %s", row.order_id, row.state)
        return
    if move.stock is StockMove.RELEASE:
        await give_back(tx, row.order_id)
    reason = Reason(code=ReasonCode.CANCELLED_BY_SHOP, message=event.reason or "cancelled by shop")
    await tx.report(KnownOrder.of(row), OrderState.CANCELLED, reason=reason)


async def read_reported_orders_ahead(
    reports: Sequence[OrderStatusChanged], tx: Transaction
) -> None:
    """Plans, shipments and endings move orders catalog knows: each batch reads them at once,
    and their state changes are written together when it commits."""
    await store.read_reported_orders_ahead(tx.session, (report.order_id for report in reports))


async def order_status_changed(status: OrderStatusChanged, tx: Transaction) -> None:
    """Later steps' verdicts: a rejection gives the stock back, a plan keeps it, a shipment
    takes it off the shelf."""
    row = await store.find_order(tx.session, status.order_id)
    cause = domain.cause_of(status.status)
    if row is None or cause is None:
        return
    move = advance(row, cause)
    if move is None:
        return
    if move.stock is StockMove.RELEASE:
        released = await give_back(tx, row.order_id)
        log.info(
            "order %s %s by %s: %d units released",
            row.order_id,
            status.status.value,
            status.reported_by,
            released,
        )
    elif move.stock is StockMove.COMMIT:
        await commit_shipments(tx, row.order_id, status.shipments or [])


HANDLERS: dict[TopicSpec, Handler[Any]] = {
    PRODUCTS: product_changed,
    WAREHOUSES: warehouse_changed,
    ACCOUNTS: account_changed,
    STOCK: stock_level_changed,
    STOCK_ADJUSTMENTS: stock_adjusted,
    ORDERS_SUBMITTED: ReadingAhead(order_submitted, read_orders_ahead),
    ORDERS_CANCELLED: order_cancelled,
    STOCK_MOVES: ReadingAhead(order_status_changed, read_reported_orders_ahead),
}
