"""Fulfillment: the last step before the carriers.

It plans how an approved order leaves the warehouses catalog reserved its stock
in: B2B and heavy orders as palletised freight in a delivery window, consumer
orders as parcels with a carrier by delivery speed, a tracking number and a
promised date. The plan goes out as `fulfillment_planned` on `orders.status`,
which tells catalog to keep the stock for shipping. An order another service
already cancelled or rejected is not planned.

Only stock on the shelf is planned: units on backorder ship later, each
`orders.backorder_filled` as a shipment of its own (another
`fulfillment_planned`, listing just the new shipments). When the WMS confirms
a shipment left the dock (`fulfillment.dispatches`) the order is reported
`shipped` with that shipment, once per shipment.
"""

from __future__ import annotations

import logging
from datetime import date

from faust.web import Request, Response, View

from services.fulfillment import domain, store
from services.fulfillment.store import OrderStates
from shared.contract import (
    BackorderFilled,
    OrderApproved,
    OrderState,
    OrderStatusChanged,
    ShipmentDispatched,
    Warehouse,
)
from shared.db import Transaction
from shared.service import Service
from shared.settings import load_settings
from shared.topics import (
    BACKORDERS_FILLED,
    DISPATCHES,
    ORDERS_APPROVED,
    ORDERS_STATUS,
    WAREHOUSES,
)

log = logging.getLogger(__name__)

service = Service("fulfillment", store.Base.metadata, load_settings())
app = service.app

STOPPED = {OrderState.CANCELLED: OrderStates.CANCELLED, OrderState.REJECTED: OrderStates.REJECTED}
"""Verdicts of other services that mean an order must not ship."""
STOPPED_STATES = frozenset(STOPPED.values())


# --- reference data ------------------------------------------------------------------------


@service.handles(WAREHOUSES)
async def warehouse_changed(warehouse: Warehouse, tx: Transaction) -> None:
    """Keep the site; approvals and fills that were waiting for it can be planned now."""
    await store.save_warehouse(tx.session, warehouse)
    for approved in await store.waiting_for(tx.session, warehouse.warehouse_id):
        log.info("order %s: warehouse %s arrived", approved.order.order_id, warehouse.warehouse_id)
        await plan_shipments(tx, approved, max(approved.occurred_at, warehouse.occurred_at).date())
    for fill in await store.fills_waiting_for(tx.session, warehouse.warehouse_id):
        log.info("order %s: warehouse %s arrived for a fill", fill.order_id, warehouse.warehouse_id)
        planned_from = await store.approval_of(tx.session, fill.order_id)
        if planned_from is not None:
            today = max(fill.occurred_at, warehouse.occurred_at).date()
            await plan_fill(tx, planned_from, fill, today)


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
    """Route what is on the shelf and report the plan, or hold it until its warehouse is known.

    Reported even when everything is on backorder (no shipments yet): catalog
    keeps an order's stock once it sees `fulfillment_planned`.
    """
    order = approved.order
    earlier_fills = [fill.lines for fill in await store.pending_fills(tx.session, order.order_id)]
    ready = domain.ready_to_ship(approved.lines, earlier_fills)
    warehouses = await store.sites(tx.session, {line.warehouse_id for line in ready})
    try:
        shipments = domain.route_shipment(order, ready, warehouses, today)
    except domain.UnknownWarehouse as unknown:
        log.warning("order %s waits: %s", order.order_id, unknown)
        await store.wait_for_warehouse(tx.session, approved, unknown.warehouse_id, service.name)
        return
    await store.record_plan(tx.session, approved, shipments, service.name)
    await service.report(
        tx, order, OrderState.FULFILLMENT_PLANNED, shipments=shipments, totals=approved.totals
    )


# --- backorders and dispatches ---------------------------------------------------------------


