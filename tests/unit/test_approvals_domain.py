"""Approvals' pure rules, without Kafka or a database: the policy contract, rule matching and
merging (`services.approvals.policy`) and the request's decisions and clock
(`services.approvals.domain`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from services.approvals.domain import (
    CHANGES,
    REFUSALS,
    AccountNow,
    ApprovalRequest,
    DecisionOutcome,
    DelegationWindow,
    Outcome,
    RequestState,
    Tick,
    TimerEvent,
    expiry_reason,
    rejection_reason,
)
from services.approvals.policy import (
    FALLBACK_EXPIRY,
    FALLBACK_RULE_ID,
    ApprovalPlan,
    LimitKey,
    OrderFacts,
    applicable_limits,
    default_terms,
    fallback_policy,
    is_business_order,
    limit_for,
    merge_steps,
    order_facts,
    period_start,
    plan_approval,
    rule_applies,
    terms_days,
)
from shared.contract import (
    Account,
    ApprovalDecisionKind,
    ApprovalPolicy,
    ApprovalRule,
    ApprovalStep,
    AuditEntry,
    Channel,
    Delegation,
    LimitScope,
    Member,
    Order,
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

APPROVE, REJECT = ApprovalDecisionKind.APPROVE, ApprovalDecisionKind.REJECT
SEQ, PAR = StepOrder.SEQUENTIAL, StepOrder.PARALLEL
MANAGER, FINANCE, DIRECTOR, BUYER_ROLE = Role.MANAGER, Role.FINANCE, Role.DIRECTOR, Role.BUYER

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
"""A Monday morning, UTC: every request here opens at T0."""
HOUR, DAY = timedelta(hours=1), timedelta(days=1)
TICK = timedelta(microseconds=1)

BEA = "bea"
"""The buyer; she also holds the manager role, which must not let her approve her own order."""
MAX, MIA, MO = "max", "mia", "mo"
FIONA, FRED = "fiona", "fred"
DORA = "dora"
DAN = "dan"
"""A colleague without any approver role: useful only as somebody's delegate."""
OLGA = "olga"
"""Not a member of the account at all."""

MEMBERS: dict[str, frozenset[Role]] = {
    BEA: frozenset({BUYER_ROLE, MANAGER}),
    MAX: frozenset({MANAGER}),
    MIA: frozenset({MANAGER}),
    MO: frozenset({MANAGER}),
    FIONA: frozenset({FINANCE}),
    FRED: frozenset({FINANCE}),
    DORA: frozenset({DIRECTOR}),
    DAN: frozenset({BUYER_ROLE}),
}
EVERYONE = AccountNow(members=frozenset(MEMBERS))


# --- builders ----------------------------------------------------------------------------------


def a_step(
    step_id: str,
    role: Role,
    quorum: int = 1,
    escalate_after: timedelta | None = None,
    escalation_role: Role | None = None,
) -> ApprovalStep:
    return ApprovalStep(
        step_id=step_id,
        role=role,
        quorum=quorum,
        escalate_after=escalate_after,
        escalation_role=escalation_role,
    )


def a_rule(
    rule_id: str,
    *steps: ApprovalStep,
    order: StepOrder = SEQ,
    when: RuleCondition | None = None,
    distinct_signers: bool = False,
    version: int = 1,
) -> ApprovalRule:
    return ApprovalRule(
        rule_id=rule_id,
        version=version,
        when=when or RuleCondition(),
        steps=list(steps),
        order=order,
        distinct_signers=distinct_signers,
    )


def a_policy(
    *rules: ApprovalRule,
    expires_after: timedelta = 7 * DAY,
    remind_before: timedelta | None = None,
    spending_limits: Sequence[SpendingLimit] = (),
    version: int = 4,
) -> ApprovalPolicy:
    return ApprovalPolicy.new(
        account_id="acme",
        version=version,
        rules=list(rules),
        expires_after=expires_after,
        remind_before=remind_before,
        spending_limits=list(spending_limits),
    )


def some_facts(
    total: str = "5000.00",
    currency: str = "EUR",
    categories: Sequence[str] = ("tools/drills",),
    **more: Any,
) -> OrderFacts:
    return OrderFacts(
        currency=currency,
        total=Decimal(total),
        categories=frozenset(categories),
        buyer_id=BEA,
        **more,
    )


def plan_of(
    *rules: ApprovalRule,
    expires_after: timedelta = 7 * DAY,
    remind_before: timedelta | None = None,
) -> ApprovalPlan:
    """The plan of a policy whose rules all apply (they have no conditions)."""
    policy = a_policy(*rules, expires_after=expires_after, remind_before=remind_before)
    return plan_approval(policy, some_facts(), {})


def open_request(
    plan: ApprovalPlan,
    members: dict[str, frozenset[Role]] | None = None,
    now: datetime = T0,
) -> ApprovalRequest:
    return ApprovalRequest.open(
        order_id="web-000123",
        account_id="acme",
        buyer_id=BEA,
        plan=plan,
        members=MEMBERS if members is None else members,
        now=now,
    )


def manager_then_finance(**plan_options: Any) -> ApprovalRequest:
    rule = a_rule("big", a_step("manager", MANAGER), a_step("finance", FINANCE))
    return open_request(plan_of(rule, **plan_options))


def approve(
    request: ApprovalRequest, actor: str, at: datetime = T0, account: AccountNow = EVERYONE
) -> DecisionOutcome:
    return request.decide(actor, APPROVE, at, account)


def reject(
    request: ApprovalRequest, actor: str, at: datetime = T0, account: AccountNow = EVERYONE
) -> DecisionOutcome:
    return request.decide(actor, REJECT, at, account)


def signed(request: ApprovalRequest, step_id: str) -> list[tuple[str, str]]:
    """(principal, actor) of each signature of one step."""
    step = next(s for s in request.steps if s.step_id == step_id)
    return [(s.principal, s.actor) for s in step.signatures]


def away(delegator: str, delegate: str, starts: datetime, ends: datetime) -> AccountNow:
    """Everyone still a member, and `delegator` out of office with `delegate` standing in."""
    return AccountNow(
        members=frozenset(MEMBERS),
        delegations=(DelegationWindow(delegator, delegate, starts, ends),),
    )


ROUND_TRIP = TypeAdapter(ApprovalRequest)


def reloaded(request: ApprovalRequest) -> ApprovalRequest:
    return ROUND_TRIP.validate_json(ROUND_TRIP.dump_json(request))


# --- the contract: ApprovalStep ------------------------------------------------------------------


def test_a_step_for_the_buyer_role_is_refused() -> None:
    with pytest.raises(ValidationError, match="a buyer places orders"):
        a_step("buyers", BUYER_ROLE)


@pytest.mark.parametrize(
    ("escalate_after", "escalation_role"),
    [(4 * HOUR, None), (None, DIRECTOR)],
    ids=["delay-without-role", "role-without-delay"],
)
def test_a_step_needs_both_escalation_fields_or_neither(
    escalate_after: timedelta | None, escalation_role: Role | None
) -> None:
    with pytest.raises(ValidationError, match="escalate_after and escalation_role go together"):
        a_step("manager", MANAGER, escalate_after=escalate_after, escalation_role=escalation_role)


@pytest.mark.parametrize("escalation_role", [MANAGER, BUYER_ROLE])
def test_a_step_escalates_only_to_another_approver_role(escalation_role: Role) -> None:
    with pytest.raises(ValidationError, match="escalation_role must be another approver role"):
        a_step("manager", MANAGER, escalate_after=HOUR, escalation_role=escalation_role)


def test_a_step_with_escalation_to_another_role_is_accepted() -> None:
    step = a_step("manager", MANAGER, escalate_after=HOUR, escalation_role=DIRECTOR)
    assert (step.escalate_after, step.escalation_role) == (HOUR, DIRECTOR)


@pytest.mark.parametrize("quorum", [0, -1, 51])
def test_a_step_quorum_outside_1_to_50_is_refused(quorum: int) -> None:
    with pytest.raises(ValidationError, match="quorum"):
        a_step("manager", MANAGER, quorum=quorum)


@pytest.mark.parametrize("delay", [timedelta(0), -HOUR])
def test_a_step_escalation_delay_must_be_positive(delay: timedelta) -> None:
    with pytest.raises(ValidationError, match="must be a positive duration"):
        a_step("manager", MANAGER, escalate_after=delay, escalation_role=DIRECTOR)


def test_a_step_id_must_look_like_an_id() -> None:
    with pytest.raises(ValidationError, match="step_id"):
        a_step("two words", MANAGER)


# --- the contract: ApprovalRule ------------------------------------------------------------------


def test_a_rule_with_two_steps_of_the_same_role_is_refused() -> None:
    with pytest.raises(ValidationError, match="each step of a rule needs its own role"):
        a_rule("r", a_step("m1", MANAGER), a_step("m2", MANAGER))


def test_a_rule_with_two_steps_of_the_same_id_is_refused() -> None:
    with pytest.raises(ValidationError, match="step_id must be unique within a rule"):
        a_rule("r", a_step("sign", MANAGER), a_step("sign", FINANCE))


