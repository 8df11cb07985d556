"""Reference data on compacted topics, published by ERP/PIM/CRM (or `python -m tools.seed`).

Each message carries the full current state of one entity under its key, so a
service that replays the topic from the start rebuilds its copy.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import Field, StringConstraints, model_validator

from shared.contract.envelope import ContractModel, Event, UtcTime
from shared.contract.money import Amount, Currency, SignedDecimal
from shared.contract.orders import Channel, Id
from shared.contract.payment import Terms

MAX_UNITS = 1_000_000_000
"""Most units one stock figure may say: a typo beyond it is refused, not stored."""

Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class Specification(ContractModel):
    """One typed attribute of a product: a number with its unit, a text, or a yes/no.

    Typed rather than free text so a B2B buyer can compare and filter
    (`length 100 mm`, `material steel`, `RoHS yes`), and a number keeps its unit.
    """

    name: Annotated[str, StringConstraints(min_length=1, max_length=60)]
    number: SignedDecimal | None = None
    unit: Annotated[str, StringConstraints(min_length=1, max_length=20)] | None = None
    text: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    flag: bool | None = None

    @model_validator(mode="after")
    def _one_value(self) -> Self:
        given = [v for v in (self.number, self.text, self.flag) if v is not None]
        if len(given) != 1:
            raise ValueError(
                f"specification {self.name!r}: give exactly one of number, text or flag"
            )
        if self.unit is not None and self.number is None:
            raise ValueError(f"specification {self.name!r}: a unit goes with a number")
        return self


class QuantityRule(ContractModel):
    """How much of one SKU a business may order on one line (B2B orders only).

    Any of the three may be left out. `increment` is the pack multiple: the
    quantity must be a whole number of increments; left out, it is the
    product's `pack_size`.
    """

    min_quantity: int | None = Field(default=None, ge=1, le=10_000_000)
    increment: int | None = Field(default=None, ge=1, le=10_000_000)
    max_quantity: int | None = Field(default=None, ge=1, le=10_000_000)

    @model_validator(mode="after")
    def _min_not_above_max(self) -> Self:
        if (
            self.min_quantity is not None
            and self.max_quantity is not None
            and self.min_quantity > self.max_quantity
        ):
            raise ValueError(
                f"min_quantity {self.min_quantity} is above max_quantity {self.max_quantity}"
            )
        return self


class AccountQuantityRule(QuantityRule):
    """An account's own rule for one SKU; the fields it gives replace the product's."""

    sku: Id


class Product(Event):
    """`catalog.products/v1`, key `sku`: what PIM knows about one sellable item."""

    schema_: Literal["catalog.products/v1"] = Field(alias="schema")
    sku: Id
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    short_description: Annotated[str, StringConstraints(max_length=300)] = Field(
        default="", description="One or two sentences for consumer shops (B2C)."
    )
    description: str = Field(default="", description="The long description.")
    specifications: list[Specification] = Field(
        default_factory=list, max_length=100, description="Typed attributes for B2B buyers."
    )
    category: str = Field(description="Category path, e.g. 'fasteners/bolts'.")
    unit_of_measure: Annotated[str, StringConstraints(min_length=1, max_length=20)] = Field(
        default="piece", description="What one unit is: piece, box, bag, m, kg…"
    )
    pack_size: int = Field(
        default=1, ge=1, le=100_000, description="Units per pack; B2B orders come in packs."
    )
    active: bool = True
    channels: list[Channel] = Field(default_factory=lambda: [Channel.B2B, Channel.B2C])
    unit_weight_kg: Amount
    unit_volume_m3: Amount | None = Field(
        default=None, description="Volume of one unit, for freight planning."
    )
    quantity_rule: QuantityRule | None = Field(
        default=None,
        description="Minimum, increment and maximum per order line for businesses (B2B).",
    )

    @model_validator(mode="after")
    def _distinct_specifications(self) -> Self:
        names = [spec.name for spec in self.specifications]
        if len(set(names)) != len(names):
            raise ValueError("specifications: each name may appear once")
        return self


class StockLevel(Event):
    """`catalog.stock/v1`, key `<sku>@<warehouse_id>`: the absolute on-hand level from the WMS."""

    schema_: Literal["catalog.stock/v1"] = Field(alias="schema")
    sku: Id
    warehouse_id: Id
    on_hand: int = Field(ge=0, le=MAX_UNITS)


class StockAdjustment(Event):
    """`catalog.stock_adjustments/v1`, key `<sku>@<warehouse_id>`: a change to on-hand stock.

    For what the WMS reports as a movement rather than a level: a count
    correction, breakage, a return put back on the shelf. Applied once per
    `event_id`; an absolute level on `catalog.stock` later replaces the result.
    """

    schema_: Literal["catalog.stock_adjustments/v1"] = Field(alias="schema")
    sku: Id
    warehouse_id: Id
    delta: int = Field(
        ge=-MAX_UNITS,
        le=MAX_UNITS,
        description="Units added (positive) or removed (negative); never 0.",
    )
    reason: Annotated[str, StringConstraints(min_length=1, max_length=200)]

    @model_validator(mode="after")
    def _changes_something(self) -> Self:
        if self.delta == 0:
            raise ValueError("delta: an adjustment of 0 units changes nothing")
        return self


class WarehouseKind(StrEnum):
    CENTRAL_DC = "central_dc"
    REGIONAL = "regional"
    THIRD_PARTY = "3pl"


class Warehouse(Event):
    """`warehouses/v1`, key `warehouse_id`."""

    schema_: Literal["warehouses/v1"] = Field(alias="schema")
    warehouse_id: Id
    name: Name
    kind: WarehouseKind
    country: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
    postal_code: Annotated[str, StringConstraints(min_length=1, max_length=16)]


class Role(StrEnum):
    BUYER = "buyer"
    MANAGER = "manager"
    FINANCE = "finance"
    DIRECTOR = "director"


class Member(ContractModel):
    member_id: Id
    name: Name
    roles: list[Role] = Field(max_length=len(Role))


class CreditPolicy(StrEnum):
    """What pricing does with an order that would take the account over its credit limit."""

    REJECT = "reject"
    FINANCE_APPROVAL = "finance_approval"


class CreditTerms(ContractModel):
    """A business account's credit line, in the account's `currency` (docs/pricing.md)."""

    limit: Amount = Field(description="Most open exposure the account may run up.")
    policy: CreditPolicy = Field(
        default=CreditPolicy.REJECT,
        description="Over the limit: reject the order, or let finance approve it.",
    )
    warning_percent: int = Field(
        default=80,
        ge=1,
        le=100,
        description="From this share of the limit on, a priced order carries a credit warning.",
    )


class Account(Event):
    """`accounts/v1`, key `account_id`: a B2B company or a B2C customer, with its terms."""

    schema_: Literal["accounts/v1"] = Field(alias="schema")
    account_id: Id
    name: Name
    channel: Channel
    currency: Currency = "EUR"
    price_list_id: Id | None = Field(default=None, description="B2B contract price list.")
    payment_terms: list[Terms] = Field(
        default_factory=list,
        description="Invoice terms this account may use (B2B); the grammar is in "
        "docs/pricing.md, and an account with terms that do not parse is refused.",
    )
    default_payment_terms: Terms | None = Field(
        default=None,
        description="The account's usual terms; longer terms may need approval. "
        "Defaults to the first of `payment_terms`.",
    )
    approval_threshold: Amount | None = Field(
        default=None,
        description="Used only while the account has no approval policy: orders at or above "
        "this total need a manager and a finance approver (B2B).",
    )
    members: list[Member] = Field(default_factory=list, max_length=1000)
    assortment: list[Id] | None = Field(
        default=None,
        max_length=20_000,
        description="SKUs this account may buy. With `assortment_categories` null too, the "
        "account may buy the whole catalog.",
    )
    assortment_categories: list[Annotated[str, StringConstraints(max_length=200)]] | None = Field(
        default=None,
        max_length=1000,
        description="Category subtrees this account may buy from, e.g. 'fasteners' allows "
        "'fasteners/bolts'. A SKU is in the assortment if it is listed or its category is.",
    )
    quantity_rules: list[AccountQuantityRule] = Field(
        default_factory=list,
        description="Per-SKU quantity rules negotiated with this account (B2B); each given "
        "field replaces the product's.",
    )
    allows_backorders: bool = Field(
        default=False,
        description="B2B only: an order for more than is in stock proceeds, and the short "
        "quantity ships later when stock arrives. Consumer orders never backorder.",
    )
    credit: CreditTerms | None = Field(
        default=None,
        description="B2B credit limit in the account's currency; none means no limit.",
    )

    @model_validator(mode="after")
    def _credit_for_businesses_only(self) -> Self:
        if self.credit is not None and self.channel is not Channel.B2B:
            raise ValueError("credit: only business (b2b) accounts buy on credit")
        return self

    @model_validator(mode="after")
    def _one_quantity_rule_per_sku(self) -> Self:
        skus = [rule.sku for rule in self.quantity_rules]
        repeated = sorted({sku for sku in skus if skus.count(sku) > 1})
        if repeated:
            raise ValueError(f"quantity_rules: SKU {repeated[0]!r} has more than one rule")
        return self


class PriceTier(ContractModel):
    min_quantity: int = Field(ge=1)
    unit_price: Amount


class PriceEntry(ContractModel):
    sku: Id
    tiers: list[PriceTier] = Field(min_length=1)


class PriceList(Event):
    """`pricing.price_lists/v1`, key `price_list_id`: list prices (B2C) or an account's contract."""

    schema_: Literal["pricing.price_lists/v1"] = Field(alias="schema")
    price_list_id: Id
    currency: Currency
    prices: list[PriceEntry]


