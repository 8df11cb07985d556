"""Fixtures for handler tests: a service's handlers on a temp SQLite file, no broker."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any, TypeVar

from shared.contract import (
    Event,
    OrderState,
    OrderStatusChanged,
    OrderSubmitted,
    OrderValidated,
    ReservedLine,
)
from tools.seed import products

E = TypeVar("E", bound=Event)

WEIGHTS = {p.sku: p.unit_weight_kg for p in products()}
CATEGORIES = {p.sku: p.category for p in products()}


def validated(order: OrderSubmitted, warehouse_id: str = "wh-central") -> OrderValidated:
    """What catalog hands on for `order`: every line held in `warehouse_id`."""
    return OrderValidated.new(
        order=order.order(),
        lines=[
            ReservedLine(
                sku=line.sku,
                quantity=line.quantity,
                warehouse_id=warehouse_id,
                category=CATEGORIES.get(line.sku, "misc"),
                unit_weight_kg=WEIGHTS.get(line.sku, Decimal("1")),
                line_no=number,
            )
            for number, line in enumerate(order.lines, start=1)
        ],
    )


def resent(event: E, **changes: Any) -> E:
    """`event` sent again under a new event id (a retry, not a redelivery), with `changes`."""
    return event.model_copy(update={"event_id": uuid.uuid4(), **changes})


def status_from(
    service: str, order: OrderSubmitted, state: OrderState, **details: Any
) -> OrderStatusChanged:
    """What `service` reports on `orders.status` about `order`: a reason, shipments, …"""
    return OrderStatusChanged.new(
        order_id=order.order_id,
        account_id=order.account_id,
        channel=order.channel,
        status=state,
        reported_by=service,
        **details,
    )
