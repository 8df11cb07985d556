"""Fulfillment: the last step before the carriers.

It plans how an approved order leaves the warehouses catalog reserved its stock
in: B2B and heavy orders as palletised freight in a delivery window, consumer
orders as parcels with a carrier by delivery speed, a tracking number and a
promised date. The plan goes out as `fulfillment_planned` on `orders.status`,
which tells catalog to keep the stock for shipping. An order another service
already cancelled or rejected is not planned.
"""

from __future__ import annotations

import logging
from datetime import date

from faust.web import Request, Response, View

from services.fulfillment import domain, store
from services.fulfillment.store import OrderStates
from shared.contract import OrderApproved, OrderState, OrderStatusChanged, Warehouse
from shared.db import Transaction
from shared.service import Service
from shared.topics import ORDERS_APPROVED, ORDERS_STATUS, WAREHOUSES

log = logging.getLogger(__name__)

service = Service("fulfillment", store.Base.metadata)
app = service.app

STOPPED = {OrderState.CANCELLED: OrderStates.CANCELLED, OrderState.REJECTED: OrderStates.REJECTED}
"""Verdicts of other services that mean an order must not ship."""


# --- reference data ------------------------------------------------------------------------


@service.handles(WAREHOUSES)
async def warehouse_changed(warehouse: Warehouse, tx: Transaction) -> None:
    """Keep the site; approvals that were waiting for it can be planned now."""
    await store.save_warehouse(tx.session, warehouse)
    for approved in await store.waiting_for(tx.session, warehouse.warehouse_id):
        log.info("order %s: warehouse %s arrived", approved.order.order_id, warehouse.warehouse_id)
        await plan_shipments(tx, approved, max(approved.occurred_at, warehouse.occurred_at).date())


# --- the order -----------------------------------------------------------------------------


@service.handles(ORDERS_APPROVED)
async def order_approved(event: OrderApproved, tx: Transaction) -> None:
    """Plan the order's shipments once: a replayed approval or a stopped order plans nothing."""
    row = await store.find_order(tx.session, event.order.order_id)
    if row is not None:
        log.info("order %s not planned: it is %s (by %s)", row.order_id, row.state, row.decided_by)
        return
    await plan_shipments(tx, event, event.occurred_at.date())


async def plan_shipments(tx: Transaction, approved: OrderApproved, today: date) -> None:
    """Route the order and report the plan, or hold it until its warehouse is known here."""
    order = approved.order
    warehouses = await store.sites(tx.session, {line.warehouse_id for line in approved.lines})
    try:
        shipments = domain.route_shipment(order, approved.lines, warehouses, today)
    except domain.UnknownWarehouse as unknown:
        log.warning("order %s waits: %s", order.order_id, unknown)
        await store.wait_for_warehouse(tx.session, approved, unknown.warehouse_id, service.name)
        return
    await store.record_plan(tx.session, order, shipments, service.name)
    await service.report(
        tx, order, OrderState.FULFILLMENT_PLANNED, shipments=shipments, totals=approved.totals
    )


@service.handles(ORDERS_STATUS)
async def order_status_changed(status: OrderStatusChanged, tx: Transaction) -> None:
    """Remember orders another service cancelled or rejected, so their approval ships nothing.

    `orders.status` and `orders.approved` are different topics with different
    keys, so a cancellation can arrive after the plan; then it is logged loudly
    and recorded, and the shipments stay planned until stopping a plan is built.
    """
    stopped = STOPPED.get(status.status)
    if status.reported_by == service.name or stopped is None:
        return
    row = await store.find_order(tx.session, status.order_id)
    if row is not None and row.state in (OrderStates.CANCELLED, OrderStates.REJECTED):
        return
    if row is not None and row.state == OrderStates.PLANNED:
        log.warning(
            "order %s was %s by %s after its shipments were planned; they stay planned",
            status.order_id,
            status.status.value,
            status.reported_by,
        )
    await store.stop_waiting(tx.session, status.order_id)
    await store.remember_order(
        tx.session,
        status.order_id,
        status.account_id,
        status.channel.value if status.channel else None,
        stopped,
        status.reported_by,
    )


# --- HTTP ----------------------------------------------------------------------------------


@app.page("/shipments/{order_id}")
class OrderShipments(View):
    """The planned shipments of one order, for a shop's support desk and for ops."""

    async def get(self, request: Request, order_id: str) -> Response:
        async with service.db.sessions() as session:
            row = await store.find_order(session, order_id)
            shipments = await store.shipments_of(session, order_id)
        if row is None or not shipments:
            return self.json(
                {"order_id": order_id, "error": "no shipments planned for this order"}, status=404
            )
        return self.json(
            {
                "order_id": order_id,
                "state": row.state,
                "shipments": [shipment.model_dump(mode="json") for shipment in shipments],
            }
        )
