"""Catalog's rules: may this account buy these lines, how many, and which warehouse holds each;
where an order stands and what each later event does to it and to its stock.

Pure functions over plain data. The store loads the data, these decide, the
store applies the decision under a guard so two orders never take the same unit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from enum import Enum, StrEnum

from shared.categories import within
from shared.contract import (
    Channel,
    Order,
    OrderState,
    QuantityRule,
    ReasonCode,
    StockAdjustment,
    WarehouseKind,
)
from shared.rejection import Rejected


@dataclass(frozen=True)
class CatalogItem:
    sku: str
    category: str
    active: bool
    channels: frozenset[Channel]
    unit_weight_kg: Decimal
    pack_size: int = 1
    quantity_rule: QuantityRule | None = None


@dataclass(frozen=True)
class Assortment:
    """What a business account may buy: listed SKUs and whole category subtrees."""

    skus: frozenset[str] = frozenset()
    categories: tuple[str, ...] = ()

    def allows(self, item: CatalogItem) -> bool:
        return item.sku in self.skus or any(within(item.category, c) for c in self.categories)


@dataclass(frozen=True)
class BuyerTerms:
    """What catalog knows of an account: its assortment, its own quantity rules, backorders.

    `assortment=None` means the whole catalog.
    """

    account_id: str
    assortment: Assortment | None = None
    quantity_rules: Mapping[str, QuantityRule] = field(default_factory=dict)
    allows_backorders: bool = False


@dataclass(frozen=True)
class QuantityLimits:
    """The rule one line of one SKU must meet, and whose rule it is (product or account)."""

    min_quantity: int | None
    increment: int
    max_quantity: int | None
    source: str

    def broken_by(self, quantity: int) -> str | None:
        """What `quantity` breaks, in the buyer's words, or None if it meets the rule."""
        if self.min_quantity is not None and quantity < self.min_quantity:
            return f"at least {self.min_quantity} must be ordered"
        if self.max_quantity is not None and quantity > self.max_quantity:
            return f"at most {self.max_quantity} may be ordered"
        if quantity % self.increment:
            return f"it must be a multiple of {self.increment}"
        return None

    def describe(self) -> str:
        parts = [f"min {self.min_quantity}"] if self.min_quantity is not None else []
        parts.append(f"increment {self.increment}")
        if self.max_quantity is not None:
            parts.append(f"max {self.max_quantity}")
        return f"rule of {self.source}: {', '.join(parts)}"


@dataclass(frozen=True)
class StockAt:
    """Free stock of one SKU in one warehouse (on hand minus reserved)."""

    warehouse_id: str
    kind: WarehouseKind
    country: str
    available: int


@dataclass(frozen=True)
class Allocation:
    """One order line held in one warehouse; `backordered` units of it are not there yet."""

    line_no: int
    sku: str
    quantity: int
    warehouse_id: str
    category: str
    unit_weight_kg: Decimal
    backordered: int = 0

    @property
    def in_stock(self) -> int:
        return self.quantity - self.backordered


class OutOfStock(Rejected):
    """A line the warehouses cannot cover; carries the category for the stockout metric."""

    def __init__(self, category: str, message: str) -> None:
        super().__init__(ReasonCode.OUT_OF_STOCK, message)
        self.category = category


# --- may this account buy these lines? ------------------------------------------------------


def check_lines(order: Order, items: Mapping[str, CatalogItem], terms: BuyerTerms | None) -> None:
    """Every SKU exists, is sold on this channel, is in the assortment, in an allowed quantity."""
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
        if terms is not None and terms.assortment is not None and not terms.assortment.allows(item):
            raise Rejected(
                ReasonCode.NOT_IN_ASSORTMENT,
                f"line {line_no}: SKU {line.sku!r} (category {item.category!r}) is not in "
                f"account {order.account_id!r}'s assortment",
            )
        if order.channel is Channel.B2B:
            check_quantity(line_no, line.quantity, item, terms)


def quantity_limits(item: CatalogItem, terms: BuyerTerms | None) -> QuantityLimits:
    """The product's rule, with each field the account's own rule gives put in its place.

    The increment falls back to the pack size: businesses buy whole packs.
    """
    product = item.quantity_rule or QuantityRule()
    own = terms.quantity_rules.get(item.sku) if terms is not None else None
    if own is None or terms is None:
        rule, source = product, f"product {item.sku}"
    else:
        given = own.model_dump(exclude_none=True, exclude={"sku"})
        rule, source = product.model_copy(update=given), f"account {terms.account_id}"
        if rule.min_quantity and rule.max_quantity and rule.min_quantity > rule.max_quantity:
            rule = own  # the negotiated rule can't be met with the product's: it wins whole
    return QuantityLimits(
        rule.min_quantity, rule.increment or item.pack_size, rule.max_quantity, source
    )