class QuoteUse(StrEnum):
    """How often a negotiated quote may be ordered against."""

    SINGLE = "single"
    MULTIPLE = "multiple"


class QuoteLine(ContractModel):
    """One SKU of a quote: the agreed unit price for up to `quantity` units per order."""

    sku: Id
    quantity: int = Field(ge=1, le=1_000_000, description="Most units one order may take.")
    unit_price: Amount


class Quote(Event):
    """`pricing.quotes/v1`, key `quote_id`: a price the sales team negotiated with one account.

    The CRM republishes a changed quote with a higher `version`; pricing keeps
    the highest version it has seen, so a late older one changes nothing.
    """

    schema_: Literal["pricing.quotes/v1"] = Field(alias="schema")
    quote_id: Id
    account_id: Id
    version: int = Field(ge=1, le=1_000_000_000)
    currency: Currency
    lines: list[QuoteLine] = Field(min_length=1, max_length=500)
    issued_at: UtcTime
    valid_until: UtcTime = Field(description="Orders priced from this instant on are refused.")
    use: QuoteUse = Field(
        default=QuoteUse.SINGLE,
        description="single: one order may use it (held while the order lives); multiple: any "
        "number of the account's orders until it expires.",
    )

    @model_validator(mode="after")
    def _sound(self) -> Self:
        skus = [line.sku for line in self.lines]
        repeated = sorted({sku for sku in skus if skus.count(sku) > 1})
        if repeated:
            raise ValueError(f"lines: SKU {repeated[0]!r} is quoted more than once")
        if self.valid_until <= self.issued_at:
            raise ValueError(
                f"valid_until {self.valid_until.isoformat()} is not after "
                f"issued_at {self.issued_at.isoformat()}"
            )
        return self


class QuoteEventKind(StrEnum):
    USED = "used"
    RELEASED = "released"
    EXPIRED = "expired"


class QuoteEvent(Event):
    """`pricing.quote_events/v1` (pricing → CRM), key `quote_id`: a quote's lifecycle.

    `used`: an order took a single-use quote (held until the order's fate);
    `released`: that order was rejected or cancelled, the quote is free again;
    `expired`: its `valid_until` passed. `version` is the quote's version pricing used.
    """

    schema_: Literal["pricing.quote_events/v1"] = Field(alias="schema")
    quote_id: Id
    account_id: Id
    version: int = Field(ge=1)
    kind: QuoteEventKind
    order_id: Id | None = Field(default=None, description="The order (used, released).")
