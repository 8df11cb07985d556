"""Catalog: the first step of an order's life.

It checks every line against the catalog (exists, sold, sold on this channel, in
the account's assortment), holds the stock in one warehouse per line, and hands
the order to pricing. It gives the stock back when a later step rejects the
order, the approval expires, or the shop cancels it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from services.catalog import domain, store
from services.catalog.store import OrderStates
from shared.contract import (
    Account,
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
    StockLevel,
    Warehouse,
)
from shared.db import Transaction
from shared.rejection import Rejected
from shared.service import Service
from shared.topics import (
    ACCOUNTS,
    ORDERS_CANCELLED,
    ORDERS_STATUS,
    ORDERS_SUBMITTED,
    ORDERS_VALIDATED,
    PRODUCTS,
    STOCK,
    WAREHOUSES,
)

log = logging.getLogger(__name__)

service = Service("catalog", store.Base.metadata)
app = service.app


@dataclass(frozen=True)
class KnownOrder:
    order_id: str
    account_id: str | None
    channel: Channel | None

    @classmethod
    def of(cls, row: store.OrderRow) -> KnownOrder:
        return cls(row.order_id, row.account_id, Channel(row.channel) if row.channel else None)


# --- reference data ------------------------------------------------------------------------


@service.handles(PRODUCTS)
async def product_changed(product: Product, tx: Transaction) -> None:
    await store.save_product(tx.session, product)


@service.handles(STOCK)
async def stock_level_changed(level: StockLevel, tx: Transaction) -> None:
    await store.save_stock_level(tx.session, level)


@service.handles(WAREHOUSES)
async def warehouse_changed(warehouse: Warehouse, tx: Transaction) -> None:
    await store.save_warehouse(tx.session, warehouse)


@service.handles(ACCOUNTS)
async def account_changed(account: Account, tx: Transaction) -> None:
    await store.save_account(tx.session, account)


# --- the order ---------------------------------------------------------------------------


@service.handles(ORDERS_SUBMITTED)
async def order_submitted(event: OrderSubmitted, tx: Transaction) -> None:
    """Check the lines and hold the stock, or reject; a re-submitted order_id changes nothing."""
    order = event.order()
    if await store.find_order(tx.session, order.order_id) is not None:
        log.info("order %s was submitted before; its outcome stands", order.order_id)
        return
    row = await store.record_order(
        tx.session, order.order_id, order.account_id, order.channel.value, OrderStates.RESERVED
    )
    await service.report(tx, order, OrderState.RECEIVED)
    try:
        allocations = await plan_allocations(tx, order)
        await store.hold_stock(tx.session, order.order_id, allocations)
    except Rejected as rejected:
        row.state = OrderStates.REJECTED
        await service.report(tx, order, OrderState.REJECTED, reason=rejected.reason)
        return
    except store.StockTaken as taken:
        row.state = OrderStates.REJECTED
        reason = Reason(code=ReasonCode.OUT_OF_STOCK, message=f"SKU {taken} was just sold out")
        await service.report(tx, order, OrderState.REJECTED, reason=reason)
        return
    lines = [
        ReservedLine(
            sku=a.sku,
            quantity=a.quantity,
            warehouse_id=a.warehouse_id,
            category=a.category,
            unit_weight_kg=a.unit_weight_kg,
        )
        for a in allocations
    ]
    await tx.publish(ORDERS_VALIDATED, OrderValidated.new(order=order, lines=lines))


async def plan_allocations(tx: Transaction, order: Order) -> list[domain.Allocation]:
    skus = {line.sku for line in order.lines}
    items = await store.catalog_items(tx.session, skus)
    domain.check_lines(order, items, await store.assortment_of(tx.session, order.account_id))
    return domain.reserve_stock(order, items, await store.free_stock(tx.session, skus))


@service.handles(ORDERS_CANCELLED)
async def order_cancelled(event: OrderCancelled, tx: Transaction) -> None:
    """The shop withdraws the order: release its stock unless fulfillment has it already.

    A cancellation that overtakes its submission is remembered, so the late
    submission is ignored instead of reserving stock for a withdrawn order.
    """
    row = await store.find_order(tx.session, event.order_id)
    reason = Reason(code=ReasonCode.CANCELLED_BY_SHOP, message=event.reason or "cancelled by shop")
    if row is None:
        row = await store.record_order(
            tx.session, event.order_id, event.account_id, None, OrderStates.CANCELLED
        )
        await service.report(tx, KnownOrder.of(row), OrderState.CANCELLED, reason=reason)
        return
    if row.account_id != event.account_id:
        log.warning(
            "cancel of %s by account %s refused: not its order", row.order_id, event.account_id
        )
        return
    if row.state != OrderStates.RESERVED:
        log.info("cancel of %s ignored: order is %s", row.order_id, row.state)
        return
    await store.release_stock(tx.session, row.order_id)
    row.state = OrderStates.CANCELLED
    await service.report(tx, KnownOrder.of(row), OrderState.CANCELLED, reason=reason)


@service.handles(ORDERS_STATUS)
async def order_status_changed(status: OrderStatusChanged, tx: Transaction) -> None:
    """Later steps' verdicts: a rejection gives the stock back, a shipment plan keeps it."""
    if status.reported_by == service.name:
        return
    row = await store.find_order(tx.session, status.order_id)
    if row is None or row.state != OrderStates.RESERVED:
        return
    if status.status in (OrderState.REJECTED, OrderState.CANCELLED):
        released = await store.release_stock(tx.session, row.order_id)
        row.state = OrderStates.RELEASED
        log.info(
            "order %s %s by %s: %d units released",
            row.order_id,
            status.status.value,
            status.reported_by,
            released,
        )
    elif status.status is OrderState.FULFILLMENT_PLANNED:
        row.state = OrderStates.FULFILLING


# --- HTTP ----------------------------------------------------------------------------------

from services.catalog import api  # noqa: E402  (views need `service`, defined above)

api.register(service)
