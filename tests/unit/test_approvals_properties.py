"""Approvals' separation-of-duties rules as properties: random policies, members, delegations
and decision sequences must never let a request break them."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from services.approvals.domain import (
    AccountNow,
    ApprovalRequest,
    DecisionOutcome,
    DelegationWindow,
    Outcome,
    RequestState,
    StepState,
    Tick,
    TimerEvent,
)
from services.approvals.policy import OrderFacts, PlannedStep, merge_steps, plan_approval
from shared.contract import (
    ApprovalDecisionKind,
    ApprovalPolicy,
    ApprovalRule,
    ApprovalStep,
    Role,
    StepOrder,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
APPROVERS = (Role.MANAGER, Role.FINANCE, Role.DIRECTOR)
BUYER = "b0"
OUTSIDER = "x9"
"""Never a member of the account."""
NEWCOMER = "n1"
"""Joined the account after the request opened: a member now, but not in the snapshot."""

PROPERTIES = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# --- random policies ---------------------------------------------------------------------------


@st.composite
def approval_steps(
    draw: st.DrawFn, step_ids: st.SearchStrategy[str] | None = None
) -> list[ApprovalStep]:
    """1 to 3 steps of distinct approver roles; ids by role unless `step_ids` draws them."""
    roles = draw(st.lists(st.sampled_from(APPROVERS), min_size=1, max_size=3, unique=True))
    if step_ids is None:
        ids = [role.value for role in roles]
    else:
        ids = draw(st.lists(step_ids, min_size=len(roles), max_size=len(roles), unique=True))
    steps = []
    for step_id, role in zip(ids, roles, strict=True):
        escalates = draw(st.booleans())
        steps.append(
            ApprovalStep(
                step_id=step_id,
                role=role,
                quorum=draw(st.sampled_from([1, 1, 1, 1, 2, 2, 3])),
                escalate_after=(
                    timedelta(hours=draw(st.integers(min_value=1, max_value=12)))
                    if escalates
                    else None
                ),
                escalation_role=(
                    draw(st.sampled_from([r for r in APPROVERS if r != role]))
                    if escalates
                    else None
                ),
            )
        )
    return steps


@st.composite
def approval_rules(
    draw: st.DrawFn,
    step_ids: st.SearchStrategy[str] | None = None,
    distinct_signers: bool | None = None,
) -> list[ApprovalRule]:
    """1 to 3 unconditional rules, each sequential or parallel."""
    count = draw(st.integers(min_value=1, max_value=3))
    rules = [
        ApprovalRule(
            rule_id=f"r{index}",
            version=1,
            steps=draw(approval_steps(step_ids)),
            order=draw(st.sampled_from(StepOrder)),
            distinct_signers=draw(st.booleans()) if distinct_signers is None else distinct_signers,
        )
        for index in range(count)
    ]
    return rules


# --- random accounts and decision sequences ----------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    policy: ApprovalPolicy
    members: dict[str, frozenset[Role]]
    account: AccountNow
    moves: tuple[tuple[int, str, str], ...]
    """(minutes since the previous move, 'approve' | 'reject' | 'tick', actor)."""


@st.composite
def scenarios(draw: st.DrawFn, distinct_signers: bool | None = None) -> Scenario:
    rules = draw(approval_rules(distinct_signers=distinct_signers))
    expires_hours = draw(st.integers(min_value=6, max_value=96))
    remind_hours = draw(st.none() | st.integers(min_value=1, max_value=expires_hours - 1))
    policy = ApprovalPolicy.new(
        account_id="acme",
        version=1,
        rules=rules,
        expires_after=timedelta(hours=expires_hours),
        remind_before=None if remind_hours is None else timedelta(hours=remind_hours),
    )

    others = [f"p{i}" for i in range(1, draw(st.integers(min_value=3, max_value=6)) + 1)]
    any_roles = st.frozensets(st.sampled_from(list(Role)), min_size=1, max_size=3)
    members = {BUYER: frozenset({Role.BUYER}) | draw(st.frozensets(st.sampled_from(APPROVERS)))}
    members |= {person: draw(any_roles) for person in others}
    removed = draw(st.frozensets(st.sampled_from(others), max_size=1))
    now_members = (frozenset(members) - removed) | {NEWCOMER}

    people = [BUYER, *others, NEWCOMER]
    windows = []
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        delegator = draw(st.sampled_from([*others, BUYER]))
        delegate = draw(st.sampled_from([p for p in people if p != delegator]))
        starts = T0 + timedelta(hours=draw(st.integers(min_value=-4, max_value=24)))
        ends = starts + timedelta(hours=draw(st.integers(min_value=1, max_value=96)))
        windows.append(DelegationWindow(delegator, delegate, starts, ends))

    kinds = ["approve"] * 8 + ["tick"] * 2 + (["reject"] if draw(st.booleans()) else [])
    move = st.tuples(
        st.integers(min_value=0, max_value=120),
        st.sampled_from(kinds),
        st.sampled_from([*others, *others, *others, BUYER, NEWCOMER, OUTSIDER]),
    )
    return Scenario(
        policy=policy,
        members=members,
        account=AccountNow(members=now_members, delegations=tuple(windows)),
        moves=tuple(draw(st.lists(move, min_size=8, max_size=40))),
    )


@dataclass(frozen=True)
class Played:
    kind: str
    actor: str
    at: datetime
    before: ApprovalRequest
    after: ApprovalRequest
    outcome: DecisionOutcome | None
    events: tuple[TimerEvent, ...]


def play(scenario: Scenario) -> tuple[ApprovalRequest, list[Played]]:
    """Open the request at T0 and apply every move, keeping the state before and after each."""
    facts = OrderFacts(
        currency="EUR", total=Decimal("5000.00"), categories=frozenset(), buyer_id=BUYER
    )
    plan = plan_approval(scenario.policy, facts, {})
    request = ApprovalRequest.open(
        order_id="web-1",
        account_id="acme",
        buyer_id=BUYER,
        plan=plan,
        members=scenario.members,
        now=T0,
    )
    now, played = T0, []
    for minutes, kind, actor in scenario.moves:
        now += timedelta(minutes=minutes)
        before = copy.deepcopy(request)
        outcome: DecisionOutcome | None = None
        events: tuple[TimerEvent, ...] = ()
        if kind == "tick":
            events = tuple(request.tick(now, scenario.account))
        else:
            decision = ApprovalDecisionKind(kind)
            outcome = request.decide(actor, decision, now, scenario.account)
        played.append(Played(kind, actor, now, before, copy.deepcopy(request), outcome, events))
    return request, played


def step_by_id(request: ApprovalRequest, step_id: str) -> StepState:
    return next(s for s in request.steps if s.step_id == step_id)


def people_of(step: StepState) -> list[set[str]]:
    return [{sig.principal, sig.actor} for sig in step.signatures]


# --- properties of requests --------------------------------------------------------------------


@PROPERTIES
@given(scenarios())
def test_a_step_counts_each_person_once_and_needs_quorum_distinct_people(
    scenario: Scenario,
) -> None:
    """(a) No person appears in two signatures of one step, as principal or as actor."""
    _, played = play(scenario)
    for move in played:
        for step in move.after.steps:
            everyone = [p for people in people_of(step) for p in people]
            seen: set[str] = set()
            for people in people_of(step):
                assert not people & seen, f"{people & seen} signed step {step.step_id} twice"
                seen |= people
            assert len(step.signatures) <= step.quorum
            principals = {sig.principal for sig in step.signatures}
            assert len(principals) == len(step.signatures)
            if step.satisfied:
                assert len(principals) >= step.quorum
                assert len(set(everyone)) >= step.quorum


@PROPERTIES
@given(scenarios())
def test_the_buyer_never_signs_in_any_name(scenario: Scenario) -> None:
    """(b) The buyer is never a signature's principal nor its actor."""
    request, played = play(scenario)
    for move in played:
        for step in move.after.steps:
            for sig in step.signatures:
                assert BUYER not in (sig.principal, sig.actor)
        if move.actor == BUYER and move.outcome is not None:
            assert move.outcome.kind in (Outcome.REFUSED_BUYER, Outcome.REFUSED_CLOSED)
    assert BUYER not in request.signers()


