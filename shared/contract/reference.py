"""Reference data on compacted topics, published by ERP/PIM/CRM (or `tradelane seed`).

Each message carries the full current state of one entity under its key, so a
service that replays the topic from the start rebuilds its copy.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import Field, StringConstraints, model_validator

from shared.contract.envelope import ContractModel, Event
from shared.contract.money import Amount, Currency
from shared.contract.orders import Channel, Id

Terms = Annotated[str, StringConstraints(pattern=r"^(PREPAY|NET\d{1,3})$")]


class Specification(ContractModel):
    """One typed attribute of a product: a number with its unit, a text, or a yes/no.

    Typed rather than free text so a B2B buyer can compare and filter
    (`length 100 mm`, `material steel`, `RoHS yes`), and a number keeps its unit.
    """

    name: Annotated[str, StringConstraints(min_length=1, max_length=60)]
    number: Amount | None = None
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
    on_hand: int = Field(ge=0)


class WarehouseKind(StrEnum):
    CENTRAL_DC = "central_dc"
    REGIONAL = "regional"
    THIRD_PARTY = "3pl"


class Warehouse(Event):
    """`warehouses/v1`, key `warehouse_id`."""

    schema_: Literal["warehouses/v1"] = Field(alias="schema")
    warehouse_id: Id
    name: str
    kind: WarehouseKind
    country: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
    postal_code: str


class Role(StrEnum):
    BUYER = "buyer"
    MANAGER = "manager"
    FINANCE = "finance"
    DIRECTOR = "director"


class Member(ContractModel):
    member_id: Id
    name: str
    roles: list[Role]


class Account(Event):
    """`accounts/v1`, key `account_id`: a B2B company or a B2C customer, with its terms."""

    schema_: Literal["accounts/v1"] = Field(alias="schema")
    account_id: Id
    name: str
    channel: Channel
    currency: Currency = "EUR"
    price_list_id: Id | None = Field(default=None, description="B2B contract price list.")
    payment_terms: list[Terms] = Field(
        default_factory=list, description="Invoice terms this account may use (B2B)."
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
    members: list[Member] = Field(default_factory=list)
    assortment: list[Id] | None = Field(
        default=None, description="SKUs this account may buy; null means the whole catalog."
    )


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