def test_a_rule_needs_at_least_one_step() -> None:
    with pytest.raises(ValidationError, match="steps"):
        a_rule("r")


def test_a_rule_version_starts_at_one() -> None:
    with pytest.raises(ValidationError, match="version"):
        a_rule("r", a_step("manager", MANAGER), version=0)


def test_a_rule_is_sequential_without_distinct_signers_by_default() -> None:
    rule = ApprovalRule(rule_id="r", version=1, steps=[a_step("manager", MANAGER)])
    assert rule.order is SEQ
    assert rule.distinct_signers is False
    assert rule.when == RuleCondition()


# --- the contract: ApprovalPolicy, SpendingLimit, RuleCondition --------------------------------


def test_a_policy_with_two_rules_of_the_same_id_is_refused() -> None:
    rule = a_rule("big", a_step("manager", MANAGER))
    with pytest.raises(ValidationError, match="rule_id must be unique within a policy"):
        a_policy(rule, rule)


@pytest.mark.parametrize("remind_before", [2 * DAY, 3 * DAY], ids=["equal", "longer"])
def test_a_policy_reminder_must_come_before_the_expiry(remind_before: timedelta) -> None:
    with pytest.raises(ValidationError, match="remind_before must be shorter than expires_after"):
        a_policy(expires_after=2 * DAY, remind_before=remind_before)


def test_a_policy_reminder_shorter_than_the_expiry_is_accepted() -> None:
    policy = a_policy(expires_after=2 * DAY, remind_before=2 * DAY - TICK)
    assert policy.remind_before == 2 * DAY - TICK


@pytest.mark.parametrize("field", ["expires_after", "remind_before"])
@pytest.mark.parametrize("value", ["PT0S", "-PT1H", 0, -60])
def test_a_policy_duration_must_be_positive(field: str, value: object) -> None:
    with pytest.raises(ValidationError, match="must be a positive duration"):
        ApprovalPolicy.new(account_id="acme", version=1, rules=[], **{field: value})


def test_a_policy_reads_iso_8601_durations_and_bare_seconds() -> None:
    policy = ApprovalPolicy.new(
        account_id="acme", version=1, rules=[], expires_after="P2D", remind_before=3600
    )
    assert (policy.expires_after, policy.remind_before) == (2 * DAY, HOUR)


def test_a_policy_expires_after_a_week_without_reminder_by_default() -> None:
    policy = ApprovalPolicy.new(account_id="acme", version=1, rules=[])
    assert policy.expires_after == 7 * DAY
    assert policy.remind_before is None
    assert policy.spending_limits == []


def test_a_policy_version_starts_at_one() -> None:
    with pytest.raises(ValidationError, match="version"):
        ApprovalPolicy.new(account_id="acme", version=0, rules=[])


def test_a_policy_with_an_unknown_field_is_refused() -> None:
    with pytest.raises(ValidationError, match="expire_after"):
        ApprovalPolicy.new(account_id="acme", version=1, rules=[], expire_after="P1D")


@pytest.mark.parametrize("amount", [1000.5, 1000.0, True])
def test_a_rule_threshold_as_a_json_number_is_refused(amount: object) -> None:
    with pytest.raises(ValidationError, match="decimal string"):
        RuleCondition.model_validate({"total_at_least": {"EUR": amount}})


def test_a_rule_threshold_as_a_decimal_string_is_accepted() -> None:
    condition = RuleCondition.model_validate({"total_at_least": {"EUR": "1000.50"}})
    assert condition.total_at_least == {"EUR": Decimal("1000.50")}


@pytest.mark.parametrize("amount", [250.0, False])
def test_a_spending_limit_as_a_json_number_is_refused(amount: object) -> None:
    with pytest.raises(ValidationError, match="decimal string"):
        SpendingLimit.model_validate(
            {"scope": "buyer", "amount": amount, "currency": "EUR", "period": "monthly"}
        )


def test_a_spending_limit_from_the_wire_is_a_decimal() -> None:
    limit = SpendingLimit.model_validate_json(
        '{"scope": "cost_centre", "subject": "cc-7", "amount": "250.00", "currency": "EUR",'
        ' "period": "weekly"}'
    )
    assert limit == SpendingLimit(
        scope=LimitScope.COST_CENTRE,
        subject="cc-7",
        amount=Decimal("250.00"),
        currency="EUR",
        period=Period.WEEKLY,
    )


def test_a_category_criterion_may_not_be_an_empty_string() -> None:
    with pytest.raises(ValidationError, match="categories"):
        RuleCondition(categories=[""])


# --- the contract: Delegation ------------------------------------------------------------------


def a_delegation(**fields: Any) -> Delegation:
    return Delegation.new(
        **{
            "account_id": "acme",
            "delegator_id": MAX,
            "delegate_id": DAN,
            "starts_at": T0,
            "ends_at": T0 + DAY,
            **fields,
        }
    )


def test_a_delegation_to_oneself_is_refused() -> None:
    with pytest.raises(ValidationError, match="cannot delegate to themselves"):
        a_delegation(delegate_id=MAX)


@pytest.mark.parametrize("ends_at", [T0, T0 - HOUR], ids=["empty", "backwards"])
def test_a_delegation_must_end_after_it_starts(ends_at: datetime) -> None:
    with pytest.raises(ValidationError, match="ends_at must be after starts_at"):
        a_delegation(ends_at=ends_at)


def test_a_delegation_without_time_zone_is_refused() -> None:
    with pytest.raises(ValidationError, match="time zone"):
        a_delegation(starts_at=T0.replace(tzinfo=None))


def test_a_delegation_in_another_zone_is_kept_in_utc() -> None:
    berlin = timezone(timedelta(hours=1))
    delegation = a_delegation(starts_at=T0.astimezone(berlin))
    assert delegation.starts_at == T0
    assert delegation.starts_at.utcoffset() == timedelta(0)


def test_a_delegation_reason_is_at_most_200_characters() -> None:
    assert a_delegation(reason="x" * 200).reason == "x" * 200
    with pytest.raises(ValidationError, match="reason"):
        a_delegation(reason="x" * 201)


# --- policy: terms, periods, limits ------------------------------------------------------------


@pytest.mark.parametrize(
    ("terms", "days"),
    [
        (None, None),
        ("PREPAY", 0),
        ("NET30", 30),
        ("NET7", 7),
        ("NET090", 90),
        ("NET999", 999),
        ("NET1000", None),
        ("net30", None),
        ("NET", None),
        ("NET30 ", None),
        ("COD", None),
        ("ON_FULFILLMENT", 0),
        ("DEPOSIT30_NET60", 60),
        ("DOM15", 46),
    ],
)
def test_terms_days_reads_net_terms_and_prepay(terms: str | None, days: int | None) -> None:
    assert terms_days(terms) == days


def an_account(**fields: Any) -> Account:
    return Account.new(
        **{
            "account_id": "acme",
            "name": "ACME GmbH",
            "channel": Channel.B2B,
            "members": [
                Member(member_id=BEA, name="Bea Buyer", roles=[BUYER_ROLE, MANAGER]),
                Member(member_id=MAX, name="Max Manager", roles=[MANAGER]),
            ],
            **fields,
        }
    )


def test_default_terms_are_the_named_ones() -> None:
    account = an_account(payment_terms=["NET30", "NET60"], default_payment_terms="NET60")
    assert default_terms(account) == "NET60"


def test_default_terms_are_else_the_first_allowed() -> None:
    assert default_terms(an_account(payment_terms=["NET30", "NET60"])) == "NET30"


def test_default_terms_are_none_without_invoice_terms() -> None:
    assert default_terms(an_account()) is None


@pytest.mark.parametrize(
    ("period", "now", "start"),
    [
        (Period.DAILY, datetime(2026, 3, 4, 17, 45, 12, 5, tzinfo=UTC), datetime(2026, 3, 4)),
        (Period.WEEKLY, datetime(2026, 3, 4, 17, 45, tzinfo=UTC), datetime(2026, 3, 2)),
        (Period.WEEKLY, datetime(2026, 3, 2, 0, 0, tzinfo=UTC), datetime(2026, 3, 2)),
        (Period.WEEKLY, datetime(2026, 3, 8, 23, 59, tzinfo=UTC), datetime(2026, 3, 2)),
        (Period.WEEKLY, datetime(2026, 3, 1, 12, 0, tzinfo=UTC), datetime(2026, 2, 23)),
        (Period.MONTHLY, datetime(2026, 3, 31, 23, 59, tzinfo=UTC), datetime(2026, 3, 1)),
        (Period.MONTHLY, datetime(2026, 1, 1, 0, 0, tzinfo=UTC), datetime(2026, 1, 1)),
    ],
)
def test_period_start_is_the_start_of_the_utc_calendar_period(
    period: Period, now: datetime, start: datetime
) -> None:
    assert period_start(period, now) == start.replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("period", "start"),
    [
        (Period.DAILY, datetime(2026, 2, 28, tzinfo=UTC)),
        (Period.WEEKLY, datetime(2026, 2, 23, tzinfo=UTC)),
        (Period.MONTHLY, datetime(2026, 2, 1, tzinfo=UTC)),
    ],
)
def test_period_start_counts_in_utc_not_in_the_callers_zone(
    period: Period, start: datetime
) -> None:
    """Half past midnight on 1 March at UTC+2 is still 28 February in UTC."""
    local = datetime(2026, 3, 1, 0, 30, tzinfo=timezone(timedelta(hours=2)))
    found = period_start(period, local)
    assert found == start
    assert found.tzinfo == UTC


