"""The B2B approval contract: policies and delegations in (reference data), notices out.

An account's `ApprovalPolicy` is an ordered list of rules. Each rule says
*when* it applies (a condition over the order) and *who* must then approve
(steps: a role and a quorum, run in sequence or in parallel). The approvals
service merges the steps of every rule that matches (docs/approvals.md) and
keeps a snapshot of the policy with each request, so a later policy change
never moves the goalposts of an order already waiting.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, Field, model_validator

from shared.contract.envelope import ContractModel, Event, UtcTime
from shared.contract.money import Amount, Currency
from shared.contract.orders import Id
from shared.contract.reference import Role


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be a positive duration, e.g. 'PT4H' or 'P2D'")
    return value


Duration = Annotated[timedelta, AfterValidator(_positive)]
"""ISO 8601 duration on the wire ('PT30M', 'P2D'); a bare number is seconds."""


class StepOrder(StrEnum):
    SEQUENTIAL = "sequential"
    """Step 2 opens when step 1 is satisfied."""
    PARALLEL = "parallel"
    """Every step is open from the start."""


class ApprovalStep(ContractModel):
    """N of the M members holding `role` must approve; `escalation_role` joins after a delay."""

    step_id: Id
    role: Role
    quorum: int = Field(default=1, ge=1, le=50, description="N: distinct approvers needed.")
    escalate_after: Duration | None = Field(
        default=None, description="Time after the step opens when `escalation_role` may sign too."
    )
    escalation_role: Role | None = None

    @model_validator(mode="after")
    def _escalation_is_complete(self) -> Self:
        if self.role is Role.BUYER:
            raise ValueError("role: a buyer places orders and cannot be an approval step's role")
        if (self.escalate_after is None) != (self.escalation_role is None):
            raise ValueError("escalate_after and escalation_role go together: give both or neither")
        if self.escalation_role is not None and self.escalation_role in (self.role, Role.BUYER):
            raise ValueError(
                "escalation_role must be another approver role than the step's own role"
            )
        return self


class RuleCondition(ContractModel):
    """When a rule applies. Every criterion given must hold; a rule with none always applies."""

    total_at_least: dict[Currency, Amount] | None = Field(
        default=None,
        description="Order total at or above this amount, per currency. An order in a currency "
        "not listed matches: it cannot be compared, so it is approved by people.",
    )
    categories: list[Annotated[str, Field(min_length=1)]] | None = Field(
        default=None,
        min_length=1,
        description="Any line whose category path starts with one of these, e.g. 'machines'.",
    )
    payment_terms_longer_than_default: bool = Field(
        default=False,
        description="Invoice terms longer than the account's default terms (NET60 vs NET30).",
    )
    credit_limit_override: bool = Field(
        default=False, description="Pricing let the order exceed the account's credit limit."
    )
    buyer_over_spending_limit: bool = Field(
        default=False,
        description="This order takes the buyer over their own limit for the period.",
    )
    cost_centre_over_budget: bool = Field(
        default=False,
        description="This order takes its cost centre over its budget for the period.",
    )


class ApprovalRule(ContractModel):
    rule_id: Id
    version: int = Field(ge=1)
    description: str = ""
    when: RuleCondition = Field(default_factory=RuleCondition)
    steps: list[ApprovalStep] = Field(min_length=1, max_length=10)
    order: StepOrder = StepOrder.SEQUENTIAL
    distinct_signers: bool = Field(
        default=False,
        description="One person may sign only one step of a request this rule applies to.",
    )

    @model_validator(mode="after")
    def _steps_are_distinct(self) -> Self:
        roles = [step.role for step in self.steps]
        if len(set(roles)) != len(roles):
            raise ValueError("steps: each step of a rule needs its own role")
        ids = [step.step_id for step in self.steps]
        if len(set(ids)) != len(ids):
            raise ValueError("steps: step_id must be unique within a rule")
        return self


class Period(StrEnum):
    """Calendar periods in UTC: a day, an ISO week (from Monday), a month."""

    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"


class LimitScope(StrEnum):
    BUYER = "buyer"
    COST_CENTRE = "cost_centre"


class SpendingLimit(ContractModel):
    """How much one buyer (or one cost centre) may spend per period before approval is needed."""

    scope: LimitScope
    subject: Id | None = Field(
        default=None,
        description="The buyer's member_id or the cost centre; null applies to every one "
        "without a limit of its own.",
    )
    amount: Amount
    currency: Currency
    period: Period


class ApprovalPolicy(Event):
    """`approvals.policies/v1`, key `account_id`: how an account's orders are approved."""

    schema_: Literal["approvals.policies/v1"] = Field(alias="schema")
    account_id: Id
    version: int = Field(ge=1)
    rules: list[ApprovalRule] = Field(max_length=50)
    expires_after: Duration = Field(
        default=timedelta(days=7), description="A request not complete by then expires."
    )
    remind_before: Duration | None = Field(
        default=None, description="A reminder goes out this long before the request expires."
    )
    spending_limits: list[SpendingLimit] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        ids = [rule.rule_id for rule in self.rules]
        if len(set(ids)) != len(ids):
            raise ValueError("rules: rule_id must be unique within a policy")
        if self.remind_before is not None and self.remind_before >= self.expires_after:
            raise ValueError("remind_before must be shorter than expires_after")
        return self


class Delegation(Event):
    """`approvals.delegations/v1`, key `account_id:delegator_id`: out of office.

    While `starts_at <= now < ends_at`, `delegate_id` may decide in the
    delegator's name. The latest delegation of a delegator replaces the
    previous one; send one with `ends_at` in the past to end it early.
    """

    schema_: Literal["approvals.delegations/v1"] = Field(alias="schema")
    account_id: Id
    delegator_id: Id
    delegate_id: Id
    starts_at: UtcTime
    ends_at: UtcTime
    reason: Annotated[str, Field(max_length=200)] | None = None

    @model_validator(mode="after")
    def _sensible(self) -> Self:
        if self.delegate_id == self.delegator_id:
            raise ValueError("delegate_id: an approver cannot delegate to themselves")
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class NoticeKind(StrEnum):
    REMINDER = "reminder"
    ESCALATION = "escalation"


class ApprovalNotice(Event):
    """`approvals.notifications/v1`, key `order_id`: someone should decide (mail, chat, …)."""

    schema_: Literal["approvals.notifications/v1"] = Field(alias="schema")
    order_id: Id
    account_id: Id
    kind: NoticeKind
    step_id: Id | None = None
    recipients: list[Id] = Field(max_length=1000)
    deadline: UtcTime
    message: str = Field(max_length=2000)
