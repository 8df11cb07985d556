"""Which rules of an account's approval policy apply to an order, and the steps they add up to.

Pure functions over the contract's `ApprovalPolicy` and the facts the app
gathers about one order (`OrderFacts`): no I/O, so every rule is unit-tested
directly.

The merge rule, when several rules match (docs/approvals.md):

- steps are identified by role: rules asking the same role share one step,
  whose quorum is the largest asked and whose escalation is the earliest;
- a sequential rule puts each of its steps after the previous one; the merged
  request keeps every such "after" unless it would form a cycle with an
  earlier rule's order (rules are read in policy order, the earlier one wins);
- a request forbids one person signing two steps if any matched rule does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from shared.categories import within
from shared.contract import (
    Account,
    ApprovalPolicy,
    ApprovalRule,
    ApprovalStep,
    Channel,
    LimitScope,
    Order,
    PaymentTerms,
    Period,
    PricedLine,
    ReasonCode,
    Role,
    RuleCondition,
    SpendingLimit,
    StepOrder,
    Totals,
)
from shared.rejection import Rejected

FALLBACK_RULE_ID = "approval-threshold"
FALLBACK_EXPIRY = timedelta(days=7)


# --- what the rules look at -----------------------------------------------------------------


@dataclass(frozen=True)
class LimitKey:
    """One spending limit that applies to an order: whose, which period, in which currency."""

    scope: LimitScope
    subject: str
    period: Period
    currency: str


@dataclass(frozen=True)
class OrderFacts:
    """What the rules look at, gathered by the app from the order, its account and past spend."""

    currency: str
    total: Decimal
    categories: frozenset[str]
    buyer_id: str
    cost_centre: str | None = None
    payment_terms: str | None = None
    default_payment_terms: str | None = None
    credit_limit_override: bool = False
    spent: Mapping[LimitKey, Decimal] = field(default_factory=dict)
    """Approved spend so far in the current period, per applicable limit."""


def terms_days(terms: str | None) -> int | None:
    """NET30 -> 30, PREPAY -> 0, DEPOSIT30_NET60 -> 60 (the credit the terms give, by the
    grammar of docs/pricing.md); None for no invoice terms or terms that do not parse."""
    if terms is None:
        return None
    try:
        return PaymentTerms.parse(terms).credit_days
    except ValueError:
        return None


def default_terms(account: Account) -> str | None:
    """The account's usual terms: named explicitly, else the first it may use."""
    if account.default_payment_terms is not None:
        return account.default_payment_terms
    return account.payment_terms[0] if account.payment_terms else None


def period_start(period: Period, now: datetime) -> datetime:
    """Start of the calendar period (UTC) that `now` falls in: spend counts from here."""
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period is Period.DAILY:
        return day
    if period is Period.WEEKLY:
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def limit_for(
    limits: Sequence[SpendingLimit], scope: LimitScope, subject: str | None
) -> SpendingLimit | None:
    """The subject's own limit, else the scope's default (`subject: null`), else none."""
    if subject is None:
        return None
    own = [lim for lim in limits if lim.scope is scope and lim.subject == subject]
    default = [lim for lim in limits if lim.scope is scope and lim.subject is None]
    found = own or default
    return found[0] if found else None


def applicable_limits(
    policy: ApprovalPolicy, buyer_id: str, cost_centre: str | None
) -> dict[LimitKey, SpendingLimit]:
    """The buyer's and the cost centre's limits, keyed as the app looks up their spend."""
    found: dict[LimitKey, SpendingLimit] = {}
    for scope, subject in ((LimitScope.BUYER, buyer_id), (LimitScope.COST_CENTRE, cost_centre)):
        limit = limit_for(policy.spending_limits, scope, subject)
        if limit is not None and subject is not None:
            found[LimitKey(scope, subject, limit.period, limit.currency)] = limit
    return found


def is_business_order(order: Order, account: Account | None) -> bool:
    """B2B if the order *or* its account says so: a business cannot skip its approvers by
    marking an order b2c.

    Raises `Rejected` for a B2B order of an account approvals has never seen:
    without its members nobody could approve it, and letting it pass unchecked
    would skip the account's rules.
    """
    business = order.channel is Channel.B2B or (
        account is not None and account.channel is Channel.B2B
    )
    if business and account is None:
        raise Rejected(
            ReasonCode.UNKNOWN_ACCOUNT,
            f"account {order.account_id!r} is not known to approvals, so nobody can approve "
            "its order",
        )
    return business


