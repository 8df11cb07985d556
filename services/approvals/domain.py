"""Approvals' rules: which orders pass at once, and when a request has been decided.

A consumer decides alone; a business account names several decision makers.
`gate` says whether an order may go straight to fulfillment or needs the
account's approvers; an `ApprovalRequest` then collects their decisions under
one rule set (`record_decision`), whether they arrive on the topic or over HTTP.

Plain Python, no I/O: the store loads an account's policy and a request, these
decide, the app publishes what they decided.

This issue's policy is one step of two distinct approvers above one threshold.
Ordered steps, per-role quotas and expiry (DESIGN.md) grow from `AccountPolicy`
and `ApprovalRequest`; the outcome kinds and refusals stay as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from shared.contract import (
    Account,
    ApprovalDecisionKind,
    ApprovalProgress,
    Channel,
    Order,
    Reason,
    ReasonCode,
    Role,
    Totals,
)
from shared.rejection import Rejected

APPROVER_ROLES = frozenset({Role.MANAGER, Role.FINANCE, Role.DIRECTOR})
"""Roles that may approve an order; a plain buyer may only place orders."""

REQUIRED_APPROVALS = 2


# --- the gate: may this order go on without anyone's approval? -----------------------------


@dataclass(frozen=True)
class AccountPolicy:
    """What an account asks before its orders ship: a threshold and its decision makers."""

    account_id: str
    channel: Channel
    currency: str
    approval_threshold: Decimal | None
    members: Mapping[str, frozenset[Role]]
    required_approvals: int = REQUIRED_APPROVALS

    @classmethod
    def of(cls, account: Account) -> AccountPolicy:
        return cls(
            account_id=account.account_id,
            channel=account.channel,
            currency=account.currency,
            approval_threshold=account.approval_threshold,
            members={m.member_id: frozenset(m.roles) for m in account.members},
        )

    def eligible_approvers(self, buyer_id: str) -> tuple[str, ...]:
        """Members holding an approver role, except the buyer: nobody approves their own order.

        Sorted, so the snapshot (and the status shops see) does not depend on member order.
        """
        return tuple(
            sorted(
                member_id
                for member_id, roles in self.members.items()
                if roles & APPROVER_ROLES and member_id != buyer_id
            )
        )


@dataclass(frozen=True)
class ApproveAtOnce:
    """The order needs nobody's approval; `why` is for the log."""

    why: str


@dataclass(frozen=True)
class RequireApprovers:
    """The order waits for `required_approvals` distinct people among `eligible_approvers`."""

    why: str
    required_approvals: int
    eligible_approvers: tuple[str, ...]


Gate = ApproveAtOnce | RequireApprovers


def gate(order: Order, totals: Totals, policy: AccountPolicy | None) -> Gate:
    """Decide whether an order may pass at once, or needs the account's approvers.

    B2B means the order *or* the account is B2B: a business account cannot skip
    its approvers by sending an order marked b2c. A total in another currency
    than the account's threshold cannot be compared without a rate we do not
    have, so it needs approval: a wrong "no" costs a day, a wrong "yes" a pallet.
    Raises `Rejected` for a B2B order of an account approvals has never seen:
    without its members nobody could approve it, and letting it pass unchecked
    would skip the account's rule.
    """
    business = order.channel is Channel.B2B or (
        policy is not None and policy.channel is Channel.B2B
    )
    if not business:
        return ApproveAtOnce("consumer order: the buyer decides alone")
    if policy is None:
        raise Rejected(
            ReasonCode.UNKNOWN_ACCOUNT,
            f"account {order.account_id!r} is not known to approvals, so nobody can approve "
            "its order",
        )
    threshold = policy.approval_threshold
    if threshold is None:
        return ApproveAtOnce(f"account {policy.account_id!r} has no approval threshold")
    eligible = policy.eligible_approvers(order.buyer_id)
    if totals.currency != policy.currency:
        return RequireApprovers(
            f"total is in {totals.currency}, the threshold in {policy.currency}: "
            "cannot compare, so approval is required",
            policy.required_approvals,
            eligible,
        )
    if totals.total < threshold:
        return ApproveAtOnce(f"total {totals.total} is below the threshold {threshold}")
    return RequireApprovers(
        f"total {totals.total} {totals.currency} is at or above the threshold {threshold}",
        policy.required_approvals,
        eligible,
    )


# --- the request: collecting decisions -----------------------------------------------------


class RequestState(StrEnum):
    OPEN = "open"
    APPROVED = "approved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"
    """The order ended elsewhere (cancelled by the shop, rejected by another step)."""