def a_limit(
    scope: LimitScope, subject: str | None, amount: str = "1000.00", currency: str = "EUR"
) -> SpendingLimit:
    return SpendingLimit(
        scope=scope,
        subject=subject,
        amount=Decimal(amount),
        currency=currency,
        period=Period.MONTHLY,
    )


BUYERS_DEFAULT = a_limit(LimitScope.BUYER, None, "1000.00")
BEAS_OWN = a_limit(LimitScope.BUYER, BEA, "300.00")
CC_DEFAULT = a_limit(LimitScope.COST_CENTRE, None, "5000.00")
LIMITS = [BUYERS_DEFAULT, BEAS_OWN, CC_DEFAULT]


def test_limit_for_prefers_the_subjects_own_limit() -> None:
    assert limit_for(LIMITS, LimitScope.BUYER, BEA) == BEAS_OWN


def test_limit_for_falls_back_to_the_scopes_default() -> None:
    assert limit_for(LIMITS, LimitScope.BUYER, MAX) == BUYERS_DEFAULT
    assert limit_for(LIMITS, LimitScope.COST_CENTRE, "cc-7") == CC_DEFAULT


def test_limit_for_finds_nothing_without_subject_or_limit() -> None:
    assert limit_for(LIMITS, LimitScope.COST_CENTRE, None) is None
    assert limit_for([BEAS_OWN], LimitScope.BUYER, MAX) is None
    assert limit_for([BEAS_OWN], LimitScope.COST_CENTRE, BEA) is None


def test_applicable_limits_key_the_buyers_and_the_cost_centres_limit() -> None:
    policy = a_policy(spending_limits=LIMITS)
    assert applicable_limits(policy, BEA, "cc-7") == {
        LimitKey(LimitScope.BUYER, BEA, Period.MONTHLY, "EUR"): BEAS_OWN,
        LimitKey(LimitScope.COST_CENTRE, "cc-7", Period.MONTHLY, "EUR"): CC_DEFAULT,
    }


def test_applicable_limits_skip_a_missing_cost_centre() -> None:
    policy = a_policy(spending_limits=LIMITS)
    assert list(applicable_limits(policy, MAX, None)) == [
        LimitKey(LimitScope.BUYER, MAX, Period.MONTHLY, "EUR")
    ]


# --- policy: rule conditions -------------------------------------------------------------------


def test_a_condition_without_criteria_applies_to_every_order() -> None:
    assert rule_applies(RuleCondition(), some_facts(), {}) == "applies to every order"


@pytest.mark.parametrize(
    ("total", "applies"), [("999.99", False), ("1000.00", True), ("1000.01", True)]
)
def test_a_total_threshold_applies_at_or_above_the_amount(total: str, applies: bool) -> None:
    condition = RuleCondition(total_at_least={"EUR": Decimal("1000.00")})
    why = rule_applies(condition, some_facts(total=total), {})
    assert (why is not None) is applies
    if applies:
        assert why == f"total {total} EUR is at or above 1000.00"


def test_a_total_threshold_uses_the_orders_currency() -> None:
    condition = RuleCondition(
        total_at_least={"EUR": Decimal("1000.00"), "USD": Decimal("10000.00")}
    )
    assert rule_applies(condition, some_facts(total="5000.00", currency="EUR"), {}) is not None
    assert rule_applies(condition, some_facts(total="5000.00", currency="USD"), {}) is None


def test_a_total_in_a_currency_the_rule_does_not_name_needs_people() -> None:
    condition = RuleCondition(total_at_least={"EUR": Decimal("1000.00")})
    why = rule_applies(condition, some_facts(total="1.00", currency="CHF"), {})
    assert why is not None
    assert "CHF" in why and "cannot compare" in why


@pytest.mark.parametrize(
    ("categories", "wanted", "hit"),
    [
        (["machines"], "machines", True),
        (["machines/lathes"], "machines", True),
        (["machines/lathes/cnc"], "machines", True),
        (["machines/lathes"], "machines/", True),
        (["machinery"], "machines", False),
        (["tools/machines"], "machines", False),
        (["machines"], "machines/lathes", False),
    ],
)
def test_a_category_criterion_matches_the_category_and_its_subtree(
    categories: list[str], wanted: str, hit: bool
) -> None:
    condition = RuleCondition(categories=[wanted])
    why = rule_applies(condition, some_facts(categories=categories), {})
    assert (why is not None) is hit


def test_a_category_criterion_names_each_matching_category_once() -> None:
    condition = RuleCondition(categories=["machines", "machines/lathes", "chemicals"])
    facts = some_facts(categories=["tools", "machines/lathes", "chemicals/acids"])
    assert rule_applies(condition, facts, {}) == (
        "lines in category chemicals/acids, machines/lathes"
    )


@pytest.mark.parametrize(
    ("terms", "default", "applies"),
    [
        ("NET60", "NET30", True),
        ("NET30", "PREPAY", True),
        ("NET30", "NET30", False),
        ("NET30", "NET60", False),
        ("PREPAY", "NET30", False),
        (None, "NET30", False),
        ("NET60", None, False),
        ("NET60", "COD", False),
    ],
)
def test_terms_criterion_applies_only_to_terms_longer_than_the_default(
    terms: str | None, default: str | None, applies: bool
) -> None:
    condition = RuleCondition(payment_terms_longer_than_default=True)
    facts = some_facts(payment_terms=terms, default_payment_terms=default)
    why = rule_applies(condition, facts, {})
    assert (why is not None) is applies
    if applies:
        assert why == f"payment terms {terms} are longer than the account's {default}"


@pytest.mark.parametrize("override", [True, False])
def test_credit_criterion_applies_when_pricing_flagged_an_override(override: bool) -> None:
    condition = RuleCondition(credit_limit_override=True)
    why = rule_applies(condition, some_facts(credit_limit_override=override), {})
    assert why == ("pricing flagged a credit-limit override" if override else None)


def buyer_limit(amount: str = "1000.00", currency: str = "EUR") -> dict[LimitKey, SpendingLimit]:
    limit = a_limit(LimitScope.BUYER, BEA, amount, currency)
    return {LimitKey(LimitScope.BUYER, BEA, Period.MONTHLY, currency): limit}


@pytest.mark.parametrize(
    ("spent", "total", "over"),
    [
        ("0", "999.99", False),
        ("0", "1000.00", False),
        ("0", "1000.01", True),
        ("600.00", "400.00", False),
        ("600.00", "400.01", True),
        ("1200.00", "0.01", True),
    ],
)
def test_buyer_limit_applies_when_this_order_takes_spend_over_it(
    spent: str, total: str, over: bool
) -> None:
    limits = buyer_limit("1000.00")
    key = next(iter(limits))
    facts = some_facts(total=total, spent={key: Decimal(spent)})
    why = rule_applies(RuleCondition(buyer_over_spending_limit=True), facts, limits)
    assert (why is not None) is over
    if over:
        assert why == (
            f"buyer {BEA} would spend {Decimal(spent) + Decimal(total)} EUR this month, "
            "over the limit of 1000.00"
        )


def test_buyer_limit_counts_no_spend_when_none_is_recorded() -> None:
    condition = RuleCondition(buyer_over_spending_limit=True)
    assert rule_applies(condition, some_facts(total="1000.00"), buyer_limit()) is None
    assert rule_applies(condition, some_facts(total="1000.01"), buyer_limit()) is not None


def test_buyer_limit_in_another_currency_needs_people() -> None:
    condition = RuleCondition(buyer_over_spending_limit=True)
    why = rule_applies(condition, some_facts(total="1.00"), buyer_limit(currency="USD"))
    assert why is not None
    assert "cannot compare" in why and "USD" in why


def test_a_buyer_without_a_limit_is_never_over_it() -> None:
    condition = RuleCondition(buyer_over_spending_limit=True)
    assert rule_applies(condition, some_facts(total="999999.00"), {}) is None


