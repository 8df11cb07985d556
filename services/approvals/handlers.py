"""Approvals' handlers: the gate between a priced order and its fulfillment, one function per
incoming event.

A consumer's order passes at once. A business order is matched against its
account's approval policy (`approvals.policies`); when rules apply, a request
opens with the steps they ask for and waits for signatures from
`approvals.decisions` (the JSON API and the inbox page put decisions there
too, so one path applies them). An order another service ends withdraws its
request and gives back its spend. What the gate and the requests decide is
`domain` (and `policy`); the request clock — reminders, escalations, expiry —
is `clock`, which reports through the helpers at the end of this module.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from typing import Any

from services.approvals import domain, policy, store
from services.approvals import metrics as m
from services.approvals.domain import ApprovalRequest, Gate, Outcome, RequestState
from services.approvals.policy import LimitKey
from shared.consume import Handler, ReadingAhead
from shared.contract import (
    Account,
    ApprovalDecision,
    ApprovalMode,
    ApprovalPolicy,
    ApprovalProgress,
    AuditEntry,
    Delegation,
    Order,
    OrderApproved,
    OrderPriced,
    OrderState,
    OrderStatusChanged,
    Reason,
)
from shared.db import Transaction
from shared.metrics import OrderStage
from shared.topics import (
    ACCOUNTS,
    APPROVAL_DECISIONS,
    APPROVAL_POLICIES,
    DELEGATIONS,
    HOLD_MOVES,
    ORDERS_APPROVED,
    ORDERS_ENDED,
    ORDERS_PRICED,
    TopicSpec,
)

log = logging.getLogger(__name__)


def now_utc() -> datetime:
    return datetime.now(UTC)


# --- reference data ------------------------------------------------------------------------


async def account_changed(account: Account, tx: Transaction) -> None:
    await store.save_account(tx.session, account)


async def policy_changed(new_policy: ApprovalPolicy, tx: Transaction) -> None:
    """Orders priced from now on follow it; requests already open keep their snapshot."""
    await store.save_policy(tx.session, new_policy)
    log.info("approval policy of %s is now v%d", new_policy.account_id, new_policy.version)


async def delegation_changed(delegation: Delegation, tx: Transaction) -> None:
    await store.save_delegation(tx.session, delegation)


# --- the gate ------------------------------------------------------------------------------


async def read_orders_ahead(events: Sequence[OrderPriced], tx: Transaction) -> None:
    """Whether each order of the batch reached the gate before, its account and the
    account's policy: one statement each for the whole batch."""
    orders = ((e.order.order_id, e.order.account_id) for e in events)
    await store.read_orders_ahead(tx.session, orders)


async def order_priced(priced: OrderPriced, tx: Transaction) -> None:
    """Let the order through, or open a request under its account's policy; once per order."""
    order, now = priced.order, now_utc()
    gate = await store.gate_of(tx.session, order.order_id)
    if gate is not None:
        log.info("order %s reached approvals before (%s); ignored", order.order_id, gate.value)
        return
    account = await store.find_account(tx.session, order.account_id)
    rules = await rules_in_force(tx, account)
    spent = await spent_so_far(tx, order, rules, now)
    decided = domain.gate_order(priced, account, rules, spent, now)
    await store.record_order(tx.session, order.order_id, order.account_id, decided.gate)
    if decided.gate is Gate.REJECTED:
        await tx.report(order, OrderState.REJECTED, reason=decided.reason)
        tx.order_reached(OrderStage.REJECTED, priced.submitted_at)
    elif decided.request is not None:
        await request_approval(tx, decided.request, priced, decided.why, now)
    else:
        log.info("order %s approved at once: %s", order.order_id, decided.why)
        await release_to_fulfillment(tx, priced, ApprovalMode.AUTOMATIC, now)


async def rules_in_force(tx: Transaction, account: Account | None) -> ApprovalPolicy | None:
    if account is None:
        return None
    own = await store.find_policy(tx.session, account.account_id)
    return policy.policy_in_force(account, own)


async def spent_so_far(
    tx: Transaction, order: Order, rules: ApprovalPolicy | None, now: datetime
) -> dict[LimitKey, Decimal]:
    """Approved spend this period under each limit of `rules` the order's buyer and cost
    centre fall under."""
    if rules is None:
        return {}
    limits = policy.applicable_limits(rules, order.buyer_id, order.cost_centre)
    return {
        key: await store.spent_since(
            tx.session, order.account_id, key, policy.period_start(key.period, now)
        )
        for key in limits
    }


async def request_approval(
    tx: Transaction, request: ApprovalRequest, priced: OrderPriced, why: str, now: datetime
) -> None:
    """Keep the request with the order it holds back, open its audit, and tell the shop."""
    await store.add_request(tx.session, request, priced)
    await store.audit(tx.session, request.order_id, AuditEntry(at=now, kind="opened", why=why))
    log.info("order %s awaits approval: %s", request.order_id, why)
    await report_progress(tx, request, priced, now)
    tx.order_reached(OrderStage.AWAITING_APPROVAL, priced.submitted_at)


# --- decisions -----------------------------------------------------------------------------


