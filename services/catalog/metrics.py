"""Catalog's own metrics: stock movements by top-level category, free units per warehouse.

Labels stay bounded: categories are cut to their first path segment and
warehouses are a short reference list; SKUs and order ids never become labels.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from services.catalog.store import UnitsMoved
from shared.categories import top_level

RESERVED = Counter(
    "tradelane_stock_reserved_units_total",
    "Units held for orders (at submission, or later for a backorder), by top-level category.",
    ["category"],
)
RELEASED = Counter(
    "tradelane_stock_released_units_total",
    "Held units given back because the order was rejected, cancelled or its approval expired.",
    ["category"],
)
COMMITTED = Counter(
    "tradelane_stock_committed_units_total",
    "Units deducted from on hand because their shipment left the warehouse.",
    ["category"],
)
STOCKOUTS = Counter(
    "tradelane_stockouts_total",
    "Order lines the warehouses could not cover: rejected out_of_stock or backordered.",
    ["category", "outcome"],
)
BACKORDERED = Counter(
    "tradelane_stock_backordered_units_total",
    "Units of B2B lines accepted without stock, to ship when it arrives.",
    ["category"],
)
AVAILABLE = Gauge(
    "tradelane_stock_available_units",
    "Free units (on hand minus reserved) per warehouse, read from the database on scrape.",
    ["warehouse"],
)


def count_units(counter: Counter, moved: list[UnitsMoved]) -> None:
    for movement in moved:
        counter.labels(top_level(movement.category)).inc(movement.units)


def show_available(by_warehouse: dict[str, int]) -> None:
    for warehouse_id, units in by_warehouse.items():
        AVAILABLE.labels(warehouse_id).set(units)