def test_cost_centre_budget_looks_only_at_the_cost_centres_limit() -> None:
    cc_key = LimitKey(LimitScope.COST_CENTRE, "cc-7", Period.WEEKLY, "EUR")
    cc_limit = SpendingLimit(
        scope=LimitScope.COST_CENTRE,
        subject="cc-7",
        amount=Decimal("5000.00"),
        currency="EUR",
        period=Period.WEEKLY,
    )
    limits = {**buyer_limit("10.00"), cc_key: cc_limit}
    condition = RuleCondition(cost_centre_over_budget=True)
    under = some_facts(total="100.00", cost_centre="cc-7", spent={cc_key: Decimal("4900.00")})
    over = some_facts(total="100.01", cost_centre="cc-7", spent={cc_key: Decimal("4900.00")})
    assert rule_applies(condition, under, limits) is None
    assert rule_applies(condition, over, limits) == (
        "cost centre cc-7 would spend 5000.01 EUR this week, over the limit of 5000.00"
    )


def test_every_criterion_of_a_condition_must_hold() -> None:
    condition = RuleCondition(
        total_at_least={"EUR": Decimal("1000.00")},
        categories=["machines"],
        credit_limit_override=True,
    )
    all_hold = some_facts(categories=["machines/lathes"], credit_limit_override=True)
    assert rule_applies(condition, all_hold, {}) == (
        "total 5000.00 EUR is at or above 1000.00; lines in category machines/lathes; "
        "pricing flagged a credit-limit override"
    )
    assert rule_applies(condition, some_facts(credit_limit_override=True), {}) is None
    assert rule_applies(condition, some_facts(categories=["machines"]), {}) is None
    small = some_facts(total="10.00", categories=["machines"], credit_limit_override=True)
    assert rule_applies(condition, small, {}) is None


# --- policy: the plan and the merge rule -------------------------------------------------------


def test_a_plan_lists_the_matching_rules_in_policy_order() -> None:
    policy = a_policy(
        a_rule("small", a_step("manager", MANAGER)),
        a_rule("never", a_step("director", DIRECTOR), when=RuleCondition(categories=["machines"])),
        a_rule(
            "big",
            a_step("finance", FINANCE),
            when=RuleCondition(total_at_least={"EUR": Decimal("1000")}),
            version=3,
        ),
        expires_after=3 * DAY,
        remind_before=DAY,
    )
    plan = plan_approval(policy, some_facts(), {})
    assert [(m.rule_id, m.version) for m in plan.matches] == [("small", 1), ("big", 3)]
    assert [s.step_id for s in plan.steps] == ["manager", "finance"]
    assert plan.needs_approval
    assert plan.policy_version == 4
    assert (plan.expires_after, plan.remind_before) == (3 * DAY, DAY)
    assert plan.summary() == (
        "rule small v1: applies to every order; rule big v3: total 5000.00 EUR is at or above 1000"
    )


def test_a_plan_without_matching_rules_needs_no_approval() -> None:
    policy = a_policy(
        a_rule("big", a_step("manager", MANAGER), when=RuleCondition(credit_limit_override=True))
    )
    plan = plan_approval(policy, some_facts(), {})
    assert plan.matches == ()
    assert plan.steps == ()
    assert not plan.needs_approval
    assert plan.summary() == "no approval rule applies"


def test_a_plan_needs_distinct_signers_if_any_matched_rule_asks() -> None:
    strict = a_rule("strict", a_step("finance", FINANCE), distinct_signers=True)
    loose = a_rule("loose", a_step("manager", MANAGER))
    unmatched_strict = a_rule(
        "unmatched",
        a_step("director", DIRECTOR),
        distinct_signers=True,
        when=RuleCondition(credit_limit_override=True),
    )
    assert plan_approval(a_policy(loose, strict), some_facts(), {}).distinct_signers
    assert not plan_approval(a_policy(loose, unmatched_strict), some_facts(), {}).distinct_signers


def test_a_sequential_rule_puts_each_step_after_all_earlier_ones() -> None:
    rule = a_rule("r", a_step("m", MANAGER), a_step("f", FINANCE), a_step("d", DIRECTOR), order=SEQ)
    assert [(s.step_id, s.after) for s in merge_steps([rule])] == [
        ("m", frozenset()),
        ("f", frozenset({"m"})),
        ("d", frozenset({"m", "f"})),
    ]


def test_a_parallel_rule_opens_every_step_at_once() -> None:
    rule = a_rule("r", a_step("m", MANAGER), a_step("f", FINANCE), order=PAR)
    assert [s.after for s in merge_steps([rule])] == [frozenset(), frozenset()]


def test_rules_asking_the_same_role_share_one_step_with_the_largest_quorum() -> None:
    first = a_rule("a", a_step("managers", MANAGER, quorum=1), a_step("finance", FINANCE))
    second = a_rule("b", a_step("two-managers", MANAGER, quorum=2), order=PAR)
    third = a_rule("c", a_step("any-manager", MANAGER, quorum=1), order=PAR)
    steps = merge_steps([first, second, third])
    assert [(s.step_id, s.role, s.quorum) for s in steps] == [
        ("managers", MANAGER, 2),
        ("finance", FINANCE, 1),
    ]


def test_a_shared_step_escalates_at_the_earliest_delay_asked() -> None:
    late = a_rule("late", a_step("m", MANAGER, escalate_after=8 * HOUR, escalation_role=DIRECTOR))
    none = a_rule("none", a_step("m2", MANAGER))
    early = a_rule("early", a_step("m3", MANAGER, escalate_after=2 * HOUR, escalation_role=FINANCE))
    (step,) = merge_steps([none, late, early])
    assert (step.step_id, step.escalate_after, step.escalation_role) == ("m2", 2 * HOUR, FINANCE)
    (step,) = merge_steps([early, late])
    assert (step.escalate_after, step.escalation_role) == (2 * HOUR, FINANCE)
    (step,) = merge_steps([late, none])
    assert (step.escalate_after, step.escalation_role) == (8 * HOUR, DIRECTOR)


def test_an_order_that_would_form_a_cycle_is_dropped_and_the_earlier_rule_wins() -> None:
    manager_first = a_rule("a", a_step("m", MANAGER), a_step("f", FINANCE))
    finance_first = a_rule("b", a_step("f", FINANCE), a_step("m", MANAGER))
    steps = {s.role: s.after for s in merge_steps([manager_first, finance_first])}
    assert steps == {MANAGER: frozenset(), FINANCE: frozenset({"m"})}
    steps = {s.role: s.after for s in merge_steps([finance_first, manager_first])}
    assert steps == {MANAGER: frozenset({"f"}), FINANCE: frozenset()}


def test_a_cycle_through_three_rules_is_broken_at_the_latest_rule() -> None:
    m_f = a_rule("a", a_step("m", MANAGER), a_step("f", FINANCE))
    f_d = a_rule("b", a_step("f", FINANCE), a_step("d", DIRECTOR))
    d_m = a_rule("c", a_step("d", DIRECTOR), a_step("m", MANAGER))
    steps = {s.role: s.after for s in merge_steps([m_f, f_d, d_m])}
    assert steps == {
        MANAGER: frozenset(),
        FINANCE: frozenset({"m"}),
        DIRECTOR: frozenset({"m", "f"}),
    }


def test_a_sequential_rule_after_a_parallel_one_orders_the_shared_steps() -> None:
    parallel = a_rule("a", a_step("m", MANAGER), a_step("f", FINANCE), order=PAR)
    finance_first = a_rule("b", a_step("f", FINANCE), a_step("m", MANAGER))
    steps = {s.role: s.after for s in merge_steps([parallel, finance_first])}
    assert steps == {MANAGER: frozenset({"f"}), FINANCE: frozenset()}


def test_two_roles_under_one_step_id_get_the_role_appended() -> None:
    first = a_rule("a", a_step("sign", MANAGER))
    second = a_rule("b", a_step("sign", FINANCE), a_step("check", DIRECTOR))
    steps = merge_steps([first, second])
    assert [(s.step_id, s.after) for s in steps] == [
        ("sign", frozenset()),
        ("sign-finance", frozenset()),
        ("check", frozenset({"sign-finance"})),
    ]


def test_merged_step_ids_are_unique_even_when_a_rule_already_uses_the_suffixed_name() -> None:
    """BUG: `_unique_step_ids` appends the role to a taken id without checking that the new id
    is free. A director step named 'a-finance', a manager step 'a' and a finance step 'a' give
    two steps called 'a-finance'; a step waiting for finance then opens as soon as the
    director signs (see the next test)."""
    director = a_rule("r1", a_step("a-finance", DIRECTOR))
    manager = a_rule("r2", a_step("a", MANAGER))
    finance = a_rule("r3", a_step("a", FINANCE))
    ids = [s.step_id for s in merge_steps([director, manager, finance])]
    assert len(ids) == len(set(ids)), f"duplicate step ids: {ids}"


def test_a_step_after_finance_stays_waiting_when_a_step_of_another_role_is_signed() -> None:
    """BUG (consequence of the duplicate ids above): the manager step must wait for finance,
    but opens when the director step that shares finance's merged id is satisfied."""
    director = a_rule("r1", a_step("a-finance", DIRECTOR), order=PAR)
    named_a = a_rule("r2", a_step("a", MANAGER), order=PAR)
    finance_then_manager = a_rule("r3", a_step("a", FINANCE), a_step("m", MANAGER))
    request = open_request(plan_of(director, named_a, finance_then_manager))
    assert approve(request, DORA).kind is Outcome.COUNTED
    finance = next(s for s in request.steps if s.role is FINANCE)
    manager = next(s for s in request.steps if s.role is MANAGER)
    assert not finance.satisfied
    assert request.step_state(manager) == "waiting", "manager step opened before finance signed"