class Outcome(StrEnum):
    """What one decision did to a request; also the audit's and the metric's label."""

    COUNTED = "counted"
    """An approval that leaves the request waiting for more."""
    APPROVED = "approved"
    """The approval that completed the request."""
    REJECTED = "rejected"
    """A veto: one eligible 'no' ends the request."""
    ALREADY_COUNTED = "already_counted"
    """The same approver approving again: it counts once."""
    REFUSED_CLOSED = "refused_closed"
    REFUSED_BUYER = "refused_buyer"
    REFUSED_NOT_ELIGIBLE = "refused_not_eligible"


REFUSALS = frozenset({Outcome.REFUSED_CLOSED, Outcome.REFUSED_BUYER, Outcome.REFUSED_NOT_ELIGIBLE})


@dataclass(frozen=True)
class DecisionOutcome:
    kind: Outcome
    why: str

    @property
    def refused(self) -> bool:
        return self.kind in REFUSALS

    @property
    def counted(self) -> bool:
        """Whether the decision changed the request (the audit keeps the others too)."""
        return self.kind in (Outcome.COUNTED, Outcome.APPROVED, Outcome.REJECTED)


@dataclass
class ApprovalRequest:
    """One order waiting for its account's decision makers.

    `eligible_approvers` is a snapshot taken when the request opened: a member
    added to the account later does not gain a say over orders already waiting,
    and one removed keeps it (an approval is judged against the rules it was
    asked under).
    """

    order_id: str
    buyer_id: str
    required_approvals: int
    eligible_approvers: tuple[str, ...]
    approved_by: list[str] = field(default_factory=list)
    state: RequestState = RequestState.OPEN

    @classmethod
    def open(cls, order: Order, requirement: RequireApprovers) -> ApprovalRequest:
        return cls(
            order_id=order.order_id,
            buyer_id=order.buyer_id,
            required_approvals=requirement.required_approvals,
            eligible_approvers=requirement.eligible_approvers,
        )

    @property
    def is_open(self) -> bool:
        return self.state is RequestState.OPEN

    @property
    def can_complete(self) -> bool:
        """Whether enough eligible people exist to ever approve it."""
        return len(self._approvers()) >= self.required_approvals

    def refusal(self, approver_id: str) -> DecisionOutcome | None:
        """Why `approver_id` may not decide now, or None. The HTTP API asks the same question."""
        if not self.is_open:
            return DecisionOutcome(
                Outcome.REFUSED_CLOSED, f"the approval request is {self.state.value} already"
            )
        if approver_id == self.buyer_id:
            return DecisionOutcome(
                Outcome.REFUSED_BUYER, f"{approver_id} placed this order and cannot approve it"
            )
        if approver_id not in self._approvers():
            return DecisionOutcome(
                Outcome.REFUSED_NOT_ELIGIBLE,
                f"{approver_id} is not an approver of this order's account",
            )
        return None

    def record_decision(self, approver_id: str, decision: ApprovalDecisionKind) -> DecisionOutcome:
        """Apply one approver's decision: any eligible 'no' vetoes, N distinct 'yes' approve."""
        refused = self.refusal(approver_id)
        if refused is not None:
            return refused
        if decision is ApprovalDecisionKind.REJECT:
            self.state = RequestState.REJECTED
            return DecisionOutcome(Outcome.REJECTED, f"{approver_id} rejected the order")
        if approver_id in self.approved_by:
            return DecisionOutcome(
                Outcome.ALREADY_COUNTED, f"{approver_id} approved before; an approval counts once"
            )
        self.approved_by.append(approver_id)
        tally = f"{len(self.approved_by)} of {self.required_approvals} approvals"
        if len(self.approved_by) >= self.required_approvals:
            self.state = RequestState.APPROVED
            return DecisionOutcome(Outcome.APPROVED, f"{tally}: approved")
        return DecisionOutcome(Outcome.COUNTED, f"{tally} so far")

    def withdraw(self) -> bool:
        """The order ended elsewhere: stop collecting decisions. False if already closed."""
        if not self.is_open:
            return False
        self.state = RequestState.WITHDRAWN
        return True

    def progress(self) -> ApprovalProgress:
        """What shops see on `orders.status` while the order waits."""
        return ApprovalProgress(
            required_approvals=self.required_approvals,
            approved_by=list(self.approved_by),
            eligible_approvers=list(self.eligible_approvers),
        )

    def _approvers(self) -> frozenset[str]:
        """The snapshot minus the buyer, should an older snapshot ever have included them."""
        return frozenset(self.eligible_approvers) - {self.buyer_id}


def rejection_reason(approver_id: str, comment: str | None) -> Reason:
    """The reason shops see when an approver vetoes, with the approver's own words."""
    said = f": {comment}" if comment else " (no comment)"
    return Reason(code=ReasonCode.APPROVAL_REJECTED, message=f"rejected by {approver_id}{said}")
