"""Approvals: the gate between a priced order and its fulfillment.

A consumer's order passes at once. A business order is matched against its
account's approval policy (`approvals.policies`); when rules apply, a request
opens with the steps they ask for, and waits for signatures from
`approvals.decisions` (the JSON API and the inbox page put decisions there
too, so one path applies them). A timer moves every open request's clock on:
reminders, escalations and expiry, all kept in the database.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from functools import partial

from services.approvals import domain, policy, store
from services.approvals import metrics as m
from services.approvals.domain import ApprovalRequest, Outcome, RequestState, Tick, TimerEvent
from services.approvals.store import Gates
from shared.contract import (
    Account,
    ApprovalDecision,
    ApprovalMode,
    ApprovalNotice,
    ApprovalPolicy,
    ApprovalProgress,
    AuditEntry,
    Delegation,
    NoticeKind,
    OrderApproved,
    OrderPriced,
    OrderState,
    OrderStatusChanged,
    Reason,
)
from shared.db import Transaction
from shared.rejection import Rejected
from shared.service import Service
from shared.settings import load_settings
from shared.topics import (
    ACCOUNTS,
    APPROVAL_DECISIONS,
    APPROVAL_NOTICES,
    APPROVAL_POLICIES,
    DELEGATIONS,
    ORDERS_APPROVED,
    ORDERS_PRICED,
    ORDERS_STATUS,
)

log = logging.getLogger(__name__)

settings = load_settings()
settings.token_secret()  # the development secret on an open port stops us here, before anything
if settings.uses_dev_token_secret:
    log.warning(
        "APPROVALS_TOKEN_SECRET is the development default (allowed: %s); set your own to deploy",
        "TRADELANE_DEV_MODE=true" if settings.dev_mode else f"WEB_BIND={settings.web_bind}",
    )

service = Service("approvals", store.Base.metadata, settings)
app = service.app

ORDER_ENDED = frozenset({OrderState.CANCELLED, OrderState.REJECTED})


def now_utc() -> datetime:
    return datetime.now(UTC)


# --- reference data ------------------------------------------------------------------------


@service.handles(ACCOUNTS)
async def account_changed(account: Account, tx: Transaction) -> None:
    await store.save_account(tx.session, account)


@service.handles(APPROVAL_POLICIES)
async def policy_changed(new_policy: ApprovalPolicy, tx: Transaction) -> None:
    """Orders priced from now on follow it; requests already open keep their snapshot."""
    await store.save_policy(tx.session, new_policy)
    log.info("approval policy of %s is now v%d", new_policy.account_id, new_policy.version)


@service.handles(DELEGATIONS)
async def delegation_changed(delegation: Delegation, tx: Transaction) -> None:
    await store.save_delegation(tx.session, delegation)


# --- the gate ------------------------------------------------------------------------------


@service.handles(ORDERS_PRICED)
async def order_priced(priced: OrderPriced, tx: Transaction) -> None:
    """Let the order through, or open a request under its account's policy; once per order."""
    order = priced.order
    known = await store.find_order(tx.session, order.order_id)
    if known is not None:
        log.info("order %s reached approvals before (%s); ignored", order.order_id, known.gate)
        return
    account = await store.find_account(tx.session, order.account_id)
    try:
        business = policy.is_business_order(order, account)
    except Rejected as rejected:
        await store.record_order(tx.session, order.order_id, order.account_id, Gates.REJECTED)
        await service.report(tx, order, OrderState.REJECTED, reason=rejected.reason)
        return
    if not business or account is None:
        await approve_at_once(tx, priced, "consumer order: the buyer decides alone")
        return
    plan = await plan_for(tx, priced, account)
    if plan is None or not plan.needs_approval:
        why = plan.summary() if plan else f"account {account.account_id} has no approval policy"
        await approve_at_once(tx, priced, why)
    else:
        await request_approval(tx, priced, account, plan)


async def plan_for(
    tx: Transaction, priced: OrderPriced, account: Account
) -> policy.ApprovalPlan | None:
    """Match the account's policy against the order and its buyer's and cost centre's spend."""
    order = priced.order
    current = await store.find_policy(tx.session, account.account_id)
    rules = current or policy.fallback_policy(account)
    if rules is None:
        return None
    limits = policy.applicable_limits(rules, order.buyer_id, order.cost_centre)
    now = now_utc()
    spent = {
        key: await store.spent_since(
            tx.session, account.account_id, key, policy.period_start(key.period, now)
        )
        for key in limits
    }
    facts = policy.order_facts(
        order,
        priced.lines,
        priced.totals,
        account,
        credit_limit_override=priced.credit_limit_override,
        spent=spent,
    )
    return policy.plan_approval(rules, facts, limits)


async def approve_at_once(tx: Transaction, priced: OrderPriced, why: str) -> None:
    order = priced.order
    await store.record_order(tx.session, order.order_id, order.account_id, Gates.APPROVED_AT_ONCE)
    log.info("order %s approved at once: %s", order.order_id, why)
    await release_to_fulfillment(tx, priced, ApprovalMode.AUTOMATIC)


async def request_approval(
    tx: Transaction, priced: OrderPriced, account: Account, plan: policy.ApprovalPlan
) -> None:
    """Open a request with a snapshot of the policy's steps and the account's members."""
    order, now = priced.order, now_utc()
    request = ApprovalRequest.open(
        order_id=order.order_id,
        account_id=account.account_id,
        buyer_id=order.buyer_id,
        plan=plan,
        members={member.member_id: frozenset(member.roles) for member in account.members},
        now=now,
    )
    await store.record_order(tx.session, order.order_id, order.account_id, Gates.APPROVAL_REQUESTED)
    await store.add_request(tx.session, request, priced)
    steps = ", ".join(
        f"{s.step_id} ({s.quorum} x {s.role.value}"
        + (f", after {', '.join(sorted(s.after))}" if s.after else "")
        + ")"
        for s in request.steps
    )
    opened = f"policy v{plan.policy_version}: {plan.summary()}; steps: {steps}"
    await store.audit(tx.session, order.order_id, AuditEntry(at=now, kind="opened", why=opened))
    log.info("order %s awaits approval: %s", order.order_id, opened)
    await report_progress(tx, request, priced, now)


