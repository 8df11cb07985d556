"""Events between the services: the order, enriched stage by stage.

Each stage carries the shop's `Order` unchanged and adds what it decided, so a
downstream service never has to ask an upstream one (no synchronous calls).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field

from shared.contract.envelope import ContractModel, Event
from shared.contract.money import Amount, Currency
from shared.contract.orders import Id, Order


class ReservedLine(ContractModel):
    """A line catalog accepted: where its stock is held and what fulfillment needs to ship it."""

    sku: Id
    quantity: int = Field(gt=0)
    warehouse_id: Id
    category: str
    unit_weight_kg: Amount


class PricedLine(ReservedLine):
    unit_price: Amount
    line_total: Amount
    price_source: str = Field(description="e.g. 'list:list-EUR' or 'contract:acme-2026 tier>=100'")


class Totals(ContractModel):
    currency: Currency
    subtotal: Amount
    total: Amount


class ApprovalMode(StrEnum):
    AUTOMATIC = "automatic"
    APPROVERS = "approvers"


class OrderValidated(Event):
    """`orders.validated/v1` (catalog → pricing), key `account_id`."""

    schema_: Literal["orders.validated/v1"] = Field(alias="schema")
    order: Order
    lines: list[ReservedLine]


class OrderPriced(Event):
    """`orders.priced/v1` (pricing → approvals), key `account_id`."""

    schema_: Literal["orders.priced/v1"] = Field(alias="schema")
    order: Order
    lines: list[PricedLine]
    totals: Totals
    credit_limit_override: bool = Field(
        default=False,
        description="The order exceeds the account's credit limit and pricing let it through "
        "for approval to decide.",
    )


class OrderApproved(Event):
    """`orders.approved/v1` (approvals → fulfillment), key `account_id`."""

    schema_: Literal["orders.approved/v1"] = Field(alias="schema")
    order: Order
    lines: list[PricedLine]
    totals: Totals
    approval_mode: ApprovalMode
    approved_by: list[Id] = Field(default_factory=list)
