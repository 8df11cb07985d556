"""Approvals' rules: which orders pass at once, who may sign which step of a request, when it is
decided, when time runs out, and what an order ending elsewhere undoes.

A consumer decides alone; a business account names several decision makers.
`gate_order` lets an order through or opens a request for it: `policy.plan_approval`
turns the account's policy into steps, and an `ApprovalRequest` then collects
signatures under one rule set, whether the decision arrives on the topic or
over HTTP, and `tick` moves its clock on (reminder, escalation, expiry). `Gate`
is where an order stands at the gate and `ending_at` what another service
ending it undoes. Plain Python, no I/O: the store loads and saves, the handlers
publish what these decided.

Separation of duties, as enforced here:

- the buyer never signs their own order, not even through a delegate;
- a person signs a step at most once, whether in their own name or as a
  delegate, so a quorum of N is always N different people;
- one decision counts towards one step: the first open step (in the policy's
  order) the person may sign; a person may sign a second step with a second
  decision unless a matched rule asks for `distinct_signers`;
- the request keeps the members and roles it was opened with, but a member
  removed from the account since can no longer decide.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from services.approvals.policy import (
    ApprovalPlan,
    LimitKey,
    PlannedStep,
    RuleMatch,
    applicable_limits,
    is_business_order,
    order_facts,
    plan_approval,
)
from shared.contract import (
    Account,
    ApprovalDecisionKind,
    ApprovalPolicy,
    ApprovalProgress,
    AuditEntry,
    MatchedRule,
    OrderPriced,
    OrderState,
    Reason,
    ReasonCode,
    Role,
    StepProgress,
    StepSignature,
)
from shared.rejection import Rejected


class RequestState(StrEnum):
    OPEN = "open"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    WITHDRAWN = "withdrawn"
    """The order ended elsewhere (cancelled by the shop, rejected by another step)."""


class Outcome(StrEnum):
    """What one decision did to a request; also the audit's and the metric's label."""

    COUNTED = "counted"
    APPROVED = "approved"
    REJECTED = "rejected"
    ALREADY_COUNTED = "already_counted"
    REFUSED_CLOSED = "refused_closed"
    REFUSED_BUYER = "refused_buyer"
    REFUSED_NOT_MEMBER = "refused_not_member"
    REFUSED_NOT_ELIGIBLE = "refused_not_eligible"
    REFUSED_NOT_OPEN_YET = "refused_not_open_yet"
    REFUSED_SIGNED_OTHER_STEP = "refused_signed_other_step"
    REFUSED_STEP_SATISFIED = "refused_step_satisfied"


REFUSALS = frozenset(o for o in Outcome if o.value.startswith("refused_"))
CHANGES = frozenset({Outcome.COUNTED, Outcome.APPROVED, Outcome.REJECTED})


# --- who stands where, now -------------------------------------------------------------------


@dataclass(frozen=True)
class DelegationWindow:
    delegator_id: str
    delegate_id: str
    starts_at: datetime
    ends_at: datetime

    def active(self, at: datetime) -> bool:
        return self.starts_at <= at < self.ends_at


@dataclass(frozen=True)
class AccountNow:
    """The account as it is today, not as snapshotted: who is still a member, who stands in."""

    members: frozenset[str]
    delegations: tuple[DelegationWindow, ...] = ()

    def delegators_of(self, delegate_id: str, at: datetime) -> list[str]:
        """Members `delegate_id` may act for at `at` (both must still belong to the account)."""
        if delegate_id not in self.members:
            return []
        return sorted(
            d.delegator_id
            for d in self.delegations
            if d.delegate_id == delegate_id and d.active(at) and d.delegator_id in self.members
        )


@dataclass(frozen=True)
class Capacity:
    """Someone deciding in a role: in their own name, or as `actor` for `principal`."""

    principal: str
    actor: str
    role: Role

    @property
    def on_behalf_of(self) -> str | None:
        return self.principal if self.principal != self.actor else None


# --- outcomes and timer events ------------------------------------------------------------------


@dataclass(frozen=True)
class DecisionOutcome:
    kind: Outcome
    why: str
    step_id: str | None = None
    role: Role | None = None
    on_behalf_of: str | None = None

    @property
    def refused(self) -> bool:
        return self.kind in REFUSALS

    @property
    def counted(self) -> bool:
        """Whether the decision changed the request (the audit keeps the others too)."""
        return self.kind in CHANGES


class Tick(StrEnum):
    REMINDER = "reminder"
    ESCALATION = "escalation"
    EXPIRY = "expiry"


@dataclass(frozen=True)
class TimerEvent:
    kind: Tick
    why: str
    recipients: tuple[str, ...] = ()
    step_id: str | None = None


# --- the request --------------------------------------------------------------------------------


@dataclass
class Signature:
    principal: str
    actor: str
    role: Role
    at: datetime


@dataclass
class StepState:
    step_id: str
    role: Role
    quorum: int
    after: frozenset[str]
    escalation_role: Role | None = None
    escalate_after: timedelta | None = None
    opened_at: datetime | None = None
    escalated: bool = False
    signatures: list[Signature] = field(default_factory=list)

    @classmethod
    def planned(cls, step: PlannedStep) -> StepState:
        return cls(
            step_id=step.step_id,
            role=step.role,
            quorum=step.quorum,
            after=step.after,
            escalation_role=step.escalation_role,
            escalate_after=step.escalate_after,
        )

    @property
    def satisfied(self) -> bool:
        return len(self.signatures) >= self.quorum

    @property
    def roles(self) -> frozenset[Role]:
        """Roles that may sign now: the step's own, and its escalation role once escalated."""
        if self.escalated and self.escalation_role is not None:
            return frozenset({self.role, self.escalation_role})
        return frozenset({self.role})

    @property
    def escalates_at(self) -> datetime | None:
        if self.opened_at is None or self.escalate_after is None:
            return None
        if self.escalated or self.satisfied:
            return None
        return self.opened_at + self.escalate_after

    def signed_by(self, person: str) -> bool:
        return any(person in (s.principal, s.actor) for s in self.signatures)


