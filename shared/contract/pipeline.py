"""Events between the services: the order, enriched stage by stage.

Each stage carries the shop's `Order` unchanged and adds what it decided, so a
downstream service never has to ask an upstream one (no synchronous calls).
The submission's time travels along as `submitted_at`, so every stage can tell
how long the order took to reach it.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal, Self

from pydantic import Field, model_validator

from shared.contract.envelope import ContractModel, Event, UtcTime
from shared.contract.money import Amount, Currency
from shared.contract.orders import Id, Order
from shared.contract.payment import PaymentPlan
from shared.contract.promotions import PromotionOutcome


class ReservedLine(ContractModel):
    """A line catalog accepted: where its stock is held and what fulfillment needs to ship it."""

    sku: Id
    quantity: int = Field(gt=0, le=1_000_000, description="Units ordered on this line.")
    warehouse_id: Id
    category: str = Field(max_length=200)
    unit_weight_kg: Amount
    line_no: int | None = Field(
        default=None, ge=1, description="The line's position in the shop's order, from 1."
    )
    backordered: int = Field(
        default=0,
        ge=0,
        description="Units of `quantity` not in stock yet (B2B accounts that allow "
        "backorders); they are reserved in `warehouse_id` when stock arrives and ship later.",
    )

    @model_validator(mode="after")
    def _backorder_within_quantity(self) -> Self:
        if self.backordered > self.quantity:
            raise ValueError(
                f"backordered: {self.backordered} is more than the line's quantity {self.quantity}"
            )
        return self

    @property
    def in_stock(self) -> int:
        """Units held in the warehouse now, ready to ship."""
        return self.quantity - self.backordered


class PricedLine(ReservedLine):
    unit_price: Amount
    currency: Currency | None = Field(
        default=None,
        description="The currency of `unit_price`, `line_total` and `discount`: always the "
        "order's. Pricing writes it; a line written before it was added takes `totals.currency`.",
    )
    line_total: Amount
    price_source: str = Field(
        max_length=200,
        description="e.g. 'list:list-EUR', 'contract:acme-2026 tier>=100', or with a line "
        "promotion 'list:list-EUR promotion:spring-bolts'",
    )
    discount: Amount = Field(
        default=Decimal(0),
        description="What a line promotion took off: `line_total` is `unit_price * quantity` "
        "(rounded) minus this.",
    )
    promotions: list[PromotionOutcome] = Field(
        default_factory=list,
        max_length=100,
        description="The line promotions considered for this line: the one applied and the "
        "others with why not (docs/pricing.md).",
    )


class Totals(ContractModel):
    """`subtotal` is the sum of the line totals; `total` is `subtotal - discount`."""

    currency: Currency
    subtotal: Amount
    discount: Amount = Field(
        default=Decimal(0), description="The order-level promotion's discount; lines unchanged."
    )
    total: Amount
    promotions: list[PromotionOutcome] = Field(
        default_factory=list,
        max_length=100,
        description="The order-level promotions considered: at most one applied, the others "
        "with why not.",
    )


def submitted_at_field() -> Any:
    return Field(
        default=None,
        description="When the shop submitted the order: the `occurred_at` of its "
        "`orders.submitted` event, carried unchanged from catalog on (for end-to-end latency). "
        "Absent on events written before it was added.",
    )


def payment_plan_field() -> Any:
    return Field(
        default=None,
        description="How and when the total is paid: method, terms, and the due amounts "
        "(deposit and remainder, or instalments) that sum exactly to `totals.total` "
        "(docs/pricing.md). Absent on events written before it was added.",
    )


def lines_in_totals_currency(lines: list[PricedLine], totals: Totals) -> list[PricedLine]:
    """Each line with its currency: a line written before lines carried one takes the totals'.

    Used after validation, not before: a `before` validator would turn strict JSON parsing
    into strict Python parsing, which refuses every timestamp sent as text.
    """
    if all(line.currency is not None for line in lines):
        return lines
    return [
        line if line.currency is not None else line.model_copy(update={"currency": totals.currency})
        for line in lines
    ]


def one_currency(
    order: Order, lines: list[PricedLine], totals: Totals, payment: PaymentPlan | None
) -> None:
    """Mixed currencies in one order are refused: lines, totals and plan are in the order's."""
    currencies = {order.currency, totals.currency}
    currencies |= {line.currency for line in lines if line.currency is not None}
    if payment is not None:
        currencies |= {due.currency for due in payment.schedule}
    if len(currencies) > 1:
        raise ValueError(
            f"one order, one currency: the order is in {order.currency}, "
            f"but its amounts are in {', '.join(sorted(currencies))}"
        )


class ApprovalMode(StrEnum):
    AUTOMATIC = "automatic"
    APPROVERS = "approvers"


class OrderValidated(Event):
    """`orders.validated/v1` (catalog → pricing), key `account_id`."""

    schema_: Literal["orders.validated/v1"] = Field(alias="schema")
    order: Order
    submitted_at: UtcTime | None = submitted_at_field()
    lines: list[ReservedLine]


class OrderPriced(Event):
    """`orders.priced/v1` (pricing → approvals), key `account_id`."""

    schema_: Literal["orders.priced/v1"] = Field(alias="schema")
    order: Order
    submitted_at: UtcTime | None = submitted_at_field()
    lines: list[PricedLine]
    totals: Totals
    credit_limit_override: bool = Field(
        default=False,
        description="The order exceeds the account's credit limit and pricing let it through "
        "for approval to decide.",
    )
    credit_warning: str | None = Field(
        default=None,
        max_length=500,
        description="Set when the order takes the account's open exposure past its credit "
        "warning threshold (or over its limit): limit, exposure and utilisation in words.",
    )
    payment: PaymentPlan | None = payment_plan_field()
    holds: bool = Field(
        default=True,
        description="Pricing set something aside for this order that its approval moves "
        "(credit, a limited promotion's use, a single-use quote). Without any, approvals does "
        "not repeat the order's approval on orders.status.holds, where no reader would act "
        "on it. Absent: true.",
    )

    @model_validator(mode="after")
    def _one_currency(self) -> Self:
        # frozen: the lines are completed in place, once, while the event is being built
        object.__setattr__(self, "lines", lines_in_totals_currency(self.lines, self.totals))
        one_currency(self.order, self.lines, self.totals, self.payment)
        return self


class OrderApproved(Event):
    """`orders.approved/v1` (approvals → fulfillment), key `account_id`."""

    schema_: Literal["orders.approved/v1"] = Field(alias="schema")
    order: Order
    submitted_at: UtcTime | None = submitted_at_field()
    lines: list[PricedLine]
    totals: Totals
    approval_mode: ApprovalMode
    approved_by: list[Id] = Field(default_factory=list)
    payment: PaymentPlan | None = payment_plan_field()

    @model_validator(mode="after")
    def _one_currency(self) -> Self:
        # frozen: the lines are completed in place, once, while the event is being built
        object.__setattr__(self, "lines", lines_in_totals_currency(self.lines, self.totals))
        one_currency(self.order, self.lines, self.totals, self.payment)
        return self


class BackorderFilled(Event):
    """`orders.backorder_filled/v1` (catalog → fulfillment), key `account_id`.

    Stock arrived for backordered lines and catalog now holds it for the order.
    Each line's `quantity` is the units this fill reserved (its `backordered` is
    0); a line may be filled in several parts as stock trickles in.
    """

    schema_: Literal["orders.backorder_filled/v1"] = Field(alias="schema")
    order_id: Id
    account_id: Id
    lines: list[ReservedLine] = Field(min_length=1)