# --- policy: accounts without a policy, B2B or not, the facts ----------------------------------


def test_an_account_without_threshold_has_no_fallback_policy() -> None:
    assert fallback_policy(an_account()) is None


def test_the_fallback_policy_asks_a_manager_and_finance_in_parallel_above_the_threshold() -> None:
    account = an_account(currency="CHF", approval_threshold=Decimal("1000.00"))
    policy = fallback_policy(account)
    assert policy is not None
    assert (policy.account_id, policy.version, policy.expires_after) == ("acme", 1, FALLBACK_EXPIRY)
    (rule,) = policy.rules
    assert rule.rule_id == FALLBACK_RULE_ID
    assert rule.order is PAR
    assert rule.when == RuleCondition(total_at_least={"CHF": Decimal("1000.00")})
    assert [(s.step_id, s.role, s.quorum) for s in rule.steps] == [
        ("manager", MANAGER, 1),
        ("finance", FINANCE, 1),
    ]
    below = plan_approval(policy, some_facts(total="999.99", currency="CHF"), {})
    at = plan_approval(policy, some_facts(total="1000.00", currency="CHF"), {})
    assert not below.needs_approval
    assert [(s.step_id, s.after) for s in at.steps] == [
        ("manager", frozenset()),
        ("finance", frozenset()),
    ]


def an_order(channel: Channel, cost_centre: str | None = None, terms: str = "NET60") -> Order:
    return Order.model_validate(
        {
            "order_id": "web-000123",
            "shop_id": "web",
            "channel": channel,
            "account_id": "acme",
            "buyer_id": BEA,
            "currency": "EUR",
            "cost_centre": cost_centre,
            "lines": [{"sku": "LATHE-1", "quantity": 1}, {"sku": "BOLT-M8-100", "quantity": 40}],
            "payment": {"method": "invoice", "terms": terms},
            "delivery": {
                "address": {
                    "country": "DE",
                    "postal_code": "10115",
                    "city": "Berlin",
                    "line1": "Invalidenstr. 1",
                }
            },
        }
    )


@pytest.mark.parametrize(
    ("order_channel", "account_channel", "business"),
    [
        (Channel.B2B, Channel.B2B, True),
        (Channel.B2C, Channel.B2B, True),
        (Channel.B2B, Channel.B2C, True),
        (Channel.B2C, Channel.B2C, False),
    ],
)
def test_an_order_is_business_if_the_order_or_its_account_says_so(
    order_channel: Channel, account_channel: Channel, business: bool
) -> None:
    account = an_account(channel=account_channel)
    assert is_business_order(an_order(order_channel), account) is business


def test_a_consumer_order_of_an_unknown_account_is_not_business() -> None:
    assert is_business_order(an_order(Channel.B2C), None) is False


def test_a_business_order_of_an_unknown_account_is_rejected() -> None:
    with pytest.raises(Rejected) as error:
        is_business_order(an_order(Channel.B2B), None)
    assert error.value.reason.code is ReasonCode.UNKNOWN_ACCOUNT
    assert "'acme'" in error.value.reason.message


def test_order_facts_gather_what_the_rules_look_at() -> None:
    def line(sku: str, category: str, total: str) -> PricedLine:
        return PricedLine(
            sku=sku,
            quantity=1,
            warehouse_id="wh-1",
            category=category,
            unit_weight_kg=Decimal("1.0"),
            unit_price=Decimal(total),
            currency="EUR",
            line_total=Decimal(total),
            price_source="list:list-EUR",
        )

    lines = [
        line("LATHE-1", "machines/lathes", "4000.00"),
        line("BOLT-M8-100", "fasteners", "500.00"),
        line("BOLT-M8-200", "fasteners", "500.00"),
    ]
    totals = Totals(currency="EUR", subtotal=Decimal("5000.00"), total=Decimal("5950.00"))
    account = an_account(payment_terms=["NET30", "NET60"])
    key = LimitKey(LimitScope.BUYER, BEA, Period.MONTHLY, "EUR")
    spent = {key: Decimal("120.00")}
    facts = order_facts(
        an_order(Channel.B2B, cost_centre="cc-7"),
        lines,
        totals,
        account,
        credit_limit_override=True,
        spent=spent,
    )
    assert facts == OrderFacts(
        currency="EUR",
        total=Decimal("5950.00"),
        categories=frozenset({"machines/lathes", "fasteners"}),
        buyer_id=BEA,
        cost_centre="cc-7",
        payment_terms="NET60",
        default_payment_terms="NET30",
        credit_limit_override=True,
        spent=spent,
    )
    spent[key] = Decimal("0")
    assert facts.spent[key] == Decimal("120.00"), "facts keep their own copy of the spend"


def test_order_facts_default_to_no_override_and_no_spend() -> None:
    totals = Totals(currency="EUR", subtotal=Decimal("1.00"), total=Decimal("1.00"))
    facts = order_facts(an_order(Channel.B2B), [], totals, an_account())
    assert (facts.credit_limit_override, dict(facts.spent), facts.cost_centre) == (
        False,
        {},
        None,
    )
    assert facts.default_payment_terms is None


# --- the request: opening and the order of steps -----------------------------------------------


def test_a_request_opens_with_a_snapshot_deadline_and_reminder() -> None:
    request = manager_then_finance(expires_after=2 * DAY, remind_before=6 * HOUR)
    assert request.state is RequestState.OPEN and request.is_open
    assert (request.opened_at, request.deadline) == (T0, T0 + 2 * DAY)
    assert request.remind_at == T0 + 2 * DAY - 6 * HOUR
    assert request.policy_version == 4
    assert [m.rule_id for m in request.matches] == ["big"]
    assert request.members == MEMBERS and request.members is not MEMBERS
    assert [request.step_state(s) for s in request.steps] == ["open", "waiting"]
    assert request.closed_at is None


def test_a_request_without_reminder_has_no_remind_time() -> None:
    assert manager_then_finance().remind_at is None


def test_sequential_finance_is_refused_until_the_manager_has_signed() -> None:
    request = manager_then_finance()
    refused = approve(request, FIONA)
    assert refused.kind is Outcome.REFUSED_NOT_OPEN_YET
    assert refused.refused and not refused.counted
    assert refused.why == "step finance is not open yet: it waits for manager"
    assert signed(request, "finance") == []

    counted = approve(request, MAX, at=T0 + HOUR)
    assert (counted.kind, counted.step_id, counted.role) == (Outcome.COUNTED, "manager", MANAGER)
    assert counted.why == "max signed as manager; step manager: 1 of 1"
    assert request.steps[1].opened_at == T0 + HOUR

    done = approve(request, FIONA, at=T0 + 2 * HOUR)
    assert (done.kind, done.step_id) == (Outcome.APPROVED, "finance")
    assert done.why == "fiona signed as finance; step finance: 1 of 1; every step is satisfied"
    assert request.state is RequestState.APPROVED
    assert request.closed_at == T0 + 2 * HOUR


def test_parallel_steps_are_all_open_from_the_start() -> None:
    rule = a_rule("r", a_step("manager", MANAGER), a_step("finance", FINANCE), order=PAR)
    request = open_request(plan_of(rule))
    assert [request.step_state(s) for s in request.steps] == ["open", "open"]
    assert approve(request, FIONA).kind is Outcome.COUNTED
    assert approve(request, MAX).kind is Outcome.APPROVED
    assert request.state is RequestState.APPROVED


def test_two_of_three_managers_make_a_quorum() -> None:
    request = open_request(plan_of(a_rule("r", a_step("managers", MANAGER, quorum=2))))
    first = approve(request, MAX)
    assert (first.kind, first.why) == (
        Outcome.COUNTED,
        "max signed as manager; step managers: 1 of 2",
    )
    assert request.is_open
    assert request.eligible(request.steps[0], T0, EVERYONE) == [MIA, MO]
    assert approve(request, MIA).kind is Outcome.APPROVED
    assert signed(request, "managers") == [(MAX, MAX), (MIA, MIA)]


def test_the_same_person_twice_counts_once() -> None:
    request = open_request(plan_of(a_rule("r", a_step("managers", MANAGER, quorum=2))))
    approve(request, MAX)
    again = approve(request, MAX, at=T0 + HOUR)
    assert again.kind is Outcome.ALREADY_COUNTED
    assert not again.refused and not again.counted
    assert signed(request, "managers") == [(MAX, MAX)]
    assert request.is_open


def test_a_second_approval_after_the_step_is_satisfied_is_refused() -> None:
    request = manager_then_finance()
    approve(request, MAX)
    late = approve(request, MIA)
    assert late.kind is Outcome.REFUSED_STEP_SATISFIED
    assert late.why == "the steps mia may sign are satisfied already; the request waits for finance"
    assert signed(request, "manager") == [(MAX, MAX)]