@dataclass
class ApprovalRequest:
    """One order waiting for its account's decision makers, under the snapshot it opened with."""

    order_id: str
    account_id: str
    buyer_id: str
    members: dict[str, frozenset[Role]]
    """Members and their roles when the request opened (the snapshot)."""
    steps: list[StepState]
    distinct_signers: bool
    opened_at: datetime
    deadline: datetime
    remind_at: datetime | None
    policy_version: int | None
    matches: tuple[RuleMatch, ...]
    reminded: bool = False
    state: RequestState = RequestState.OPEN
    closed_at: datetime | None = None

    @classmethod
    def open(
        cls,
        *,
        order_id: str,
        account_id: str,
        buyer_id: str,
        plan: ApprovalPlan,
        members: dict[str, frozenset[Role]],
        now: datetime,
    ) -> ApprovalRequest:
        deadline = now + plan.expires_after
        request = cls(
            order_id=order_id,
            account_id=account_id,
            buyer_id=buyer_id,
            members=dict(members),
            steps=[StepState.planned(step) for step in plan.steps],
            distinct_signers=plan.distinct_signers,
            opened_at=now,
            deadline=deadline,
            remind_at=deadline - plan.remind_before if plan.remind_before else None,
            policy_version=plan.policy_version,
            matches=plan.matches,
        )
        request._open_ready_steps(now)
        return request

    # --- reading -------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self.state is RequestState.OPEN

    def step_state(self, step: StepState) -> str:
        if step.satisfied:
            return "satisfied"
        return "open" if step.opened_at is not None else "waiting"

    def describe_steps(self) -> str:
        """The steps as the audit names them: `manager (1 x manager), finance (1 x finance,
        after manager)`."""
        return ", ".join(
            f"{s.step_id} ({s.quorum} x {s.role.value}"
            + (f", after {', '.join(sorted(s.after))}" if s.after else "")
            + ")"
            for s in self.steps
        )

    def open_steps(self) -> list[StepState]:
        return [s for s in self.steps if s.opened_at is not None and not s.satisfied]

    def signers(self) -> list[str]:
        """Everyone whose signature counts, in the name it counts in."""
        return [sig.principal for step in self.steps for sig in step.signatures]

    def capacities(self, actor: str, now: datetime, account: AccountNow) -> list[Capacity]:
        """In which names and roles `actor` may decide now: their own first, then delegations."""
        if actor not in account.members:
            return []
        principals = [actor, *account.delegators_of(actor, now)]
        return [
            Capacity(principal, actor, role)
            for principal in principals
            if principal != self.buyer_id
            for role in sorted(self.members.get(principal, frozenset()))
        ]

    def steps_for(self, actor: str, now: datetime, account: AccountNow) -> list[str]:
        """The open steps `actor` could sign right now (the approver inbox)."""
        if not self.is_open or actor == self.buyer_id:
            return []
        caps = self.capacities(actor, now, account)
        return [s.step_id for s in self.open_steps() if any(self._may_sign(s, c) for c in caps)]

    def eligible(self, step: StepState, now: datetime, account: AccountNow) -> list[str]:
        """Who could sign `step` now, in their own name or as a delegate."""
        if not self.is_open or step.opened_at is None or step.satisfied:
            return []
        return sorted(
            person
            for person in account.members
            if person != self.buyer_id
            and any(self._may_sign(step, c) for c in self.capacities(person, now, account))
        )

    def next_due(self) -> datetime | None:
        """When the clock next needs to look at this request (reminder, escalation, expiry)."""
        if not self.is_open:
            return None
        moments = [self.deadline]
        if self.remind_at is not None and not self.reminded:
            moments.append(self.remind_at)
        moments += [s.escalates_at for s in self.open_steps() if s.escalates_at is not None]
        return min(moments)

    # --- deciding ------------------------------------------------------------------------

    def refusal(self, actor: str, now: datetime, account: AccountNow) -> DecisionOutcome | None:
        """Why `actor` may not decide at all now, or None. The HTTP API asks the same question."""
        if not self.is_open:
            return DecisionOutcome(
                Outcome.REFUSED_CLOSED, f"the approval request is {self.state.value} already"
            )
        if now >= self.deadline:  # the timer has not expired it yet; time has
            return DecisionOutcome(
                Outcome.REFUSED_CLOSED,
                f"the approval request expired at {self.deadline.isoformat()}",
            )
        if actor == self.buyer_id:
            return DecisionOutcome(
                Outcome.REFUSED_BUYER, f"{actor} placed this order and cannot approve it"
            )
        if actor not in account.members:
            return DecisionOutcome(
                Outcome.REFUSED_NOT_MEMBER,
                f"{actor} is not a member of account {self.account_id} (any more)",
            )
        if not any(c.role in self._request_roles() for c in self.capacities(actor, now, account)):
            return DecisionOutcome(
                Outcome.REFUSED_NOT_ELIGIBLE,
                f"{actor} holds none of this request's roles "
                f"({', '.join(sorted(self._request_roles()))}), in their own name or as a delegate",
            )
        return None

    def decide(
        self, actor: str, decision: ApprovalDecisionKind, now: datetime, account: AccountNow
    ) -> DecisionOutcome:
        """Apply one decision: an eligible 'no' vetoes, signatures fill steps until all are met."""
        refused = self.refusal(actor, now, account)
        if refused is not None:
            return refused
        caps = [c for c in self.capacities(actor, now, account) if c.role in self._request_roles()]
        if decision is ApprovalDecisionKind.REJECT:
            return self._veto(caps[0], now)
        for step in self.open_steps():
            for cap in caps:
                if self._may_sign(step, cap):
                    return self._sign(step, cap, now)
        return self._why_not_counted(actor, caps)

    def _veto(self, cap: Capacity, now: datetime) -> DecisionOutcome:
        self._close(RequestState.REJECTED, now)
        acting = f" for {cap.on_behalf_of}" if cap.on_behalf_of else ""
        return DecisionOutcome(
            Outcome.REJECTED,
            f"{cap.actor}{acting} ({cap.role.value}) rejected the order",
            role=cap.role,
            on_behalf_of=cap.on_behalf_of,
        )

    def _sign(self, step: StepState, cap: Capacity, now: datetime) -> DecisionOutcome:
        step.signatures.append(Signature(cap.principal, cap.actor, cap.role, now))
        self._open_ready_steps(now)
        tally = f"step {step.step_id}: {len(step.signatures)} of {step.quorum}"
        kind = Outcome.COUNTED
        if all(s.satisfied for s in self.steps):
            self._close(RequestState.APPROVED, now)
            kind, tally = Outcome.APPROVED, f"{tally}; every step is satisfied"
        acting = f" for {cap.on_behalf_of}" if cap.on_behalf_of else ""
        return DecisionOutcome(
            kind,
            f"{cap.actor}{acting} signed as {cap.role.value}; {tally}",
            step_id=step.step_id,
            role=cap.role,
            on_behalf_of=cap.on_behalf_of,
        )

    def _why_not_counted(self, actor: str, caps: list[Capacity]) -> DecisionOutcome:
        people = {actor} | {c.principal for c in caps}
        roles = {c.role for c in caps}
        if any(s.signed_by(p) for s in self.steps for p in people):
            if self.distinct_signers and any(
                roles & s.roles and not any(s.signed_by(p) for p in people)
                for s in self.open_steps()
            ):
                return DecisionOutcome(
                    Outcome.REFUSED_SIGNED_OTHER_STEP,
                    f"{actor} signed another step; this request needs a different person per step",
                )
            return DecisionOutcome(
                Outcome.ALREADY_COUNTED, f"{actor} signed before; a signature counts once"
            )
        waiting = [s for s in self.steps if s.opened_at is None and roles & s.roles]
        if waiting:
            return DecisionOutcome(
                Outcome.REFUSED_NOT_OPEN_YET,
                f"step {waiting[0].step_id} is not open yet: it waits for "
                + ", ".join(sorted(b for b in waiting[0].after if not self._step(b).satisfied)),
            )
        return DecisionOutcome(
            Outcome.REFUSED_STEP_SATISFIED,
            f"the steps {actor} may sign are satisfied already; the request waits for "
            + ", ".join(s.step_id for s in self.steps if not s.satisfied),
        )

    def _step(self, step_id: str) -> StepState:
        return next(s for s in self.steps if s.step_id == step_id)

    def _may_sign(self, step: StepState, cap: Capacity) -> bool:
        if step.satisfied or step.opened_at is None or cap.role not in step.roles:
            return False
        people = (cap.principal, cap.actor)
        scope = self.steps if self.distinct_signers else [step]
        return not any(s.signed_by(p) for s in scope for p in people)

    def _request_roles(self) -> frozenset[Role]:
        return frozenset(role for step in self.steps for role in step.roles)

    def _open_ready_steps(self, now: datetime) -> None:
        done = {s.step_id for s in self.steps if s.satisfied}
        for step in self.steps:
            if step.opened_at is None and step.after <= done:
                step.opened_at = now

    # --- the clock -----------------------------------------------------------------------

    def tick(self, now: datetime, account: AccountNow) -> list[TimerEvent]:
        """Move the request's clock to `now`: expire it, remind its approvers, escalate steps.

        Each event happens once: the request remembers what it has done, so a
        timer that fires twice (a restart, a second worker) changes nothing.
        """
        if not self.is_open:
            return []
        if now >= self.deadline:
            self._close(RequestState.EXPIRED, now)
            return [TimerEvent(Tick.EXPIRY, f"not decided by {self.deadline.isoformat()}")]
        events = []
        for step in self.open_steps():
            if step.escalates_at is not None and now >= step.escalates_at:
                step.escalated = True
                role = step.escalation_role.value if step.escalation_role else "?"
                events.append(
                    TimerEvent(
                        Tick.ESCALATION,
                        f"step {step.step_id} escalated to {role} after {step.escalate_after}",
                        tuple(self.eligible(step, now, account)),
                        step.step_id,
                    )
                )
        if self.remind_at is not None and not self.reminded and now >= self.remind_at:
            self.reminded = True
            events.append(
                TimerEvent(
                    Tick.REMINDER,
                    f"expires at {self.deadline.isoformat()}",
                    tuple(self.waiting_on(now, account)),
                )
            )
        return events

    def waiting_on(self, now: datetime, account: AccountNow) -> list[str]:
        """Everyone who could move the request on now."""
        return sorted({p for step in self.open_steps() for p in self.eligible(step, now, account)})

    def withdraw(self, now: datetime) -> bool:
        """The order ended elsewhere: stop collecting decisions. False if already closed."""
        if not self.is_open:
            return False
        self._close(RequestState.WITHDRAWN, now)
        return True

    def _close(self, state: RequestState, now: datetime) -> None:
        self.state = state
        self.closed_at = now

    # --- what shops see ------------------------------------------------------------------

    def progress(
        self, now: datetime, account: AccountNow, history: Iterable[AuditEntry] = ()
    ) -> ApprovalProgress:
        """The request on `orders.status`: rules, steps, who signed, who may sign, the audit."""
        return ApprovalProgress(
            required_approvals=sum(s.quorum for s in self.steps),
            approved_by=list(dict.fromkeys(self.signers())),
            eligible_approvers=self.waiting_on(now, account),
            policy_version=self.policy_version,
            rules=[
                MatchedRule(rule_id=m.rule_id, version=m.version, why=m.why) for m in self.matches
            ],
            steps=[self._step_progress(s, now, account) for s in self.steps],
            deadline=self.deadline,
            history=list(history),
        )

    def _step_progress(self, step: StepState, now: datetime, account: AccountNow) -> StepProgress:
        return StepProgress(
            step_id=step.step_id,
            role=step.role.value,
            quorum=step.quorum,
            state=self.step_state(step),  # type: ignore[arg-type]
            after=sorted(step.after),
            eligible=self.eligible(step, now, account),
            signed_by=[
                StepSignature(
                    approver_id=s.actor,
                    on_behalf_of=s.principal if s.principal != s.actor else None,
                    at=s.at,
                )
                for s in step.signatures
            ],
            escalation_role=step.escalation_role.value if step.escalation_role else None,
            escalates_at=step.escalates_at,
            escalated=step.escalated,
        )