@PROPERTIES
@given(scenarios())
def test_a_step_is_signed_only_after_the_steps_it_waits_for(scenario: Scenario) -> None:
    """(c) When a signature lands, every step in its `after` set was satisfied already, and the
    decision counted once, on the first open step the actor could sign."""
    request, played = play(scenario)
    for move in played:
        if move.outcome is None or move.outcome.kind not in (Outcome.COUNTED, Outcome.APPROVED):
            continue
        assert move.outcome.step_id is not None
        before = step_by_id(move.before, move.outcome.step_id)
        assert before.opened_at is not None and not before.satisfied
        for waited in before.after:
            assert step_by_id(move.before, waited).satisfied, (
                f"{move.outcome.step_id} signed while {waited} was not satisfied"
            )
        assert move.before.steps_for(move.actor, move.at, scenario.account)[0] == before.step_id
        grown = [
            (old.step_id, new.signatures[len(old.signatures) :])
            for old, new in zip(move.before.steps, move.after.steps, strict=True)
            if len(new.signatures) != len(old.signatures)
        ]
        assert len(grown) == 1, "one decision counts towards exactly one step"
        step_id, (sig,) = grown[0]
        assert step_id == move.outcome.step_id
        assert (sig.actor, sig.at) == (move.actor, move.at)
    for step in request.steps:
        for sig in step.signatures:
            for waited in step.after:
                done = step_by_id(request, waited)
                assert done.satisfied
                assert done.signatures[done.quorum - 1].at <= sig.at