async def report_progress(
    tx: Transaction, request: ApprovalRequest, priced: OrderPriced, now: datetime
) -> None:
    """Shops see who signed, who may sign now, and the audit so far."""
    account = await store.account_now(tx.session, request.account_id)
    history = await store.history(tx.session, request.order_id)
    await service.report(
        tx,
        priced.order,
        OrderState.AWAITING_APPROVAL,
        totals=priced.totals,
        approval=request.progress(now, account, history),
    )


# --- decisions -----------------------------------------------------------------------------


@service.handles(APPROVAL_DECISIONS)
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
        await release_to_fulfillment(tx, priced, ApprovalMode.APPROVERS, progress)
    else:
        await service.report(
            tx, priced.order, OrderState.REJECTED, reason=reason, approval=progress
        )


async def release_to_fulfillment(
    tx: Transaction,
    priced: OrderPriced,
    mode: ApprovalMode,
    progress: ApprovalProgress | None = None,
) -> None:
    """The one way an order leaves approvals approved: its spend counts, fulfillment gets it."""
    await store.record_spend(tx.session, priced, now_utc())
    await service.report(
        tx,
        priced.order,
        OrderState.APPROVED,
        totals=priced.totals,
        lines=priced.lines,
        approval=progress,
    )
    await tx.publish(
        ORDERS_APPROVED,
        OrderApproved.new(
            order=priced.order,
            lines=priced.lines,
            totals=priced.totals,
            approval_mode=mode,
            approved_by=list(progress.approved_by) if progress else [],
        ),
    )


# --- the clock -----------------------------------------------------------------------------


@app.timer(service.settings.approval_timer_seconds)
async def advance_clocks() -> None:
    """Remind, escalate and expire what is due; each request in its own transaction."""
    now = now_utc()
    try:
        async with service.db.sessions() as session:
            due = await store.due_requests(session, now)
        for order_id in due:
            await advance_clock(order_id, now)
        async with service.db.sessions() as session:
            m.PENDING.set(await store.count_open(session))
    except Exception:  # a timer that raises stops for good: log, and try again next tick
        log.exception("approvals: advancing request clocks failed")


async def advance_clock(order_id: str, now: datetime) -> None:
    async with service.db.transaction() as tx:
        request = await store.find_request(tx.session, order_id)
        if request is None:
            return
        account = await store.account_now(tx.session, request.account_id)
        events = request.tick(now, account)
        if not events:
            return
        await store.save_request(tx.session, request)
        for event in events:
            await store.audit(tx.session, order_id, store.timer_entry(event, now))
        priced = await store.priced_order(tx.session, order_id)
        for event in events:
            await announce_timer(tx, request, priced, event, now)


async def announce_timer(
    tx: Transaction,
    request: ApprovalRequest,
    priced: OrderPriced,
    event: TimerEvent,
    now: datetime,
) -> None:
    if event.kind is Tick.EXPIRY:
        tx.on_commit(m.EXPIRIES.inc)
        log.info("approval request for %s expired", request.order_id)
        await close_request(tx, request, priced, now, domain.expiry_reason(request))
        return
    kind = NoticeKind.ESCALATION if event.kind is Tick.ESCALATION else NoticeKind.REMINDER
    tx.on_commit((m.ESCALATIONS if kind is NoticeKind.ESCALATION else m.REMINDERS).inc)
    await tx.publish(
        APPROVAL_NOTICES,
        ApprovalNotice.new(
            order_id=request.order_id,
            account_id=request.account_id,
            kind=kind,
            step_id=event.step_id,
            recipients=list(event.recipients),
            deadline=request.deadline,
            message=event.why,
        ),
    )
    if kind is NoticeKind.ESCALATION:
        await report_progress(tx, request, priced, now)


# --- orders that end elsewhere ---------------------------------------------------------------


@service.handles(ORDERS_STATUS)
async def order_status_changed(status: OrderStatusChanged, tx: Transaction) -> None:
    """Another step ended the order: withdraw its request quietly and give back its spend.

    An order that ends before it is priced here is remembered, so a late
    `orders.priced` (a cancel racing the pricing step) is never approved.
    """
    if status.reported_by == service.name or status.status not in ORDER_ENDED:
        return
    if await store.find_order(tx.session, status.order_id) is None:
        await store.record_order(
            tx.session, status.order_id, status.account_id, Gates.ENDED_ELSEWHERE
        )
        return
    if await store.release_spend(tx.session, status.order_id):
        log.info("order %s %s: its spend no longer counts", status.order_id, status.status.value)
    request = await store.find_request(tx.session, status.order_id)
    now = now_utc()
    if request is not None and request.withdraw(now):
        await store.save_request(tx.session, request)
        why = f"order {status.status.value} by {status.reported_by}"
        await store.audit(
            tx.session, request.order_id, AuditEntry(at=now, kind="withdrawn", why=why)
        )
        log.info("approval request for %s withdrawn: %s", status.order_id, why)


# --- HTTP ----------------------------------------------------------------------------------

from services.approvals import api, web  # noqa: E402  (views need `service`, defined above)

api.register(service)
web.register(service)