def test_one_decision_counts_towards_the_first_open_step_only() -> None:
    """Mona holds manager and finance: one approval signs the first step in the policy's order,
    the second approval signs the other step (no distinct_signers)."""
    members = {**MEMBERS, "mona": frozenset({MANAGER, FINANCE})}
    account = AccountNow(members=frozenset(members))
    rule = a_rule("r", a_step("finance", FINANCE), a_step("manager", MANAGER), order=PAR)
    request = open_request(plan_of(rule), members)
    first = approve(request, "mona", account=account)
    assert (first.kind, first.step_id, first.role) == (Outcome.COUNTED, "finance", FINANCE)
    assert signed(request, "manager") == []
    second = approve(request, "mona", account=account)
    assert (second.kind, second.step_id, second.role) == (Outcome.APPROVED, "manager", MANAGER)


def test_distinct_signers_refuses_a_second_step_by_the_same_person() -> None:
    members = {**MEMBERS, "mona": frozenset({MANAGER, FINANCE})}
    account = AccountNow(members=frozenset(members))
    rule = a_rule(
        "r",
        a_step("manager", MANAGER),
        a_step("finance", FINANCE),
        order=PAR,
        distinct_signers=True,
    )
    request = open_request(plan_of(rule), members)
    assert approve(request, "mona", account=account).step_id == "manager"
    second = approve(request, "mona", account=account)
    assert second.kind is Outcome.REFUSED_SIGNED_OTHER_STEP
    assert second.refused
    assert signed(request, "finance") == []
    assert request.steps_for("mona", T0, account) == []
    assert request.eligible(request.steps[1], T0, account) == [FIONA, FRED]
    assert approve(request, FIONA, account=account).kind is Outcome.APPROVED


def test_distinct_signers_also_binds_the_delegate_of_a_signer() -> None:
    """Max signed the manager step; acting for Fiona he would sign finance too."""
    rule = a_rule(
        "r", a_step("manager", MANAGER), a_step("finance", FINANCE), distinct_signers=True
    )
    request = open_request(plan_of(rule))
    approve(request, MAX)
    account = away(FIONA, MAX, T0, T0 + DAY)
    assert approve(request, MAX, T0 + HOUR, account).kind is Outcome.REFUSED_SIGNED_OTHER_STEP
    assert signed(request, "finance") == []


# --- the request: vetoes, the buyer, membership ------------------------------------------------


def test_an_eligible_approvers_reject_vetoes_the_request() -> None:
    request = manager_then_finance()
    approve(request, MAX)
    veto = reject(request, FIONA, at=T0 + HOUR)
    assert (veto.kind, veto.role, veto.on_behalf_of) == (Outcome.REJECTED, FINANCE, None)
    assert veto.counted and not veto.refused
    assert veto.why == "fiona (finance) rejected the order"
    assert request.state is RequestState.REJECTED
    assert request.closed_at == T0 + HOUR


@pytest.mark.parametrize(
    ("actor", "kind"),
    [
        (DAN, Outcome.REFUSED_NOT_ELIGIBLE),
        (DORA, Outcome.REFUSED_NOT_ELIGIBLE),
        (OLGA, Outcome.REFUSED_NOT_MEMBER),
        (BEA, Outcome.REFUSED_BUYER),
    ],
)
def test_a_reject_by_someone_not_eligible_is_refused_and_changes_nothing(
    actor: str, kind: Outcome
) -> None:
    request = manager_then_finance()
    before = ROUND_TRIP.dump_json(request)
    outcome = reject(request, actor)
    assert outcome.kind is kind
    assert outcome.refused
    assert request.state is RequestState.OPEN
    assert ROUND_TRIP.dump_json(request) == before


def test_refusal_explains_which_roles_the_request_needs() -> None:
    refused = approve(manager_then_finance(), DORA)
    assert refused.kind is Outcome.REFUSED_NOT_ELIGIBLE
    assert refused.why == (
        "dora holds none of this request's roles (finance, manager), in their own name or "
        "as a delegate"
    )


def test_the_buyer_may_not_approve_her_own_order_despite_her_manager_role() -> None:
    request = manager_then_finance()
    refused = approve(request, BEA)
    assert refused.kind is Outcome.REFUSED_BUYER
    assert refused.why == "bea placed this order and cannot approve it"
    assert request.steps_for(BEA, T0, EVERYONE) == []
    assert BEA not in request.eligible(request.steps[0], T0, EVERYONE)
    assert request.refusal(BEA, T0, EVERYONE) == refused


def test_a_delegate_gains_nothing_by_acting_for_the_buyer() -> None:
    """Bea (buyer, manager) delegates to Dan (no approver role): Dan may not sign as manager."""
    request = manager_then_finance()
    account = away(BEA, DAN, T0 - DAY, T0 + DAY)
    assert [c.principal for c in request.capacities(DAN, T0, account)] == [DAN]
    assert approve(request, DAN, account=account).kind is Outcome.REFUSED_NOT_ELIGIBLE
    assert reject(request, DAN, account=account).kind is Outcome.REFUSED_NOT_ELIGIBLE
    assert request.is_open
    assert signed(request, "manager") == []


def test_a_delegate_of_the_buyer_signs_only_in_his_own_name() -> None:
    request = manager_then_finance()
    account = away(BEA, MAX, T0 - DAY, T0 + DAY)
    outcome = approve(request, MAX, account=account)
    assert (outcome.kind, outcome.on_behalf_of) == (Outcome.COUNTED, None)
    assert signed(request, "manager") == [(MAX, MAX)]


def test_the_buyer_may_not_act_as_somebody_elses_delegate() -> None:
    request = manager_then_finance()
    account = away(MAX, BEA, T0 - DAY, T0 + DAY)
    assert approve(request, BEA, account=account).kind is Outcome.REFUSED_BUYER


def test_a_member_removed_since_the_request_opened_may_not_decide() -> None:
    request = manager_then_finance()
    without_max = AccountNow(members=frozenset(MEMBERS) - {MAX})
    outcome = approve(request, MAX, account=without_max)
    assert outcome.kind is Outcome.REFUSED_NOT_MEMBER
    assert outcome.why == "max is not a member of account acme (any more)"
    assert reject(request, MAX, account=without_max).kind is Outcome.REFUSED_NOT_MEMBER
    assert MAX not in request.eligible(request.steps[0], T0, without_max)
    assert request.is_open


def test_a_member_added_since_the_request_opened_has_no_role_in_it() -> None:
    request = manager_then_finance()
    with_newcomer = AccountNow(members=frozenset(MEMBERS) | {"nina"})
    assert approve(request, "nina", account=with_newcomer).kind is Outcome.REFUSED_NOT_ELIGIBLE


def test_the_request_keeps_the_roles_it_opened_with() -> None:
    """A role granted after opening does not count: the request decides on its snapshot."""
    snapshot = dict(MEMBERS)
    request = open_request(plan_of(a_rule("r", a_step("manager", MANAGER))), snapshot)
    snapshot[DAN] = frozenset({MANAGER})
    assert request.members[DAN] == frozenset({BUYER_ROLE})
    assert approve(request, DAN).kind is Outcome.REFUSED_NOT_ELIGIBLE


def test_an_outsider_is_refused_as_not_a_member() -> None:
    assert approve(manager_then_finance(), OLGA).kind is Outcome.REFUSED_NOT_MEMBER


# --- the request: delegation -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "usable"),
    [
        (T0 - TICK, False),
        (T0, True),
        (T0 + 12 * HOUR, True),
        (T0 + DAY - TICK, True),
        (T0 + DAY, False),
    ],
)
def test_a_delegation_is_usable_only_inside_its_window(at: datetime, usable: bool) -> None:
    request = manager_then_finance(expires_after=3 * DAY)
    account = away(MAX, DAN, T0, T0 + DAY)
    outcome = approve(request, DAN, at=at, account=account)
    if usable:
        assert (outcome.kind, outcome.on_behalf_of, outcome.role) == (
            Outcome.COUNTED,
            MAX,
            MANAGER,
        )
        assert outcome.why == "dan for max signed as manager; step manager: 1 of 1"
        assert signed(request, "manager") == [(MAX, DAN)]
    else:
        assert outcome.kind is Outcome.REFUSED_NOT_ELIGIBLE
        assert signed(request, "manager") == []


def test_a_delegated_signature_keeps_the_actor_and_the_principal_for_the_audit() -> None:
    request = manager_then_finance()
    account = away(MAX, DAN, T0, T0 + DAY)
    approve(request, DAN, at=T0 + HOUR, account=account)
    signature = request.steps[0].signatures[0]
    assert (signature.principal, signature.actor, signature.role, signature.at) == (
        MAX,
        DAN,
        MANAGER,
        T0 + HOUR,
    )
    assert request.signers() == [MAX]
    progress = request.progress(T0 + HOUR, account)
    assert progress.approved_by == [MAX]
    (sig,) = progress.steps[0].signed_by
    assert (sig.approver_id, sig.on_behalf_of, sig.at) == (DAN, MAX, T0 + HOUR)