@PROPERTIES
@given(scenarios())
def test_approved_exactly_when_every_step_is_satisfied_and_closed_means_frozen(
    scenario: Scenario,
) -> None:
    """(d) APPROVED iff all steps are satisfied; a closed request never changes again."""
    request, played = play(scenario)
    for move in played:
        after = move.after
        assert (after.state is RequestState.APPROVED) == all(s.satisfied for s in after.steps)
        assert (after.closed_at is None) == after.is_open
        if not move.before.is_open:
            assert after == move.before
            assert move.events == ()
            if move.outcome is not None:
                assert move.outcome.kind is Outcome.REFUSED_CLOSED
            continue
        if after.state is RequestState.REJECTED:
            assert move.outcome is not None and move.outcome.kind is Outcome.REJECTED
            assert after.steps == move.before.steps
        if after.state is RequestState.EXPIRED:
            assert move.kind == "tick" and move.at >= after.deadline
            assert [e.kind for e in move.events] == [Tick.EXPIRY]
        if move.outcome is not None and not move.outcome.counted:
            assert after == move.before, f"{move.outcome.kind} changed the request"
    assert request.state is not RequestState.WITHDRAWN


@PROPERTIES
@given(scenarios(distinct_signers=True))
def test_with_distinct_signers_nobody_signs_two_steps(scenario: Scenario) -> None:
    """(e) With distinct_signers, a person (principal or actor) appears in one step at most."""
    request, played = play(scenario)
    assert request.distinct_signers
    for move in played:
        where: dict[str, str] = {}
        for step in move.after.steps:
            for people in people_of(step):
                for person in people:
                    assert where.setdefault(person, step.step_id) == step.step_id, (
                        f"{person} signed {where[person]} and {step.step_id}"
                    )


@PROPERTIES
@given(scenarios())
def test_every_signature_is_by_someone_entitled_at_the_time(scenario: Scenario) -> None:
    """The principal held the role in the snapshot, the role could sign the step then, the
    actor was still a member, and a stand-in had an active delegation."""
    _, played = play(scenario)
    for move in played:
        if move.outcome is None or move.outcome.step_id is None:
            continue
        before = step_by_id(move.before, move.outcome.step_id)
        sig = step_by_id(move.after, move.outcome.step_id).signatures[-1]
        assert sig.role in before.roles
        assert sig.role in scenario.members[sig.principal]
        assert sig.actor in scenario.account.members
        assert sig.principal in scenario.account.members
        if sig.principal != sig.actor:
            assert any(
                d.delegator_id == sig.principal and d.delegate_id == sig.actor and d.active(sig.at)
                for d in scenario.account.delegations
            )
        assert move.outcome.on_behalf_of == (sig.principal if sig.principal != sig.actor else None)