def rejection_reason(outcome: DecisionOutcome, actor: str, comment: str | None) -> Reason:
    """The reason shops see when an approver vetoes, with the approver's own words."""
    said = f": {comment}" if comment else " (no comment)"
    acting = f" for {outcome.on_behalf_of}" if outcome.on_behalf_of else ""
    return Reason(code=ReasonCode.APPROVAL_REJECTED, message=f"rejected by {actor}{acting}{said}")


def expiry_reason(request: ApprovalRequest) -> Reason:
    waiting = [s.step_id for s in request.steps if not s.satisfied]
    return Reason(
        code=ReasonCode.APPROVAL_EXPIRED,
        message=f"approval not complete by {request.deadline.isoformat()}; "
        f"steps still waiting: {', '.join(waiting)}",
    )


# --- the gate: which orders pass at once --------------------------------------------------------


class Gate(StrEnum):
    """Where an order stands at approvals' gate (the approvals order row).

    An order is gated once, by its first `orders.priced` (`gate_order` decides which of
    the first three); a second one changes nothing. An order another service
    ends before it is priced here is remembered as `ENDED_ELSEWHERE`, so its
    late `orders.priced` is never approved. An order keeps its gate when it ends
    elsewhere later: `ENDINGS` says what that undoes.
    """

    APPROVED_AT_ONCE = "approved_at_once"
    """A consumer's order, or a business order no rule of its account's policy applies to."""
    APPROVAL_REQUESTED = "approval_requested"
    """A request opened; from here the `ApprovalRequest` decides the order."""
    REJECTED = "rejected"
    """Refused at the gate: a business order of an account approvals does not know."""
    ENDED_ELSEWHERE = "ended_elsewhere"
    """Cancelled or rejected by another step before it was priced here: never approve it."""


