"""Promotions and promo codes: `pricing.promotions` reference data, and what pricing says it did.

A promotion takes a percentage or a fixed amount off SKUs, categories or the
whole order, within a validity window, optionally above a minimum order value,
optionally limited in uses (per customer, in total), either automatically or
only for orders that name its promo code. The combination rule and every
reason are in docs/pricing.md ("Promotions and promo codes").
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import Field, StringConstraints, model_validator

from shared.contract.envelope import ContractModel, Event, UtcTime
from shared.contract.money import Amount, Currency
from shared.contract.orders import Channel, Id, PromoCode


class PromotionKind(StrEnum):
    PERCENTAGE = "percentage"
    FIXED = "fixed"


class PromotionScope(StrEnum):
    SKU = "sku"
    CATEGORY = "category"
    ORDER = "order"


class Promotion(Event):
    """`pricing.promotions/v1`, key `promotion_id`: one promotion's full current state.

    `active: false` retires it: it is never applied again; uses already held
    keep their fate. A fixed amount is off each unit of a matching line (scope
    `sku` or `category`) or off the order (scope `order`), in `currency`; a
    percentage is off the line total or the order's subtotal.
    """

    schema_: Literal["pricing.promotions/v1"] = Field(alias="schema")
    promotion_id: Id
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    kind: PromotionKind
    percent: Amount | None = Field(
        default=None, description="Percentage off (kind `percentage`): more than 0, at most 100."
    )
    amount: Amount | None = Field(
        default=None,
        description="Amount off (kind `fixed`) in `currency`: per unit on a line, or off the "
        "order.",
    )
    currency: Currency | None = Field(
        default=None,
        description="Required for a fixed amount or a minimum order value; the promotion then "
        "applies to orders in this currency only.",
    )
    scope: PromotionScope
    skus: list[Id] = Field(default_factory=list, max_length=1000)
    categories: list[Annotated[str, StringConstraints(min_length=1, max_length=200)]] = Field(
        default_factory=list,
        max_length=100,
        description="Category subtrees: 'fasteners' covers 'fasteners/bolts'.",
    )
    valid_from: UtcTime
    valid_until: UtcTime = Field(description="Exclusive: the promotion ends at this instant.")
    min_order_value: Amount | None = Field(
        default=None,
        description="The order's subtotal before promotions must reach this (in `currency`).",
    )
    code: PromoCode | None = Field(
        default=None,
        description="Absent: applied automatically. Present: only for orders naming this code "
        "(case-insensitive).",
    )
    channels: list[Channel] = Field(
        default_factory=lambda: [Channel.B2C],
        min_length=1,
        description="Who may get it; B2C only by default. A business account gets a "
        "promotion only if it names `b2b` (the contract allows it).",
    )
    max_uses_total: int | None = Field(default=None, ge=1, le=1_000_000_000)
    max_uses_per_customer: int | None = Field(default=None, ge=1, le=1_000_000)
    active: bool = True

    @model_validator(mode="after")
    def _makes_sense(self) -> Self:
        problems = promotion_problems(self)
        if problems:
            raise ValueError(f"promotion {self.promotion_id!r}: {'; '.join(problems)}")
        return self


def promotion_problems(p: Promotion) -> list[str]:
    """What makes a promotion nonsense; it is then refused to `pricing.promotions.dlq`."""
    problems = []
    if p.kind is PromotionKind.PERCENTAGE and (
        p.percent is None or p.amount is not None or not Decimal(0) < p.percent <= 100
    ):
        problems.append("a percentage promotion gives `percent` above 0 and at most 100, no amount")
    if p.kind is PromotionKind.FIXED and (
        p.amount is None or p.percent is not None or p.amount == 0
    ):
        problems.append("a fixed promotion gives an `amount` above 0, no percent")
    if (p.kind is PromotionKind.FIXED or p.min_order_value is not None) and p.currency is None:
        problems.append("a fixed amount or a minimum order value needs its `currency`")
    if p.valid_until <= p.valid_from:
        problems.append("`valid_until` must be after `valid_from`")
    wanted = {
        PromotionScope.SKU: (bool(p.skus), not p.categories),
        PromotionScope.CATEGORY: (bool(p.categories), not p.skus),
        PromotionScope.ORDER: (not p.skus, not p.categories),
    }[p.scope]
    if not all(wanted):
        problems.append(
            f"scope {p.scope.value!r} names exactly its own targets (skus or categories)"
        )
    if len(set(p.channels)) != len(p.channels):
        problems.append("each channel once")
    return problems


class PromotionOutcome(ContractModel):
    """One promotion pricing considered for a line or the order: applied, or why not."""

    promotion_id: Id
    name: str = Field(max_length=200)
    kind: PromotionKind
    scope: PromotionScope
    code: PromoCode | None = None
    applied: bool
    discount: Amount = Field(description="What it took off (0 when not applied).")
    reason: str | None = Field(
        default=None,
        max_length=40,
        description="Why it was not applied: expired, not_yet_valid, exhausted, "
        "customer_limit_reached, channel_not_allowed, currency_mismatch, minimum_not_met, "
        "not_applicable, quoted_line, better_promotion_applied.",
    )