def order_facts(
    order: Order,
    lines: Sequence[PricedLine],
    totals: Totals,
    account: Account,
    *,
    credit_limit_override: bool = False,
    spent: Mapping[LimitKey, Decimal] | None = None,
) -> OrderFacts:
    return OrderFacts(
        currency=totals.currency,
        total=totals.total,
        categories=frozenset(line.category for line in lines),
        buyer_id=order.buyer_id,
        cost_centre=order.cost_centre,
        payment_terms=order.payment.terms,
        default_payment_terms=default_terms(account),
        credit_limit_override=credit_limit_override,
        spent=dict(spent or {}),
    )


# --- matching ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleMatch:
    rule_id: str
    version: int
    why: str


def rule_applies(
    condition: RuleCondition, facts: OrderFacts, limits: Mapping[LimitKey, SpendingLimit]
) -> str | None:
    """Why the condition holds for this order, or None if it does not. All criteria must hold."""
    reasons: list[str] = []
    checks = (
        _total_reason(condition, facts),
        _category_reason(condition, facts),
        _terms_reason(condition, facts),
        _credit_reason(condition, facts),
        _limit_reason(condition.buyer_over_spending_limit, LimitScope.BUYER, facts, limits),
        _limit_reason(condition.cost_centre_over_budget, LimitScope.COST_CENTRE, facts, limits),
    )
    for asked, reason in checks:
        if asked and reason is None:
            return None
        if asked and reason:
            reasons.append(reason)
    return "; ".join(reasons) or "applies to every order"


def _total_reason(condition: RuleCondition, facts: OrderFacts) -> tuple[bool, str | None]:
    if condition.total_at_least is None:
        return False, None
    threshold = condition.total_at_least.get(facts.currency)
    if threshold is None:
        return True, (
            f"total is in {facts.currency}, which the rule gives no amount for: "
            "cannot compare, so people decide"
        )
    if facts.total >= threshold:
        return True, f"total {facts.total} {facts.currency} is at or above {threshold}"
    return True, None


def _category_reason(condition: RuleCondition, facts: OrderFacts) -> tuple[bool, str | None]:
    if condition.categories is None:
        return False, None
    hits = sorted(
        category
        for category in facts.categories
        for wanted in condition.categories
        if within(category, wanted)
    )
    return True, (f"lines in category {', '.join(dict.fromkeys(hits))}" if hits else None)


def _terms_reason(condition: RuleCondition, facts: OrderFacts) -> tuple[bool, str | None]:
    if not condition.payment_terms_longer_than_default:
        return False, None
    asked, usual = terms_days(facts.payment_terms), terms_days(facts.default_payment_terms)
    if asked is None or usual is None or asked <= usual:
        return True, None
    return True, (
        f"payment terms {facts.payment_terms} are longer than the account's "
        f"{facts.default_payment_terms}"
    )


def _credit_reason(condition: RuleCondition, facts: OrderFacts) -> tuple[bool, str | None]:
    if not condition.credit_limit_override:
        return False, None
    return True, (
        "pricing flagged a credit-limit override" if facts.credit_limit_override else None
    )


def _limit_reason(
    asked: bool, scope: LimitScope, facts: OrderFacts, limits: Mapping[LimitKey, SpendingLimit]
) -> tuple[bool, str | None]:
    if not asked:
        return False, None
    for key, limit in limits.items():
        if key.scope is not scope:
            continue
        spent = facts.spent.get(key, Decimal(0))
        whose = "buyer " if scope is LimitScope.BUYER else "cost centre "
        if facts.currency != limit.currency:
            return True, (
                f"{whose}{key.subject}'s {limit.period.value} limit is in {limit.currency}, the "
                f"order in {facts.currency}: cannot compare, so people decide"
            )
        if spent + facts.total > limit.amount:
            return True, (
                f"{whose}{key.subject} would spend {spent + facts.total} {limit.currency} this "
                f"{_period_noun(limit.period)}, over the limit of {limit.amount}"
            )
    return True, None


def _period_noun(period: Period) -> str:
    return {Period.DAILY: "day", Period.WEEKLY: "week", Period.MONTHLY: "month"}[period]


# --- the plan: merged steps ---------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedStep:
    step_id: str
    role: Role
    quorum: int
    after: frozenset[str]
    escalation_role: Role | None = None
    escalate_after: timedelta | None = None


@dataclass(frozen=True)
class ApprovalPlan:
    """What a request must collect; no steps means the order is approved at once."""

    policy_version: int | None
    matches: tuple[RuleMatch, ...]
    steps: tuple[PlannedStep, ...]
    distinct_signers: bool
    expires_after: timedelta
    remind_before: timedelta | None

    @property
    def needs_approval(self) -> bool:
        return bool(self.steps)

    def summary(self) -> str:
        if not self.matches:
            return "no approval rule applies"
        return "; ".join(f"rule {m.rule_id} v{m.version}: {m.why}" for m in self.matches)