def test_a_delegates_reject_names_the_principal() -> None:
    request = manager_then_finance()
    account = away(FIONA, DAN, T0, T0 + DAY)
    veto = reject(request, DAN, account=account)
    assert (veto.kind, veto.role, veto.on_behalf_of) == (Outcome.REJECTED, FINANCE, FIONA)
    assert veto.why == "dan for fiona (finance) rejected the order"


def test_a_delegate_signs_in_own_name_first() -> None:
    """Mia (manager) stands in for Max (manager): her first approval counts as her own."""
    request = open_request(plan_of(a_rule("r", a_step("managers", MANAGER, quorum=2))))
    account = away(MAX, MIA, T0, T0 + DAY)
    assert [c.principal for c in request.capacities(MIA, T0, account)] == [MIA, MAX]
    assert approve(request, MIA, account=account).on_behalf_of is None
    again = approve(request, MIA, account=account)
    assert again.kind is Outcome.ALREADY_COUNTED, "a person signs a step at most once"
    assert signed(request, "managers") == [(MIA, MIA)]


def test_a_principal_who_signed_through_a_delegate_does_not_sign_again() -> None:
    request = open_request(plan_of(a_rule("r", a_step("managers", MANAGER, quorum=2))))
    account = away(MAX, DAN, T0, T0 + DAY)
    approve(request, DAN, account=account)
    assert approve(request, MAX, account=account).kind is Outcome.ALREADY_COUNTED
    assert signed(request, "managers") == [(MAX, DAN)]


def test_a_delegate_may_not_sign_twice_through_two_principals() -> None:
    request = open_request(plan_of(a_rule("r", a_step("managers", MANAGER, quorum=3))))
    account = AccountNow(
        members=frozenset(MEMBERS),
        delegations=(
            DelegationWindow(MAX, DAN, T0, T0 + DAY),
            DelegationWindow(MIA, DAN, T0, T0 + DAY),
        ),
    )
    assert approve(request, DAN, account=account).on_behalf_of == MAX
    assert approve(request, DAN, account=account).kind is Outcome.ALREADY_COUNTED
    assert signed(request, "managers") == [(MAX, DAN)]


def test_a_delegation_from_a_removed_member_is_not_usable() -> None:
    request = manager_then_finance()
    account = AccountNow(
        members=frozenset(MEMBERS) - {MAX},
        delegations=(DelegationWindow(MAX, DAN, T0, T0 + DAY),),
    )
    assert account.delegators_of(DAN, T0) == []
    assert approve(request, DAN, account=account).kind is Outcome.REFUSED_NOT_ELIGIBLE


def test_a_removed_delegate_may_not_act() -> None:
    account = AccountNow(
        members=frozenset(MEMBERS) - {DAN},
        delegations=(DelegationWindow(MAX, DAN, T0, T0 + DAY),),
    )
    assert account.delegators_of(DAN, T0) == []
    assert approve(manager_then_finance(), DAN, account=account).kind is Outcome.REFUSED_NOT_MEMBER


def test_delegators_are_listed_sorted_and_only_while_active() -> None:
    account = AccountNow(
        members=frozenset(MEMBERS),
        delegations=(
            DelegationWindow(MO, DAN, T0, T0 + DAY),
            DelegationWindow(MAX, DAN, T0, T0 + DAY),
            DelegationWindow(FIONA, DAN, T0 + DAY, T0 + 2 * DAY),
            DelegationWindow(MIA, DORA, T0, T0 + DAY),
        ),
    )
    assert account.delegators_of(DAN, T0) == [MAX, MO]
    assert account.delegators_of(DAN, T0 + DAY) == [FIONA]
    assert account.delegators_of(OLGA, T0) == []


def test_a_delegate_appears_among_the_eligible_while_the_window_is_open() -> None:
    request = manager_then_finance()
    account = away(FIONA, DAN, T0 + HOUR, T0 + DAY)
    approve(request, MAX)
    finance = request.steps[1]
    assert request.eligible(finance, T0, account) == [FIONA, FRED]
    assert request.eligible(finance, T0 + HOUR, account) == [DAN, FIONA, FRED]
    assert request.steps_for(DAN, T0 + HOUR, account) == ["finance"]
    assert request.steps_for(DAN, T0, account) == []


# --- the request: the clock --------------------------------------------------------------------


def escalating(**plan_options: Any) -> ApprovalRequest:
    rule = a_rule(
        "r",
        a_step("manager", MANAGER, escalate_after=4 * HOUR, escalation_role=DIRECTOR),
        a_step("finance", FINANCE),
    )
    return open_request(plan_of(rule, **plan_options))


def test_the_escalation_role_may_sign_only_once_the_step_has_escalated() -> None:
    request = escalating()
    assert request.next_due() == T0 + 4 * HOUR
    assert request.steps[0].escalates_at == T0 + 4 * HOUR
    assert request.tick(T0 + 4 * HOUR - TICK, EVERYONE) == []
    assert approve(request, DORA, at=T0 + 4 * HOUR - TICK).kind is Outcome.REFUSED_NOT_ELIGIBLE

    events = request.tick(T0 + 4 * HOUR, EVERYONE)
    assert events == [
        TimerEvent(
            Tick.ESCALATION,
            "step manager escalated to director after 4:00:00",
            (DORA, MAX, MIA, MO),
            "manager",
        )
    ]
    step = request.steps[0]
    assert step.escalated and step.escalates_at is None
    assert step.roles == frozenset({MANAGER, DIRECTOR})
    assert request.tick(T0 + 5 * HOUR, EVERYONE) == [], "an escalation happens once"
    assert request.next_due() == request.deadline

    outcome = approve(request, DORA, at=T0 + 5 * HOUR)
    assert (outcome.kind, outcome.step_id, outcome.role) == (Outcome.COUNTED, "manager", DIRECTOR)


def test_an_escalated_director_may_veto() -> None:
    request = escalating()
    assert reject(request, DORA, at=T0 + HOUR).kind is Outcome.REFUSED_NOT_ELIGIBLE
    request.tick(T0 + 4 * HOUR, EVERYONE)
    assert reject(request, DORA, at=T0 + 4 * HOUR).kind is Outcome.REJECTED


def test_escalation_counts_from_when_the_step_opens() -> None:
    rule = a_rule(
        "r",
        a_step("manager", MANAGER),
        a_step("finance", FINANCE, escalate_after=2 * HOUR, escalation_role=DIRECTOR),
    )
    request = open_request(plan_of(rule))
    assert request.steps[1].escalates_at is None, "a waiting step does not escalate"
    assert request.tick(T0 + 3 * HOUR, EVERYONE) == []
    approve(request, MAX, at=T0 + 10 * HOUR)
    assert request.steps[1].escalates_at == T0 + 12 * HOUR
    assert request.next_due() == T0 + 12 * HOUR
    assert request.tick(T0 + 12 * HOUR - TICK, EVERYONE) == []
    (event,) = request.tick(T0 + 12 * HOUR, EVERYONE)
    assert (event.kind, event.step_id, event.recipients) == (
        Tick.ESCALATION,
        "finance",
        (DORA, FIONA, FRED),
    )


def test_a_satisfied_step_does_not_escalate() -> None:
    request = escalating()
    approve(request, MAX, at=T0 + HOUR)
    assert request.steps[0].escalates_at is None
    assert request.tick(T0 + 5 * HOUR, EVERYONE) == []
    assert not request.steps[0].escalated


def test_the_reminder_goes_out_once_to_everyone_who_could_decide() -> None:
    request = manager_then_finance(expires_after=2 * DAY, remind_before=DAY)
    assert request.next_due() == T0 + DAY
    assert request.tick(T0 + DAY - TICK, EVERYONE) == []
    events = request.tick(T0 + DAY, EVERYONE)
    assert events == [
        TimerEvent(Tick.REMINDER, f"expires at {(T0 + 2 * DAY).isoformat()}", (MAX, MIA, MO))
    ]
    assert request.reminded
    assert request.tick(T0 + DAY + HOUR, EVERYONE) == [], "a reminder goes out once"
    assert request.next_due() == T0 + 2 * DAY


def test_one_late_tick_escalates_and_reminds_together() -> None:
    request = escalating(expires_after=2 * DAY, remind_before=DAY)
    events = request.tick(T0 + 2 * DAY - HOUR, EVERYONE)
    assert [e.kind for e in events] == [Tick.ESCALATION, Tick.REMINDER]
    assert events[1].recipients == (DORA, MAX, MIA, MO)
    assert request.tick(T0 + 2 * DAY - HOUR, EVERYONE) == []