def check_quantity(
    line_no: int, quantity: int, item: CatalogItem, terms: BuyerTerms | None
) -> None:
    limits = quantity_limits(item, terms)
    broken = limits.broken_by(quantity)
    if broken is not None:
        raise Rejected(
            ReasonCode.QUANTITY_RULE,
            f"line {line_no}: SKU {item.sku!r} quantity {quantity}: {broken} ({limits.describe()})",
        )


# --- where is the stock held? ------------------------------------------------------------------


def may_backorder(order: Order, terms: BuyerTerms | None) -> bool:
    """Only businesses that agreed to wait get backorders; consumers expect what they see."""
    return order.channel is Channel.B2B and terms is not None and terms.allows_backorders


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
    backorders: bool = False,
) -> list[Allocation]:
    """Choose one warehouse per line with enough free stock, or reject the whole order.

    With `backorders`, a line no warehouse can cover is held in its best
    warehouse for what is there, and the rest waits for stock in that warehouse.
    Lines for the same SKU draw on the same running availability, so an order can
    never be promised more than the warehouse holds.
    """
    free = {sku: list(sites) for sku, sites in stock.items()}
    allocations = []
    for line_no, line in enumerate(order.lines, start=1):
        item = items[line.sku]
        sites = sorted(free.get(line.sku, []), key=lambda s: warehouse_preference(order, s))
        chosen = next((s for s in sites if s.available >= line.quantity), None)
        if chosen is None and not (backorders and sites):
            raise OutOfStock(
                item.category, shortage_message(line_no, line.sku, line.quantity, sites)
            )
        site = chosen or sites[0]
        taken = min(line.quantity, max(site.available, 0))
        allocations.append(
            Allocation(
                line_no,
                line.sku,
                line.quantity,
                site.warehouse_id,
                item.category,
                item.unit_weight_kg,
                backordered=line.quantity - taken,
            )
        )
        free[line.sku] = [
            replace(s, available=s.available - taken) if s is site else s for s in sites
        ]
    return allocations


def shortage_message(line_no: int, sku: str, quantity: int, sites: Sequence[StockAt]) -> str:
    if not sites:
        return f"line {line_no}: SKU {sku!r}: {quantity} requested, no warehouse stocks it"
    free = [max(s.available, 0) for s in sites]  # a WMS count below reservations is 0 free
    return (
        f"line {line_no}: SKU {sku!r}: {quantity} requested, at most {max(free)} available "
        f"in one warehouse ({sum(free)} in all)"
    )


# --- stock arriving for backorders ---------------------------------------------------------------


@dataclass(frozen=True)
class WaitingLine:
    """A backordered order line, in the order it started waiting."""

    order_id: str
    line_no: int
    backordered: int


def fill_backorders(
    available: int, waiting: Sequence[WaitingLine]
) -> list[tuple[WaitingLine, int]]:
    """First come, first served: each line in turn takes what it still needs while stock lasts.

    Strict order rather than best fit, so a big early order is not starved by a
    stream of small later ones; the head line takes a part if that is all there is.
    """
    fills = []
    for line in waiting:
        if available <= 0:
            break
        if line.backordered <= 0:
            continue
        taken = min(available, line.backordered)
        fills.append((line, taken))
        available -= taken
    return fills


# --- where an order stands -----------------------------------------------------------------------


class Stage(StrEnum):
    """Where an order stands for catalog, and so what may still happen to its stock.

    A new order starts `RESERVED`, or `CANCELLED` when its own shop's
    cancellation came first; an order id whose first message was unreadable is
    `REJECTED` from the start. `TRANSITIONS` says where each stage goes.
    """

    RESERVED = "reserved"
    """Accepted: its lines hold their stock or wait for it."""
    FULFILLING = "fulfilling"
    """Fulfillment planned it: the goods are being picked, a late cancel or reject keeps them."""
    REJECTED = "rejected"
    """Refused at submission (lines, stock, or an unreadable message): it never held stock."""
    CANCELLED = "cancelled"
    """Withdrawn by its shop while reserved (or before it arrived); its stock went back."""
    RELEASED = "released"
    """Rejected or cancelled by a later step while reserved; its stock went back."""

    @property
    def ended(self) -> bool:
        """It will not go on: its id is used, its stock given back."""
        return self in ENDED_STAGES

    @property
    def open(self) -> bool:
        """Its lines may still receive backordered stock."""
        return self in OPEN_STAGES


ENDED_STAGES = frozenset({Stage.REJECTED, Stage.CANCELLED, Stage.RELEASED})
OPEN_STAGES = (Stage.RESERVED, Stage.FULFILLING)


