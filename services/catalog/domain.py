"""Catalog's rules: may this account buy these lines, and which warehouse holds each one.

Pure functions over plain data. The store loads the data, these decide, the
store applies the decision under a guard so two orders never take the same unit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal

from shared.contract import Channel, Order, ReasonCode, WarehouseKind
from shared.rejection import Rejected


@dataclass(frozen=True)
class CatalogItem:
    sku: str
    category: str
    active: bool
    channels: frozenset[Channel]
    unit_weight_kg: Decimal


@dataclass(frozen=True)
class StockAt:
    """Free stock of one SKU in one warehouse (on hand minus reserved)."""

    warehouse_id: str
    kind: WarehouseKind
    country: str
    available: int


@dataclass(frozen=True)
class Allocation:
    """One order line held in one warehouse."""

    line_no: int
    sku: str
    quantity: int
    warehouse_id: str
    category: str
    unit_weight_kg: Decimal


def check_lines(
    order: Order, items: Mapping[str, CatalogItem], assortment: frozenset[str] | None
) -> None:
    """Every SKU exists, is sold, is sold on this channel, and is in the account's assortment."""
    for line_no, line in enumerate(order.lines, start=1):
        item = items.get(line.sku)
        if item is None or not item.active:
            why = "is not in the catalog" if item is None else "is no longer sold"
            raise Rejected(ReasonCode.UNKNOWN_SKU, f"line {line_no}: SKU {line.sku!r} {why}")
        if order.channel not in item.channels:
            raise Rejected(
                ReasonCode.NOT_IN_ASSORTMENT,
                f"line {line_no}: SKU {line.sku!r} is not sold to {order.channel.value} customers",
            )
        if assortment is not None and line.sku not in assortment:
            raise Rejected(
                ReasonCode.NOT_IN_ASSORTMENT,
                f"line {line_no}: SKU {line.sku!r} is not in account {order.account_id!r}'s "
                "assortment",
            )


def warehouse_preference(order: Order, site: StockAt) -> tuple[int, int, str]:
    """Sort key: B2B ships freight from the central DC; B2C ships parcels from nearby.

    Ties go to the warehouse with more free stock (keeps small sites from running
    dry first), then to the id so the choice is deterministic on redelivery.
    """
    if order.channel is Channel.B2B:
        rank = 0 if site.kind is WarehouseKind.CENTRAL_DC else 1
    else:
        domestic = site.country == order.delivery.address.country
        rank = 0 if domestic and site.kind is WarehouseKind.REGIONAL else (1 if domestic else 2)
    return rank, -site.available, site.warehouse_id


def reserve_stock(
    order: Order,
    items: Mapping[str, CatalogItem],
    stock: Mapping[str, Sequence[StockAt]],
) -> list[Allocation]:
    """Choose one warehouse per line with enough free stock, or reject the whole order.

    Lines for the same SKU draw on the same running availability, so an order can
    never be promised more than the warehouse holds.
    """
    free = {sku: list(sites) for sku, sites in stock.items()}
    allocations = []
    for line_no, line in enumerate(order.lines, start=1):
        sites = sorted(free.get(line.sku, []), key=lambda s: warehouse_preference(order, s))
        chosen = next((s for s in sites if s.available >= line.quantity), None)
        if chosen is None:
            total = sum(s.available for s in sites)
            raise Rejected(
                ReasonCode.OUT_OF_STOCK,
                f"line {line_no}: SKU {line.sku!r}: {line.quantity} requested, "
                f"at most {max((s.available for s in sites), default=0)} available in one "
                f"warehouse ({total} in all)",
            )
        item = items[line.sku]
        allocations.append(
            Allocation(
                line_no,
                line.sku,
                line.quantity,
                chosen.warehouse_id,
                item.category,
                item.unit_weight_kg,
            )
        )
        free[line.sku] = [
            replace(s, available=s.available - line.quantity) if s is chosen else s for s in sites
        ]
    return allocations
