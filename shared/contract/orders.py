"""What shops send: a submitted order and its cancellation."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import Field, StringConstraints, model_validator

from shared.contract.envelope import ContractModel, Event
from shared.contract.money import Currency

ID_MAX_LENGTH = 64
Id = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=ID_MAX_LENGTH, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"
    ),
]


PromoCode = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,40}$")]


class Channel(StrEnum):
    B2B = "b2b"
    B2C = "b2c"


class PaymentMethod(StrEnum):
    CARD = "card"
    PREPAID = "prepaid"
    INSTALLMENTS = "installments"
    INVOICE = "invoice"


class DeliverySpeed(StrEnum):
    ECONOMY = "economy"
    STANDARD = "standard"
    EXPRESS = "express"


class OrderLine(ContractModel):
    sku: Id
    quantity: int = Field(gt=0, le=1_000_000)


class Payment(ContractModel):
    method: PaymentMethod
    terms: Annotated[str, StringConstraints(pattern=r"^[A-Z0-9_-]{1,40}$")] | None = Field(
        default=None,
        description="Invoice terms (B2B) such as PREPAY, NET30, DOM15, ON_FULFILLMENT or "
        "DEPOSIT30_NET30; see docs/pricing.md. Terms the account has not agreed are rejected.",
    )
    installments: Literal[3, 6, 12] | None = Field(
        default=None,
        description="With method `installments` (B2C): how many monthly instalments.",
    )

    @model_validator(mode="after")
    def _installments_with_their_method(self) -> Self:
        if self.installments is not None and self.method is not PaymentMethod.INSTALLMENTS:
            raise ValueError(
                f"installments: a number of instalments goes with method 'installments', "
                f"not {self.method.value!r}"
            )
        return self


class Address(ContractModel):
    country: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")] = Field(
        description="ISO 3166-1 alpha-2"
    )
    postal_code: Annotated[str, StringConstraints(min_length=1, max_length=16)]
    city: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    line1: Annotated[str, StringConstraints(min_length=1, max_length=200)]


class Delivery(ContractModel):
    speed: DeliverySpeed = DeliverySpeed.STANDARD
    requested_date: date | None = None
    address: Address


class Order(ContractModel):
    """The order as the shop wrote it; later stages carry it along unchanged (but for a
    reorder's `lines`, which catalog fills in from the earlier order)."""

    order_id: Id
    shop_id: Id
    channel: Channel
    account_id: Id
    buyer_id: Id
    currency: Currency
    reference: Annotated[str, StringConstraints(max_length=100)] | None = None
    cost_centre: Id | None = Field(
        default=None, description="The buyer's cost centre (B2B), for budgets and approvals."
    )
    lines: list[OrderLine] = Field(
        default_factory=list,
        max_length=500,
        description="One line per SKU (a SKU may not repeat). Empty only with `reorder_of`.",
    )
    reorder_of: Id | None = Field(
        default=None,
        description="One-click reorder: the id of an earlier order of the same account whose "
        "lines this order takes, instead of listing them. Catalog fills `lines` in from it; "
        "later stages see both.",
    )
    quote_id: Id | None = None
    promo_codes: list[PromoCode] = Field(default_factory=list, max_length=10)
    payment: Payment
    delivery: Delivery

    @model_validator(mode="after")
    def _one_line_per_sku(self) -> Self:
        first: dict[str, int] = {}
        for number, line in enumerate(self.lines, start=1):
            if line.sku in first:
                raise ValueError(
                    f"lines: SKU {line.sku} is on line {first[line.sku]} and line {number}; "
                    "send one line per SKU with the whole quantity"
                )
            first[line.sku] = number
        return self

    @model_validator(mode="after")
    def _lines_or_reorder(self) -> Self:
        if not self.lines and self.reorder_of is None:
            raise ValueError(
                "lines: an order needs at least one line, or reorder_of naming an earlier order"
            )
        return self


class OrderSubmitted(Order, Event):
    """`orders.submitted/v1`, keyed by `account_id` so one account's orders stay in order."""

    schema_: Literal["orders.submitted/v1"] = Field(alias="schema")

    @model_validator(mode="after")
    def _not_lines_and_reorder(self) -> Self:
        """A shop sends lines or a reorder, never both: which would win is no one's guess."""
        if self.lines and self.reorder_of is not None:
            raise ValueError(
                "reorder_of: a reorder takes the earlier order's lines; send either lines "
                "or reorder_of, not both"
            )
        return self

    def order(self) -> Order:
        return Order.model_validate(self.model_dump(include=set(Order.model_fields)))


class OrderCancelled(Event):
    """`orders.cancelled/v1`: a shop withdraws an order it submitted."""

    schema_: Literal["orders.cancelled/v1"] = Field(alias="schema")
    order_id: Id
    account_id: Id
    reason: Annotated[str, StringConstraints(max_length=200)] | None = None


class ApprovalDecisionKind(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"


class ApprovalDecision(Event):
    """`approvals.decisions/v1`: one approver's verdict on one order."""

    schema_: Literal["approvals.decisions/v1"] = Field(alias="schema")
    order_id: Id
    approver_id: Id
    decision: ApprovalDecisionKind
    comment: Annotated[str, StringConstraints(max_length=1000)] | None = None