class Cause(StrEnum):
    """What happens to a known order."""

    REFUSED = "refused"
    """Its lines or its stock failed the checks at submission."""
    SHOP_CANCELLED = "shop_cancelled"
    """Its own shop withdrew it (`orders.cancelled`)."""
    ENDED_LATER = "ended_later"
    """A later step reported it rejected or cancelled (a veto, an expired approval, …)."""
    FULFILLMENT_PLANNED = "fulfillment_planned"
    """Fulfillment planned its shipments."""
    SHIPPED = "shipped"
    """A shipment of it left the warehouse."""


class StockMove(Enum):
    """What a transition does to the units an order holds."""

    KEEP = "keep"
    RELEASE = "release"
    """Held units go back on the shelf, backordered ones stop waiting."""
    COMMIT = "commit"
    """The shipped units leave on hand, once per shipment."""


@dataclass(frozen=True)
class Transition:
    to: Stage
    stock: StockMove = StockMove.KEEP


TRANSITIONS: Mapping[tuple[Stage, Cause], Transition] = {
    (Stage.RESERVED, Cause.REFUSED): Transition(Stage.REJECTED),
    (Stage.RESERVED, Cause.SHOP_CANCELLED): Transition(Stage.CANCELLED, StockMove.RELEASE),
    (Stage.RESERVED, Cause.ENDED_LATER): Transition(Stage.RELEASED, StockMove.RELEASE),
    (Stage.RESERVED, Cause.FULFILLMENT_PLANNED): Transition(Stage.FULFILLING),
    # Goods that left are gone whatever catalog thought of the order: the stage stays.
    **{(stage, Cause.SHIPPED): Transition(stage, StockMove.COMMIT) for stage in Stage},
}
"""Every transition there is; any other (stage, cause) changes nothing."""


def transition(stage: str, cause: Cause) -> Transition | None:
    """What `cause` does to an order at `stage`; None when it changes nothing."""
    return TRANSITIONS.get((Stage(stage), cause))


def cause_of(report: OrderState) -> Cause | None:
    """What another service's report of an order means for catalog; None: nothing."""
    if report in (OrderState.REJECTED, OrderState.CANCELLED):
        return Cause.ENDED_LATER
    if report is OrderState.FULFILLMENT_PLANNED:
        return Cause.FULFILLMENT_PLANNED
    if report is OrderState.SHIPPED:
        return Cause.SHIPPED
    return None


# --- where each unit of an order line is ----------------------------------------------------------


@dataclass(frozen=True)
class LineUnits:
    """One reserved order line's ledger: `quantity = held + backordered + committed + released`.

    `held` units are on the shelf and counted in their stock row's `reserved`;
    `backordered` ones wait for stock in the line's warehouse; `committed` ones
    left with a shipment; `released` ones were given back when the order ended.
    """

    held: int
    backordered: int = 0
    committed: int = 0
    released: int = 0

    @classmethod
    def allocated(cls, allocation: Allocation) -> LineUnits:
        return cls(held=allocation.in_stock, backordered=allocation.backordered)

    @property
    def quantity(self) -> int:
        return self.held + self.backordered + self.committed + self.released

    @property
    def waiting(self) -> bool:
        """Still waiting for stock: first come, first served among the waiting lines."""
        return self.backordered > 0

    def release(self) -> LineUnits:
        """The order ended: held units go back to the shelf, backordered ones stop waiting."""
        return replace(
            self,
            held=0,
            backordered=0,
            released=self.released + self.held + self.backordered,
        )

    def ship(self, units: int) -> LineUnits:
        """A shipment left with `units` of the line: they are committed, never more than held."""
        taken = min(units, self.held)
        return replace(self, held=self.held - taken, committed=self.committed + taken)

    def fill(self, units: int) -> LineUnits:
        """Stock arrived for the line: `units` of its backorder are held now."""
        if not 0 < units <= self.backordered:
            raise ValueError(f"{units} units can't fill a backorder of {self.backordered}")
        return replace(self, held=self.held + units, backordered=self.backordered - units)


# --- on hand --------------------------------------------------------------------------------------


class NegativeStock(Exception):
    """An adjustment that would leave fewer than zero units on hand: the WMS and we disagree."""


def adjusted_on_hand(on_hand: int, adjustment: StockAdjustment) -> int:
    """On hand after a WMS movement; refused if it would go below zero."""
    after = on_hand + adjustment.delta
    if after < 0:
        raise NegativeStock(
            f"delta: {adjustment.delta} would take on hand of {adjustment.sku} in "
            f"{adjustment.warehouse_id} from {on_hand} to {after}; "
            "send the absolute level on catalog.stock instead"
        )
    return after
