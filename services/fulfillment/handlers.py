"""Fulfillment's handlers: the last step before the carriers, one function per incoming event.

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

What each event does to an order is decided by `domain.Progress.step`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date
from functools import partial
from typing import Any

from services.fulfillment import domain, metrics, store
from services.fulfillment.domain import Progress, State, Step, Trigger
from shared.consume import Handler, ReadingAhead
from shared.contract import (
    BackorderFilled,
    OrderApproved,
    OrderState,
    OrderStatusChanged,
    ShipmentDispatched,
    Warehouse,
)
from shared.db import Transaction
from shared.metrics import OrderStage
from shared.rejection import Refused
from shared.topics import (
    BACKORDERS_FILLED,
    DISPATCHES,
    ORDERS_APPROVED,
    ORDERS_ENDED,
    WAREHOUSES,
    TopicSpec,
)

log = logging.getLogger(__name__)


# --- reference data ------------------------------------------------------------------------


async def warehouse_changed(warehouse: Warehouse, tx: Transaction) -> None:
    """Keep the site; approvals and fills that were waiting for it can be planned now."""
    await store.save_warehouse(tx.session, warehouse)
    arrived = warehouse.warehouse_id
    for approved in await store.waiting_for(tx.session, arrived):
        known = await store.progress_of(tx.session, approved.order.order_id)
        if known.step(Trigger.WAREHOUSE_KNOWN) is Step.PLAN:
            log.info("order %s: warehouse %s arrived", approved.order.order_id, arrived)
            today = max(approved.occurred_at, warehouse.occurred_at).date()
            await plan_shipments(tx, approved, today, known)
    for fill in await store.fills_waiting_for(tx.session, arrived):
        known = await store.progress_of(tx.session, fill.order_id)
        if known.step(Trigger.WAREHOUSE_KNOWN) is Step.PLAN:
            log.info("order %s: warehouse %s arrived for a fill", fill.order_id, arrived)
            today = max(fill.occurred_at, warehouse.occurred_at).date()
            await plan_fill(tx, await planned_from(tx, fill.order_id), fill, today)


# --- the order -----------------------------------------------------------------------------


async def read_orders_ahead(events: Sequence[OrderApproved], tx: Transaction) -> None:
    """Where each order of the batch stands and the fills held for it: two statements for
    the whole batch."""
    await store.read_orders_ahead(tx.session, (e.order.order_id for e in events))


async def order_approved(event: OrderApproved, tx: Transaction) -> None:
    """Plan the order's shipments once: a replayed approval or a stopped order plans nothing."""
    order_id = event.order.order_id
    known = await store.progress_of(tx.session, order_id)
    if known.step(Trigger.APPROVAL) is not Step.PLAN:
        log.info("order %s not planned: it is %s (by %s)", order_id, known.state, known.decided_by)
        return
    await plan_shipments(tx, event, event.occurred_at.date(), known)


async def plan_shipments(
    tx: Transaction, approved: OrderApproved, today: date, before: Progress
) -> None:
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
        await store.wait_for_warehouse(tx.session, approved, unknown.warehouse_id, tx.service)
        return
    await store.record_plan(
        tx.session, approved, shipments, tx.service, before, held_fills=bool(earlier_fills)
    )
    await tx.report(
        order, OrderState.FULFILLMENT_PLANNED, shipments=shipments, totals=approved.totals
    )
    tx.on_commit(partial(metrics.count_shipments, metrics.PLANNED, shipments))
    tx.order_reached(OrderStage.FULFILLMENT_PLANNED, approved.submitted_at)


async def order_status_changed(status: OrderStatusChanged, tx: Transaction) -> None:
    """Remember orders another service cancelled or rejected, so their approval ships nothing.

    `orders.status.ended` and `orders.approved` are different topics with different
    keys, so a cancellation can arrive after the plan; then it is logged loudly
    and recorded, and the shipments stay planned until stopping a plan is built.
    """
    stopped = domain.stopped_by(status.status)
    if stopped is None:
        return
    known = await store.progress_of(tx.session, status.order_id)
    if known.step(Trigger.STOP) is not Step.STOP:
        return
    if known.state is State.PLANNED:
        log.warning(
            "order %s was %s by %s after its shipments were planned; they stay planned",
            status.order_id,
            status.status.value,
            status.reported_by,
        )
    await store.record_stop(tx.session, status, stopped)


# --- backorders and dispatches ---------------------------------------------------------------


async def backorder_filled(fill: BackorderFilled, tx: Transaction) -> None:
    """Ship what a fill put on the shelf: now if the order is planned, else with its plan."""
    known = await store.progress_of(tx.session, fill.order_id)
    step = known.step(Trigger.FILL)
    if step is Step.KEEP:
        log.info("fill for order %s kept until the order is planned", fill.order_id)
        await store.keep_fill(tx.session, fill)
    elif step is Step.PLAN:
        approved = await planned_from(tx, fill.order_id)
        await plan_fill(tx, approved, fill, fill.occurred_at.date())
    else:
        log.info(
            "fill for order %s ignored: it is %s (by %s)",
            fill.order_id,
            known.state,
            known.decided_by,
        )


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
    await tx.report(
        order, OrderState.FULFILLMENT_PLANNED, shipments=shipments, totals=approved.totals
    )
    tx.on_commit(partial(metrics.count_shipments, metrics.PLANNED, shipments))


async def shipment_dispatched(dispatch: ShipmentDispatched, tx: Transaction) -> None:
    """Report the order `shipped` with the shipment that left, once per shipment.

    A dispatch that does not match our plan is refused: the message is parked on
    the dead-letter topic with the reason instead of being guessed around, and
    counted in `tradelane_refused_events_total{reason="dispatch_mismatch"}`.
    """
    planned = await store.find_shipment(tx.session, dispatch.shipment_id)
    try:
        if planned is None:
            raise domain.UnknownShipment(dispatch.shipment_id, dispatch.order_id)
        first_time = planned.dispatch(dispatch.order_id, dispatch.occurred_at)
    except domain.DispatchRefused as mismatch:  # the WMS and the plan disagree: not a defect
        raise Refused("dispatch_mismatch", str(mismatch)) from None
    if not first_time:
        log.info("shipment %s was already dispatched; confirmation ignored", dispatch.shipment_id)
        return
    await store.save_dispatch(tx.session, planned)
    approved = await planned_from(tx, dispatch.order_id)
    known = await store.progress_of(tx.session, dispatch.order_id)
    if known.stopped:
        log.warning(
            "shipment %s left although order %s was %s by %s",
            dispatch.shipment_id,
            dispatch.order_id,
            known.state,
            known.decided_by,
        )
    await tx.report(
        approved.order, OrderState.SHIPPED, shipments=[planned.shipment], totals=approved.totals
    )
    tx.on_commit(partial(metrics.count_shipments, metrics.DISPATCHED, [planned.shipment]))
    tx.order_reached(OrderStage.SHIPPED, approved.submitted_at)


async def planned_from(tx: Transaction, order_id: str) -> OrderApproved:
    """The approval a planned order's plan was made from: its fills and dispatches need it."""
    approved = await store.approval_of(tx.session, order_id)
    if approved is None:
        raise LookupError(f"order {order_id!r} is planned but its approval is not on record")
    return approved


HANDLERS: dict[TopicSpec, Handler[Any]] = {
    WAREHOUSES: warehouse_changed,
    ORDERS_APPROVED: ReadingAhead(order_approved, read_orders_ahead),
    ORDERS_ENDED: order_status_changed,
    BACKORDERS_FILLED: backorder_filled,
    DISPATCHES: shipment_dispatched,
}