def plan_approval(
    policy: ApprovalPolicy, facts: OrderFacts, limits: Mapping[LimitKey, SpendingLimit]
) -> ApprovalPlan:
    """Match every rule in policy order and merge the steps of those that apply."""
    matched: list[tuple[ApprovalRule, RuleMatch]] = []
    for rule in policy.rules:
        why = rule_applies(rule.when, facts, limits)
        if why is not None:
            matched.append((rule, RuleMatch(rule.rule_id, rule.version, why)))
    rules = [rule for rule, _ in matched]
    return ApprovalPlan(
        policy_version=policy.version,
        matches=tuple(match for _, match in matched),
        steps=merge_steps(rules),
        distinct_signers=any(rule.distinct_signers for rule in rules),
        expires_after=policy.expires_after,
        remind_before=policy.remind_before,
    )


def merge_steps(rules: Sequence[ApprovalRule]) -> tuple[PlannedStep, ...]:
    """The union of the rules' steps, one per role, with their order kept (see module doc)."""
    merged: dict[Role, ApprovalStep] = {}
    quorum: dict[Role, int] = {}
    for rule in rules:
        for step in rule.steps:
            first = merged.setdefault(step.role, step)
            quorum[step.role] = max(quorum.get(step.role, 0), step.quorum)
            if _escalates_sooner(step, merged[step.role]):
                merged[step.role] = first.model_copy(
                    update={
                        "escalate_after": step.escalate_after,
                        "escalation_role": step.escalation_role,
                    }
                )
    before: dict[Role, set[Role]] = {role: set() for role in merged}
    for rule in rules:
        if rule.order is StepOrder.SEQUENTIAL:
            for earlier, later in zip(rule.steps, rule.steps[1:], strict=False):
                if not _reaches(before, earlier.role, later.role):
                    before[later.role].add(earlier.role)
    ids = _unique_step_ids(merged)
    return tuple(
        PlannedStep(
            step_id=ids[role],
            role=role,
            quorum=quorum[role],
            after=frozenset(ids[r] for r in _all_before(before, role)),
            escalation_role=step.escalation_role,
            escalate_after=step.escalate_after,
        )
        for role, step in merged.items()
    )


def _unique_step_ids(steps: Mapping[Role, ApprovalStep]) -> dict[Role, str]:
    """Step ids as the rules named them; a name already taken gets the role (and a number)."""
    ids: dict[Role, str] = {}
    for role, step in steps.items():
        candidate, n = step.step_id, 1
        while candidate in ids.values():
            n += 1
            suffix = role.value if n == 2 else f"{role.value}-{n}"
            candidate = f"{step.step_id}-{suffix}"
        ids[role] = candidate
    return ids


def _escalates_sooner(candidate: ApprovalStep, current: ApprovalStep) -> bool:
    if candidate.escalate_after is None:
        return False
    return current.escalate_after is None or candidate.escalate_after < current.escalate_after


def _all_before(before: Mapping[Role, set[Role]], role: Role) -> set[Role]:
    seen: set[Role] = set()
    todo = list(before[role])
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(before[current])
    return seen


def _reaches(before: Mapping[Role, set[Role]], earlier: Role, later: Role) -> bool:
    """Whether `later` already comes before `earlier`: adding earlier→later would be a cycle."""
    return later == earlier or later in _all_before(before, earlier)


# --- accounts without a policy ----------------------------------------------------------------


def policy_in_force(account: Account | None, own: ApprovalPolicy | None) -> ApprovalPolicy | None:
    """The rules an account's orders are gated by: its `own` policy, else the fallback its
    `approval_threshold` gives, else none (nor for an account approvals does not know)."""
    if account is None:
        return None
    return own or fallback_policy(account)


def fallback_policy(account: Account) -> ApprovalPolicy | None:
    """An account with only an `approval_threshold`: a manager and finance approve above it.

    Kept so that accounts set up before policies existed keep their approvers;
    an account with neither has no rule, so its orders pass at once.
    """
    if account.approval_threshold is None:
        return None
    return ApprovalPolicy.new(
        account_id=account.account_id,
        version=1,
        expires_after=FALLBACK_EXPIRY,
        rules=[
            ApprovalRule(
                rule_id=FALLBACK_RULE_ID,
                version=1,
                description="the account's approval threshold",
                when=RuleCondition(total_at_least={account.currency: account.approval_threshold}),
                steps=[
                    ApprovalStep(step_id="manager", role=Role.MANAGER),
                    ApprovalStep(step_id="finance", role=Role.FINANCE),
                ],
                order=StepOrder.PARALLEL,
            )
        ],
    )