def test_a_request_expires_at_its_deadline_and_once_only() -> None:
    request = manager_then_finance(expires_after=2 * DAY)
    approve(request, MAX, at=T0 + HOUR)
    assert request.tick(T0 + 2 * DAY - TICK, EVERYONE) == []
    assert request.is_open
    events = request.tick(T0 + 2 * DAY, EVERYONE)
    assert events == [TimerEvent(Tick.EXPIRY, f"not decided by {(T0 + 2 * DAY).isoformat()}")]
    assert request.state is RequestState.EXPIRED
    assert request.closed_at == T0 + 2 * DAY
    assert request.tick(T0 + 2 * DAY, EVERYONE) == []
    assert request.tick(T0 + 9 * DAY, EVERYONE) == []
    assert request.closed_at == T0 + 2 * DAY
    assert request.next_due() is None
    reason = expiry_reason(request)
    assert reason.code is ReasonCode.APPROVAL_EXPIRED
    assert reason.message == (
        f"approval not complete by {(T0 + 2 * DAY).isoformat()}; steps still waiting: finance"
    )


def test_a_late_first_tick_expires_without_reminding_or_escalating() -> None:
    request = escalating(expires_after=2 * DAY, remind_before=DAY)
    (event,) = request.tick(T0 + 3 * DAY, EVERYONE)
    assert event.kind is Tick.EXPIRY
    assert not request.reminded and not request.steps[0].escalated


def test_next_due_is_the_earliest_of_reminder_escalation_and_deadline() -> None:
    assert manager_then_finance(expires_after=2 * DAY).next_due() == T0 + 2 * DAY
    assert escalating(expires_after=2 * DAY, remind_before=DAY).next_due() == T0 + 4 * HOUR
    assert escalating(expires_after=2 * DAY, remind_before=47 * HOUR).next_due() == T0 + HOUR


@pytest.mark.parametrize(
    ("close", "state"),
    [
        ("approve", RequestState.APPROVED),
        ("reject", RequestState.REJECTED),
        ("expire", RequestState.EXPIRED),
        ("withdraw", RequestState.WITHDRAWN),
    ],
)
def test_a_closed_request_refuses_every_decision_and_timer(close: str, state: RequestState) -> None:
    request = escalating(expires_after=2 * DAY, remind_before=DAY)
    if close == "approve":
        approve(request, MAX)
        approve(request, FIONA)
    elif close == "reject":
        reject(request, FIONA)
    elif close == "expire":
        request.tick(T0 + 2 * DAY, EVERYONE)
    else:
        assert request.withdraw(T0)
    assert request.state is state
    frozen = ROUND_TRIP.dump_json(request)
    for actor in (MAX, MIA, FIONA, FRED, DORA, BEA, OLGA):
        for decision in (APPROVE, REJECT):
            outcome = request.decide(actor, decision, T0 + HOUR, EVERYONE)
            assert outcome.kind is Outcome.REFUSED_CLOSED
            assert outcome.why == f"the approval request is {state.value} already"
    assert request.tick(T0 + 10 * DAY, EVERYONE) == []
    assert request.withdraw(T0 + HOUR) is False
    assert request.next_due() is None
    assert request.waiting_on(T0, EVERYONE) == []
    assert request.steps_for(MIA, T0, EVERYONE) == []
    assert ROUND_TRIP.dump_json(request) == frozen


def test_withdraw_closes_an_open_request_once() -> None:
    request = manager_then_finance()
    assert request.withdraw(T0 + HOUR) is True
    assert (request.state, request.closed_at) == (RequestState.WITHDRAWN, T0 + HOUR)
    assert request.withdraw(T0 + 2 * HOUR) is False
    assert request.closed_at == T0 + HOUR


# --- the request: what shops see ---------------------------------------------------------------


def test_progress_shows_rules_steps_signatures_and_who_may_sign() -> None:
    rule = a_rule(
        "big",
        a_step("managers", MANAGER, quorum=2, escalate_after=4 * HOUR, escalation_role=DIRECTOR),
        a_step("finance", FINANCE),
    )
    request = open_request(plan_of(rule))
    approve(request, MAX, at=T0 + HOUR)
    history = [AuditEntry(at=T0, kind="opened", why="rule big applies")]
    progress = request.progress(T0 + HOUR, EVERYONE, history)
    assert progress.required_approvals == 3
    assert progress.approved_by == [MAX]
    assert progress.eligible_approvers == [MIA, MO]
    assert progress.policy_version == 4
    assert [(r.rule_id, r.version, r.why) for r in progress.rules] == [
        ("big", 1, "applies to every order")
    ]
    assert progress.deadline == T0 + 7 * DAY
    assert progress.history == history
    managers, finance = progress.steps
    assert (managers.step_id, managers.role, managers.quorum, managers.state) == (
        "managers",
        "manager",
        2,
        "open",
    )
    assert (managers.escalation_role, managers.escalates_at, managers.escalated) == (
        "director",
        T0 + 4 * HOUR,
        False,
    )
    assert [(s.approver_id, s.on_behalf_of) for s in managers.signed_by] == [(MAX, None)]
    assert managers.eligible == [MIA, MO]
    assert (finance.state, finance.after, finance.eligible, finance.signed_by) == (
        "waiting",
        ["managers"],
        [],
        [],
    )


def test_progress_of_an_approved_request_lists_each_signer_once_and_nobody_eligible() -> None:
    members = {**MEMBERS, "mona": frozenset({MANAGER, FINANCE})}
    account = AccountNow(members=frozenset(members))
    request = open_request(
        plan_of(a_rule("r", a_step("m", MANAGER), a_step("f", FINANCE))), members
    )
    approve(request, "mona", account=account)
    approve(request, "mona", account=account)
    progress = request.progress(T0, account)
    assert request.state is RequestState.APPROVED
    assert progress.approved_by == ["mona"]
    assert progress.eligible_approvers == []
    assert [s.state for s in progress.steps] == ["satisfied", "satisfied"]


def test_rejection_reason_quotes_the_approver() -> None:
    request = manager_then_finance()
    veto = reject(request, FIONA)
    reason = rejection_reason(veto, FIONA, "over budget")
    assert reason.code is ReasonCode.APPROVAL_REJECTED
    assert reason.message == "rejected by fiona: over budget"
    assert rejection_reason(veto, FIONA, None).message == "rejected by fiona (no comment)"
    assert rejection_reason(veto, FIONA, "").message == "rejected by fiona (no comment)"


def test_rejection_reason_names_the_principal_of_a_delegate() -> None:
    request = manager_then_finance()
    veto = reject(request, DAN, account=away(FIONA, DAN, T0, T0 + DAY))
    assert rejection_reason(veto, DAN, "no").message == "rejected by dan for fiona: no"


def test_expiry_reason_lists_every_unsatisfied_step() -> None:
    request = manager_then_finance(expires_after=DAY)
    request.tick(T0 + DAY, EVERYONE)
    assert expiry_reason(request).message.endswith("steps still waiting: manager, finance")


def test_outcome_kinds_split_into_refusals_and_changes() -> None:
    assert {o for o in Outcome if o.value.startswith("refused_")} == REFUSALS
    assert frozenset({Outcome.COUNTED, Outcome.APPROVED, Outcome.REJECTED}) == CHANGES
    assert Outcome.ALREADY_COUNTED not in REFUSALS | CHANGES
    assert not REFUSALS & CHANGES


# --- the request: serialization ----------------------------------------------------------------


def test_an_open_request_survives_a_json_round_trip() -> None:
    request = escalating(expires_after=2 * DAY, remind_before=DAY)
    account = away(MAX, DAN, T0, T0 + 2 * DAY)
    assert [e.kind for e in request.tick(T0 + DAY, account)] == [Tick.ESCALATION, Tick.REMINDER]
    approve(request, DAN, at=T0 + DAY, account=account)
    assert request.reminded and request.steps[0].escalated
    assert signed(request, "manager") == [(MAX, DAN)]
    copy = reloaded(request)
    assert copy == request
    assert copy.steps[0].escalate_after == 4 * HOUR
    assert copy.members[BEA] == frozenset({BUYER_ROLE, MANAGER})
    assert copy.steps[1].after == frozenset({"manager"})
    assert copy.matches == request.matches
    assert copy.deadline.utcoffset() == timedelta(0)
    assert approve(copy, FIONA, at=T0 + DAY + HOUR) == approve(request, FIONA, T0 + DAY + HOUR)
    assert copy == request


def test_an_escalated_and_a_closed_request_survive_a_json_round_trip() -> None:
    request = escalating()
    request.tick(T0 + 4 * HOUR, EVERYONE)
    escalated = reloaded(request)
    assert escalated == request
    assert escalated.steps[0].roles == frozenset({MANAGER, DIRECTOR})
    assert approve(escalated, DORA, T0 + 5 * HOUR).role is DIRECTOR
    reject(request, MIA, at=T0 + 5 * HOUR)
    closed = reloaded(request)
    assert closed == request
    assert (closed.state, closed.closed_at) == (RequestState.REJECTED, T0 + 5 * HOUR)


def test_a_request_round_trips_through_python_mode_too() -> None:
    request = manager_then_finance()
    approve(request, MAX)
    assert ROUND_TRIP.validate_python(ROUND_TRIP.dump_python(request)) == request