@dataclass(frozen=True)
class GateDecision:
    """What the gate makes of a priced order, and why."""

    gate: Gate
    why: str
    request: ApprovalRequest | None = None
    """The request to open (`APPROVAL_REQUESTED`)."""
    reason: Reason | None = None
    """Why the order is rejected (`REJECTED`)."""


def gate_order(
    priced: OrderPriced,
    account: Account | None,
    rules: ApprovalPolicy | None,
    spent: Mapping[LimitKey, Decimal],
    now: datetime,
) -> GateDecision:
    """Whether a priced order passes at once, waits for approvers, or is rejected here.

    A consumer's order passes. A business order passes when its account has no
    policy in force (`rules`: its own, else its threshold's fallback, see
    `policy.policy_in_force`) or no rule of it applies; otherwise a request
    opens at `now` with the steps the matching rules ask for and a snapshot of
    the account's members. `spent` is the approved spend so far under each
    limit the rules name. A business order of an account approvals has never
    heard of is rejected: nobody could approve it.
    """
    order = priced.order
    try:
        business = is_business_order(order, account)
    except Rejected as rejected:
        return GateDecision(Gate.REJECTED, rejected.reason.message, reason=rejected.reason)
    if not business or account is None:
        return GateDecision(Gate.APPROVED_AT_ONCE, "consumer order: the buyer decides alone")
    if rules is None:
        return GateDecision(
            Gate.APPROVED_AT_ONCE, f"account {account.account_id} has no approval policy"
        )
    facts = order_facts(
        order,
        priced.lines,
        priced.totals,
        account,
        credit_limit_override=priced.credit_limit_override,
        spent=spent,
    )
    plan = plan_approval(rules, facts, applicable_limits(rules, order.buyer_id, order.cost_centre))
    if not plan.needs_approval:
        return GateDecision(Gate.APPROVED_AT_ONCE, plan.summary())
    request = ApprovalRequest.open(
        order_id=order.order_id,
        account_id=account.account_id,
        buyer_id=order.buyer_id,
        plan=plan,
        members={member.member_id: frozenset(member.roles) for member in account.members},
        now=now,
    )
    return GateDecision(
        Gate.APPROVAL_REQUESTED,
        f"policy v{plan.policy_version}: {plan.summary()}; steps: {request.describe_steps()}",
        request=request,
    )


# --- orders that end elsewhere ------------------------------------------------------------------


ENDED = frozenset({OrderState.CANCELLED, OrderState.REJECTED})
"""Reports of another service that end an order for approvals too."""


@dataclass(frozen=True)
class Ending:
    """What another service ending an order undoes here."""

    remember: Gate | None = None
    """The gate to record for an order approvals has not gated yet."""
    give_back_spend: bool = False
    """Its total no longer counts against spending limits."""
    withdraw_request: bool = False
    """Its request, if still open, stops collecting decisions."""


ENDINGS: Mapping[Gate | None, Ending] = {
    None: Ending(remember=Gate.ENDED_ELSEWHERE),
    Gate.APPROVED_AT_ONCE: Ending(give_back_spend=True),
    Gate.APPROVAL_REQUESTED: Ending(give_back_spend=True, withdraw_request=True),
    Gate.REJECTED: Ending(),
    Gate.ENDED_ELSEWHERE: Ending(),
}
"""By the order's gate (None: not gated yet). Its gate itself never changes."""


def ending_at(gate: Gate | None, report: OrderState) -> Ending | None:
    """What another service's `report` on an order at `gate` undoes; None if it ends nothing."""
    return ENDINGS[gate] if report in ENDED else None