@service.handles(BACKORDERS_FILLED)
async def backorder_filled(fill: BackorderFilled, tx: Transaction) -> None:
    """Ship what a fill put on the shelf: now if the order is planned, else with its plan."""
    row = await store.find_order(tx.session, fill.order_id)
    if row is not None and row.state in STOPPED_STATES:
        log.info(
            "fill for order %s ignored: it is %s (by %s)", row.order_id, row.state, row.decided_by
        )
        return
    approved = await store.approval_of(tx.session, fill.order_id)
    if approved is None:
        log.info("fill for order %s kept until the order is planned", fill.order_id)
        await store.keep_fill(tx.session, fill)
        return
    await plan_fill(tx, approved, fill, fill.occurred_at.date())


async def plan_fill(
    tx: Transaction, approved: OrderApproved, fill: BackorderFilled, today: date
) -> None:
    """Plan a planned order's fill as new shipments after its earlier ones: a partial shipment."""
    order = approved.order
    ready = domain.filled(fill.lines)
    warehouses = await store.sites(tx.session, {line.warehouse_id for line in ready})
    planned_before = await store.shipment_count(tx.session, order.order_id)
    try:
        shipments = domain.route_shipment(order, ready, warehouses, today, planned_before)
    except domain.UnknownWarehouse as unknown:
        log.warning("fill for order %s waits: %s", order.order_id, unknown)
        await store.keep_fill(tx.session, fill, waiting_for_warehouse=unknown.warehouse_id)
        return
    await store.drop_fill(tx.session, fill)
    await store.add_shipments(tx.session, order.order_id, shipments)
    await service.report(
        tx, order, OrderState.FULFILLMENT_PLANNED, shipments=shipments, totals=approved.totals
    )


@service.handles(DISPATCHES)
async def shipment_dispatched(dispatch: ShipmentDispatched, tx: Transaction) -> None:
    """Report the order `shipped` with the shipment that left, once per shipment.

    A dispatch that does not match our plan raises, so the message is parked on
    the dead-letter topic with the reason instead of being guessed around.
    """
    planned = await store.find_shipment(tx.session, dispatch.shipment_id)
    if planned is None:
        raise domain.UnknownShipment(dispatch.shipment_id, dispatch.order_id)
    if not planned.dispatch(dispatch.order_id, dispatch.occurred_at):
        log.info("shipment %s was already dispatched; confirmation ignored", dispatch.shipment_id)
        return
    await store.save_dispatch(tx.session, planned)
    approved = await store.approval_of(tx.session, dispatch.order_id)
    if approved is None:
        raise LookupError(f"order {dispatch.order_id!r} has shipments but no approval on record")
    order_row = await store.find_order(tx.session, dispatch.order_id)
    if order_row is not None and order_row.state in STOPPED_STATES:
        log.warning(
            "shipment %s left although order %s was %s by %s",
            dispatch.shipment_id,
            dispatch.order_id,
            order_row.state,
            order_row.decided_by,
        )
    await service.report(
        tx,
        approved.order,
        OrderState.SHIPPED,
        shipments=[planned.shipment],
        totals=approved.totals,
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
    await store.drop_pending_fills(tx.session, status.order_id)
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
    """The shipments of one order and whether each has left, for a shop's support desk and ops.

    A planned order with everything on backorder answers with no shipments yet
    rather than 404: the order is known, its goods are not on the shelf.
    """

    async def get(self, request: Request, order_id: str) -> Response:
        async with service.db.sessions() as session:
            row = await store.find_order(session, order_id)
            shipments = await store.shipments_of(session, order_id)
        if row is None or (not shipments and row.state != OrderStates.PLANNED):
            return self.json(
                {"order_id": order_id, "error": "no shipments planned for this order"}, status=404
            )
        return self.json(
            {
                "order_id": order_id,
                "state": row.state,
                "shipments": [
                    {
                        **planned.shipment.model_dump(mode="json"),
                        "dispatched": planned.dispatched,
                        "dispatched_at": (
                            planned.dispatched_at.isoformat() if planned.dispatched_at else None
                        ),
                    }
                    for planned in shipments
                ],
            }
        )
