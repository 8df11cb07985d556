"""Fixtures for handler tests: a service's handlers on a temp SQLite file, no broker."""

from __future__ import annotations

from decimal import Decimal

from shared.contract import OrderSubmitted, OrderValidated, ReservedLine
from tools.seed import products

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