async def decision_received(decision: ApprovalDecision, tx: Transaction) -> None:
    """Apply one approver's decision, keep it in the audit, and tell the shop what changed."""
    request = await store.find_request(tx.session, decision.order_id)
    if request is None:
        tx.on_commit(m.DECISIONS.labels(m.NO_ROLE, m.UNKNOWN_REQUEST).inc)
        log.warning(
            "decision by %s on %s refused: no approval request for that order",
            decision.approver_id,
            decision.order_id,
        )
        return
    now = now_utc()
    account = await store.account_now(tx.session, request.account_id)
    outcome = request.decide(decision.approver_id, decision.decision, now, account)
    role = outcome.role.value if outcome.role else m.NO_ROLE
    tx.on_commit(m.DECISIONS.labels(role, outcome.kind).inc)
    await store.audit(tx.session, request.order_id, store.decision_entry(decision, outcome, now))
    await store.save_request(tx.session, request)
    if not outcome.counted:
        level = logging.WARNING if outcome.refused else logging.INFO
        log.log(level, "decision on %s not counted: %s", decision.order_id, outcome.why)
        return
    log.info("order %s: %s", decision.order_id, outcome.why)
    await announce(tx, request, decision, outcome, now)


async def announce(
    tx: Transaction,
    request: ApprovalRequest,
    decision: ApprovalDecision,
    outcome: domain.DecisionOutcome,
    now: datetime,
) -> None:
    """Shops see every counted decision: progress, the veto, or the approval."""
    priced = await store.priced_order(tx.session, request.order_id)
    if outcome.kind is Outcome.REJECTED:
        reason = domain.rejection_reason(outcome, decision.approver_id, decision.comment)
        await close_request(tx, request, priced, now, reason)
    elif outcome.kind is Outcome.APPROVED:
        await close_request(tx, request, priced, now)
    else:
        await report_progress(tx, request, priced, now)


# --- orders that end elsewhere ---------------------------------------------------------------


async def order_status_changed(status: OrderStatusChanged, tx: Transaction) -> None:
    """Another step ended the order: withdraw its request quietly and give back its spend.

    An order that ends before it is priced here is remembered, so a late
    `orders.priced` (a cancel racing the pricing step) is never approved.
    """
    gate = await store.gate_of(tx.session, status.order_id)
    ending = domain.ending_at(gate, status.status)
    if ending is None:
        return
    if ending.remember is not None:
        await store.record_order(tx.session, status.order_id, status.account_id, ending.remember)
    if ending.give_back_spend and await store.release_spend(tx.session, status.order_id):
        log.info("order %s %s: its spend no longer counts", status.order_id, status.status.value)
    if ending.withdraw_request:
        await withdraw_request(tx, status)


async def withdraw_request(tx: Transaction, status: OrderStatusChanged) -> None:
    request = await store.find_request(tx.session, status.order_id)
    now = now_utc()
    if request is None or not request.withdraw(now):
        return
    await store.save_request(tx.session, request)
    why = f"order {status.status.value} by {status.reported_by}"
    await store.audit(tx.session, request.order_id, AuditEntry(at=now, kind="withdrawn", why=why))
    log.info("approval request for %s withdrawn: %s", status.order_id, why)


# --- what shops and fulfillment hear (the clock reports through these too) -------------------


async def report_progress(
    tx: Transaction, request: ApprovalRequest, priced: OrderPriced, now: datetime
) -> None:
    """Shops see who signed, who may sign now, and the audit so far."""
    account = await store.account_now(tx.session, request.account_id)
    history = await store.history(tx.session, request.order_id)
    await tx.report(
        priced.order,
        OrderState.AWAITING_APPROVAL,
        totals=priced.totals,
        payment=priced.payment,
        approval=request.progress(now, account, history),
    )


async def close_request(
    tx: Transaction,
    request: ApprovalRequest,
    priced: OrderPriced,
    now: datetime,
    reason: Reason | None = None,
) -> None:
    """The request ended: approved (on to fulfillment) or rejected/expired (stock released)."""
    account = await store.account_now(tx.session, request.account_id)
    history = await store.history(tx.session, request.order_id)
    progress = request.progress(now, account, history)
    waited = ((request.closed_at or now) - request.opened_at).total_seconds()
    tx.on_commit(partial(m.TIME_TO_DECISION.labels(request.state.value).observe, waited))
    if request.state is RequestState.APPROVED:
        await release_to_fulfillment(tx, priced, ApprovalMode.APPROVERS, now, progress)
    else:
        await tx.report(priced.order, OrderState.REJECTED, reason=reason, approval=progress)
        tx.order_reached(OrderStage.REJECTED, priced.submitted_at)


async def release_to_fulfillment(
    tx: Transaction,
    priced: OrderPriced,
    mode: ApprovalMode,
    now: datetime,
    progress: ApprovalProgress | None = None,
) -> None:
    """The one way an order leaves approvals approved: its spend counts, fulfillment gets it."""
    await store.record_spend(tx.session, priced, now)
    await tx.report(
        priced.order,
        OrderState.APPROVED,
        not_repeated_on=() if priced.holds else (HOLD_MOVES,),
        totals=priced.totals,
        payment=priced.payment,
        lines=priced.lines,
        approval=progress,
    )
    await tx.publish(
        ORDERS_APPROVED,
        OrderApproved.new(
            order=priced.order,
            lines=priced.lines,
            totals=priced.totals,
            payment=priced.payment,
            approval_mode=mode,
            approved_by=list(progress.approved_by) if progress else [],
            submitted_at=priced.submitted_at,
        ),
    )
    tx.order_reached(OrderStage.APPROVED, priced.submitted_at)


HANDLERS: dict[TopicSpec, Handler[Any]] = {
    ACCOUNTS: account_changed,
    APPROVAL_POLICIES: policy_changed,
    DELEGATIONS: delegation_changed,
    ORDERS_PRICED: ReadingAhead(order_priced, read_orders_ahead),
    APPROVAL_DECISIONS: decision_received,
    ORDERS_ENDED: order_status_changed,
}
