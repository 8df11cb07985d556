"""`tradelane fulfillment dispatch`: what a WMS sends when a planned shipment leaves."""

from __future__ import annotations

import argparse

from cli.arguments import argument_error, contract_id, shown
from cli.publish import send_one

SHIPMENT_ID_MAX_CHARS = 80

DISPATCH_ARGUMENTS = {"order_id": "ORDER_ID", "shipment_id": "SHIPMENT_ID"}
"""Dispatch fields and the `fulfillment dispatch` arguments that fill them, for errors."""


def planned_shipment_id(text: str) -> str:
    """argparse type: a shipment id as fulfillment planned it (`shipments` on orders.status)."""
    if not 1 <= len(text) <= SHIPMENT_ID_MAX_CHARS or text != text.strip():
        raise argparse.ArgumentTypeError(
            f"expected a shipment id of 1-{SHIPMENT_ID_MAX_CHARS} characters without surrounding "
            f"spaces, as planned on orders.status, e.g. web-000123-1; got {shown(text)}"
        )
    return text


def cmd_fulfillment_dispatch(args: argparse.Namespace) -> int:
    """What a WMS sends when a shipment leaves the dock; for ops and demos without one."""
    from shared.contract import ShipmentDispatched
    from shared.topics import DISPATCHES

    return send_one(
        "fulfillment dispatch",
        DISPATCHES,
        lambda: ShipmentDispatched.new(order_id=args.order_id, shipment_id=args.shipment_id),
        lambda error: argument_error(error, DISPATCH_ARGUMENTS),
        lambda d: f"shipment {d.shipment_id} of order {d.order_id} left the warehouse",
    )


def add_fulfillment_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    fulfillment = commands.add_parser("fulfillment", help="what the warehouse reports")
    actions = fulfillment.add_subparsers(dest="action", required=True)
    dispatch = actions.add_parser(
        "dispatch",
        help="confirm that a planned shipment left the warehouse (what a WMS sends)",
        description="Publish a dispatch confirmation on fulfillment.dispatches, as the WMS does "
        "when a shipment leaves the dock: fulfillment reports the order shipped (once per "
        "shipment) and catalog commits the shipment's stock. For ops and demos without a WMS.",
    )
    dispatch.add_argument("order_id", type=contract_id("web-000123"), metavar="ORDER_ID")
    dispatch.add_argument(
        "shipment_id",
        type=planned_shipment_id,
        metavar="SHIPMENT_ID",
        help="as planned on orders.status, e.g. web-000123-1",
    )
    dispatch.set_defaults(run=cmd_fulfillment_dispatch)
