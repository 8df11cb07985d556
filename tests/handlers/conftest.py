"""Fixtures for handler tests: a service's handlers on a temp SQLite file, no broker."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from shared.contract import (
    OrderPriced,
    OrderSubmitted,
    OrderValidated,
    PricedLine,
    ReservedLine,
    Totals,
)
from tools.seed import DEMO_PRODUCTS, products

WEIGHTS = {p.sku: p.unit_weight_kg for p in products()}
CATEGORIES = {p.sku: p.category for p in products()}
LIST_PRICES = {p.sku: Decimal(p.list_price) for p in DEMO_PRODUCTS}


def reserved(
    order: OrderSubmitted,
    warehouse_id: str = "wh-central",
    backordered: Mapping[str, int] | None = None,
) -> list[ReservedLine]:
    """Catalog's lines for `order`: every line held in `warehouse_id`, `backordered` by SKU."""
    return [
        ReservedLine(
            sku=line.sku,
            quantity=line.quantity,
            warehouse_id=warehouse_id,
            category=CATEGORIES.get(line.sku, "misc"),
            unit_weight_kg=WEIGHTS.get(line.sku, Decimal("1")),
            line_no=number,
            backordered=(backordered or {}).get(line.sku, 0),
        )
        for number, line in enumerate(order.lines, start=1)
    ]


def validated(order: OrderSubmitted, warehouse_id: str = "wh-central") -> OrderValidated:
    """What catalog hands on for `order`: every line held in `warehouse_id`."""
    return OrderValidated.new(order=order.order(), lines=reserved(order, warehouse_id))


def priced(
    order: OrderSubmitted, warehouse_id: str = "dc-kassel", *, credit_limit_override: bool = False
) -> OrderPriced:
    """What pricing hands on for `order`: held in `warehouse_id`, every line at its list price
    (e.g. 400 x BOLT-M8-100 at 12.90 make 5160.00 EUR)."""
    lines = [
        PricedLine(
            **line.model_dump(),
            unit_price=LIST_PRICES.get(line.sku, Decimal("1.00")),
            line_total=LIST_PRICES.get(line.sku, Decimal("1.00")) * line.quantity,
            price_source=f"list:list-{order.currency}",
        )
        for line in reserved(order, warehouse_id)
    ]
    total = sum((line.line_total for line in lines), Decimal(0))
    return OrderPriced.new(
        order=order.order(),
        lines=lines,
        totals=Totals(currency=order.currency, subtotal=total, total=total),
        credit_limit_override=credit_limit_override,
    )