@PROPERTIES
@given(scenarios())
def test_every_request_survives_a_json_round_trip(scenario: Scenario) -> None:
    request, _ = play(scenario)
    adapter = TypeAdapter(ApprovalRequest)
    assert adapter.validate_json(adapter.dump_json(request)) == request


# --- properties of the merge rule --------------------------------------------------------------


def roles_after(steps: Sequence[PlannedStep]) -> dict[Role, set[Role]]:
    role_of = {step.step_id: step.role for step in steps}
    assert len(role_of) == len(steps), "step ids must be unique to read `after`"
    return {step.role: {role_of[i] for i in step.after} for step in steps}


def sequential_pairs(rules: Sequence[ApprovalRule]) -> list[tuple[Role, Role]]:
    return [
        (earlier.role, later.role)
        for rule in rules
        if rule.order is StepOrder.SEQUENTIAL
        for earlier, later in zip(rule.steps, rule.steps[1:], strict=False)
    ]


@PROPERTIES
@given(approval_rules(step_ids=st.sampled_from(["a", "b", "c"])))
def test_merged_steps_have_one_step_per_role_no_cycle_and_the_largest_quorum(
    rules: list[ApprovalRule],
) -> None:
    """(f) One step per role, with the largest quorum and earliest escalation asked; `after` is
    acyclic, comes only from sequential rules, and orders every sequential pair one way."""
    steps = merge_steps(rules)
    roles = [step.role for step in steps]
    assert len(roles) == len(set(roles))
    asked = [step for rule in rules for step in rule.steps]
    assert set(roles) == {step.role for step in asked}

    for merged in steps:
        same_role = [step for step in asked if step.role is merged.role]
        assert merged.quorum == max(step.quorum for step in same_role)
        assert merged.step_id in (same_role[0].step_id, f"{same_role[0].step_id}-{merged.role}")
        escalating = [step for step in same_role if step.escalate_after is not None]
        if escalating:
            earliest = min(escalating, key=lambda step: step.escalate_after or timedelta(0))
            assert (merged.escalate_after, merged.escalation_role) == (
                earliest.escalate_after,
                earliest.escalation_role,
            )
        else:
            assert (merged.escalate_after, merged.escalation_role) == (None, None)

    after = roles_after(steps)
    for role, waits_for in after.items():
        assert role not in waits_for, f"{role} waits for itself"
    remaining = dict(after)
    while remaining:
        ready = [role for role, waits_for in remaining.items() if not waits_for & set(remaining)]
        assert ready, f"cycle among {sorted(remaining)}"
        for role in ready:
            del remaining[role]

    pairs = sequential_pairs(rules)
    closure: dict[Role, set[Role]] = {role: set() for role in roles}
    for earlier, later in pairs:
        closure[later].add(earlier)
    for _ in roles:
        for role in roles:
            closure[role] |= {r for e in closure[role] for r in closure[e]}
    for role in roles:
        assert after[role] <= closure[role], "an order no sequential rule asked for"
    for earlier, later in pairs:
        assert earlier in after[later] or later in after[earlier], f"{earlier}/{later} unordered"
    if rules[0].order is StepOrder.SEQUENTIAL:
        first = [step.role for step in rules[0].steps]
        for index, role in enumerate(first):
            assert set(first[:index]) <= after[role], "the first rule's order is kept whole"


@PROPERTIES
@given(approval_rules(step_ids=st.sampled_from(["a", "a-manager", "a-finance", "a-director"])))
@example(
    [
        ApprovalRule(
            rule_id="r0", version=1, steps=[ApprovalStep(step_id="a-finance", role=Role.DIRECTOR)]
        ),
        ApprovalRule(rule_id="r1", version=1, steps=[ApprovalStep(step_id="a", role=Role.MANAGER)]),
        ApprovalRule(rule_id="r2", version=1, steps=[ApprovalStep(step_id="a", role=Role.FINANCE)]),
    ]
)
def test_merged_step_ids_are_unique(rules: list[ApprovalRule]) -> None:
    """Fails today: `_unique_step_ids` can hand out an id ('a-finance') another step already
    has, and `after` sets, which hold ids, then confuse the two steps."""
    ids = [step.step_id for step in merge_steps(rules)]
    assert len(ids) == len(set(ids)), f"duplicate step ids {ids}"
