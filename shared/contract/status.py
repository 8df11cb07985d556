"""`orders.status`: every transition of every order, the topic shops read."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import Field, StringConstraints, model_validator

from shared.contract.envelope import ContractModel, Event
from shared.contract.money import Amount
from shared.contract.orders import Channel, Id
from shared.contract.payment import PaymentPlan
from shared.contract.pipeline import PricedLine, Totals, lines_in_totals_currency


class OrderState(StrEnum):
    RECEIVED = "received"
    REJECTED = "rejected"
    AWAITING_APPROVAL = "awaiting_approval"
    APPROVED = "approved"
    FULFILLMENT_PLANNED = "fulfillment_planned"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"


TERMINAL_STATES = frozenset({OrderState.REJECTED, OrderState.CANCELLED, OrderState.DELIVERED})


class ReasonCode(StrEnum):
    """The closed list of reasons an order is rejected or cancelled (docs/contract.md)."""

    INVALID_EVENT = "invalid_event"
    PROCESSING_FAILED = "processing_failed"
    DUPLICATE_ORDER_ID = "duplicate_order_id"
    UNKNOWN_REORDER = "unknown_reorder"
    UNKNOWN_SKU = "unknown_sku"
    NOT_IN_ASSORTMENT = "not_in_assortment"
    QUANTITY_RULE = "quantity_rule"
    OUT_OF_STOCK = "out_of_stock"
    UNKNOWN_ACCOUNT = "unknown_account"
    PRICE_NOT_FOUND = "price_not_found"
    CURRENCY_NOT_SUPPORTED = "currency_not_supported"
    INVALID_PROMO_CODE = "invalid_promo_code"
    UNKNOWN_QUOTE = "unknown_quote"
    QUOTE_EXPIRED = "quote_expired"
    QUOTE_MISMATCH = "quote_mismatch"
    QUOTE_ALREADY_USED = "quote_already_used"
    PAYMENT_TERMS_NOT_ALLOWED = "payment_terms_not_allowed"
    CREDIT_LIMIT_EXCEEDED = "credit_limit_exceeded"
    APPROVAL_REJECTED = "approval_rejected"
    APPROVAL_EXPIRED = "approval_expired"
    CANCELLED_BY_SHOP = "cancelled_by_shop"


class Reason(ContractModel):
    code: ReasonCode
    message: str = Field(max_length=1000)


class ShipmentMode(StrEnum):
    PARCEL = "parcel"
    FREIGHT = "freight"


Label = Annotated[str, StringConstraints(min_length=1, max_length=80)]


class ShipmentLine(ContractModel):
    sku: Id
    quantity: int = Field(gt=0, le=1_000_000)
    line_no: int | None = Field(default=None, ge=1, description="The order line it ships.")


class Shipment(ContractModel):
    shipment_id: Label
    mode: ShipmentMode
    warehouse_id: Id
    carrier: Label
    service_level: Label
    tracking_number: Label
    promised_date: date
    delivery_window: str | None = Field(
        default=None, description="Freight only: the agreed unloading window, e.g. '08:00-12:00'."
    )
    pallets: int | None = Field(default=None, ge=0, le=100_000)
    weight_kg: Amount
    lines: list[ShipmentLine] = Field(max_length=500)


class MatchedRule(ContractModel):
    """A policy rule that applied to the order, at the version the request was opened with."""

    rule_id: Id
    version: int
    why: str


class StepSignature(ContractModel):
    approver_id: Id = Field(description="The person who decided.")
    on_behalf_of: Id | None = Field(
        default=None, description="The delegator, when the approver acted as their delegate."
    )
    at: datetime


class StepProgress(ContractModel):
    step_id: Id
    role: str
    quorum: int
    state: Literal["waiting", "open", "satisfied"]
    after: list[Id] = Field(description="Steps that must be satisfied before this one opens.")
    eligible: list[Id] = Field(description="Members who may sign this step now.")
    signed_by: list[StepSignature]
    escalation_role: str | None = None
    escalates_at: datetime | None = None
    escalated: bool = False


class AuditEntry(ContractModel):
    """One line of a request's audit trail: opened, a decision, a reminder, an escalation, …"""

    at: datetime
    kind: str
    approver_id: Id | None = None
    on_behalf_of: Id | None = None
    role: str | None = None
    step_id: Id | None = None
    decision: str | None = None
    comment: str | None = None
    outcome: str | None = None
    why: str


class ApprovalProgress(ContractModel):
    required_approvals: int = Field(description="Signatures needed in all: the sum of quorums.")
    approved_by: list[Id]
    eligible_approvers: list[Id] = Field(description="Members who may sign an open step now.")
    policy_version: int | None = None
    rules: list[MatchedRule] = Field(default_factory=list)
    steps: list[StepProgress] = Field(default_factory=list)
    deadline: datetime | None = None
    history: list[AuditEntry] = Field(default_factory=list)


class OrderStatusChanged(Event):
    """`orders.status/v1`, key `order_id`. Stage details are filled by the stage that knows them."""

    schema_: Literal["orders.status/v1"] = Field(alias="schema")
    order_id: Id
    account_id: Id | None = None
    channel: Channel | None = None
    status: OrderState
    reported_by: str = Field(max_length=40, description="The service that made this transition.")
    reason: Reason | None = None
    lines: list[PricedLine] | None = None
    totals: Totals | None = None
    payment: PaymentPlan | None = Field(
        default=None,
        description="How and when the total is paid (awaiting_approval, approved): terms "
        "and due amounts, as pricing planned them (docs/pricing.md).",
    )
    approval: ApprovalProgress | None = None
    shipments: list[Shipment] | None = None

    @model_validator(mode="after")
    def _lines_in_totals_currency(self) -> Self:
        if self.lines is not None and self.totals is not None:
            # frozen: the lines are completed in place, once, while the event is being built
            lines = lines_in_totals_currency(self.lines, self.totals)
            object.__setattr__(self, "lines", lines)
        return self


class ShipmentDispatched(Event):
    """`fulfillment.dispatches/v1`, key `order_id`: the WMS confirms a shipment left the dock.

    Fulfillment reports the order `shipped` once per shipment, and catalog then
    deducts the shipped units from on-hand stock (the reservation is committed).
    """

    schema_: Literal["fulfillment.dispatches/v1"] = Field(alias="schema")
    order_id: Id
    shipment_id: Label
