"""Approvals: the gate between a priced order and its fulfillment.

A consumer's order, or a business order under its account's threshold, passes
at once. A larger business order waits for two of the account's decision
makers (manager, finance, director; never the buyer); any one of them can veto
it. Decisions arrive on `approvals.decisions`, or over HTTP, which checks them
with the same rule and then puts them on that topic, so one path applies them.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated, Any

from faust.web import Request, Response, View
from prometheus_client import Counter
from pydantic import StringConstraints, ValidationError

from services.approvals import domain, store
from services.approvals.domain import Outcome
from services.approvals.store import Gates
from shared.contract import (
    Account,
    ApprovalDecision,
    ApprovalDecisionKind,
    ApprovalMode,
    ApprovalProgress,
    ContractModel,
    OrderApproved,
    OrderPriced,
    OrderState,
    OrderStatusChanged,
)
from shared.contract.orders import Id
from shared.db import Transaction
from shared.rejection import Rejected
from shared.service import Service, describe_validation_error
from shared.topics import (
    ACCOUNTS,
    APPROVAL_DECISIONS,
    ORDERS_APPROVED,
    ORDERS_PRICED,
    ORDERS_STATUS,
)

log = logging.getLogger(__name__)

service = Service("approvals", store.Base.metadata)
app = service.app

UNKNOWN_REQUEST = "unknown_request"
DECISIONS = Counter(
    "tradelane_approval_decisions_total",
    "Approval decisions applied, by outcome (counted, approved, rejected, already_counted, "
    "refused_*, unknown_request).",
    ["outcome"],
)
for _outcome in (*Outcome, UNKNOWN_REQUEST):
    DECISIONS.labels(_outcome)  # every outcome shows on /metrics from the start, at 0

ORDER_ENDED = frozenset({OrderState.CANCELLED, OrderState.REJECTED})

HTTP_STATUS_OF_REFUSAL = {
    Outcome.REFUSED_CLOSED: 409,
    Outcome.REFUSED_BUYER: 403,
    Outcome.REFUSED_NOT_ELIGIBLE: 403,
}


# --- reference data ------------------------------------------------------------------------


@service.handles(ACCOUNTS)
async def account_changed(account: Account, tx: Transaction) -> None:
    await store.save_account(tx.session, account)


# --- the gate ------------------------------------------------------------------------------


@service.handles(ORDERS_PRICED)
async def order_priced(priced: OrderPriced, tx: Transaction) -> None:
    """Let the order through, or ask its account's approvers; a second delivery changes nothing."""
    order = priced.order
    known = await store.find_order(tx.session, order.order_id)
    if known is not None:
        log.info("order %s reached approvals before (%s); ignored", order.order_id, known.gate)
        return
    policy = await store.account_policy(tx.session, order.account_id)
    try:
        verdict = domain.gate(order, priced.totals, policy)
    except Rejected as rejected:
        await store.record_order(tx.session, order.order_id, order.account_id, Gates.REJECTED)
        await service.report(tx, order, OrderState.REJECTED, reason=rejected.reason)
        return
    if isinstance(verdict, domain.ApproveAtOnce):
        await approve_at_once(tx, priced, verdict)
    else:
        await request_approval(tx, priced, verdict)


async def approve_at_once(
    tx: Transaction, priced: OrderPriced, verdict: domain.ApproveAtOnce
) -> None:
    order = priced.order
    await store.record_order(tx.session, order.order_id, order.account_id, Gates.APPROVED_AT_ONCE)
    log.info("order %s approved at once: %s", order.order_id, verdict.why)
    await release_to_fulfillment(tx, priced, ApprovalMode.AUTOMATIC)


async def request_approval(
    tx: Transaction, priced: OrderPriced, requirement: domain.RequireApprovers
) -> None:
    """Open a request with a snapshot of who may decide, and tell the shop who that is."""
    order = priced.order
    request = domain.ApprovalRequest.open(order, requirement)
    await store.record_order(tx.session, order.order_id, order.account_id, Gates.APPROVAL_REQUESTED)
    await store.add_request(tx.session, request, priced, requirement.why)
    log.info("order %s awaits approval: %s", order.order_id, requirement.why)
    if not request.can_complete:
        log.warning(
            "order %s needs %d approvers but account %s has only %d eligible (%s): it cannot "
            "be approved as things stand",
            order.order_id,
            request.required_approvals,
            order.account_id,
            len(request.eligible_approvers),
            ", ".join(request.eligible_approvers) or "nobody",
        )
    await service.report(
        tx, order, OrderState.AWAITING_APPROVAL, totals=priced.totals, approval=request.progress()
    )


# --- decisions -----------------------------------------------------------------------------


@service.handles(APPROVAL_DECISIONS)
async def decision_received(decision: ApprovalDecision, tx: Transaction) -> None:
    """Apply one approver's decision, keep it in the audit, and tell the shop what changed."""
    request = await store.find_request(tx.session, decision.order_id)
    if request is None:
        DECISIONS.labels(UNKNOWN_REQUEST).inc()
        log.warning(
            "decision by %s on %s ignored: no approval request for that order",
            decision.approver_id,
            decision.order_id,
        )
        return
    outcome = request.record_decision(decision.approver_id, decision.decision)
    DECISIONS.labels(outcome.kind.value).inc()
    await store.record_decision(tx.session, decision, outcome)
    await store.save_request(tx.session, request)
    if not outcome.counted:
        level = logging.WARNING if outcome.refused else logging.INFO
        log.log(level, "decision on %s not counted: %s", decision.order_id, outcome.why)
        return
    log.info("order %s: %s", decision.order_id, outcome.why)
    await announce(tx, request, decision, outcome)


async def announce(
    tx: Transaction,
    request: domain.ApprovalRequest,
    decision: ApprovalDecision,
    outcome: domain.DecisionOutcome,
) -> None:
    """Shops see every counted decision: progress, the veto, or the approval."""
    priced = await store.priced_order(tx.session, request.order_id)
    order, progress = priced.order, request.progress()
    if outcome.kind is Outcome.REJECTED:
        reason = domain.rejection_reason(decision.approver_id, decision.comment)
        await service.report(tx, order, OrderState.REJECTED, reason=reason, approval=progress)
    elif outcome.kind is Outcome.APPROVED:
        await release_to_fulfillment(tx, priced, ApprovalMode.APPROVERS, progress)
    else:
        await service.report(
            tx, order, OrderState.AWAITING_APPROVAL, totals=priced.totals, approval=progress
        )


async def release_to_fulfillment(
    tx: Transaction,
    priced: OrderPriced,
    mode: ApprovalMode,
    progress: ApprovalProgress | None = None,
) -> None:
    """The one way an order leaves approvals approved: status for shops, event for fulfillment."""
    approved_by = list(progress.approved_by) if progress else []
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
            approved_by=approved_by,
        ),
    )


# --- orders that end elsewhere ---------------------------------------------------------------


@service.handles(ORDERS_STATUS)
async def order_status_changed(status: OrderStatusChanged, tx: Transaction) -> None:
    """Another step ended the order: withdraw its request quietly (the shop has been told).

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
    request = await store.find_request(tx.session, status.order_id)
    if request is not None and request.withdraw():
        await store.save_request(tx.session, request)
        log.info(
            "approval request for %s withdrawn: order %s by %s",
            status.order_id,
            status.status.value,
            status.reported_by,
        )


# --- HTTP ----------------------------------------------------------------------------------


class DecisionBody(ContractModel):
    """`POST /approvals/{order_id}/decisions`: the approver's verdict (the order is in the path)."""

    approver_id: Id
    decision: ApprovalDecisionKind
    comment: Annotated[str, StringConstraints(max_length=1000)] | None = None


def _utc_text(moment: datetime | None) -> str | None:
    """RFC 3339 UTC; SQLite hands back naive datetimes that were stored as UTC."""
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


def request_summary(
    row: store.ApprovalRequestRow, decisions: list[store.DecisionRow]
) -> dict[str, Any]:
    return {
        "order_id": row.order_id,
        "account_id": row.account_id,
        "buyer_id": row.buyer_id,
        "state": row.state,
        "why": row.why,
        "required_approvals": row.required_approvals,
        "eligible_approvers": row.eligible_approvers,
        "approved_by": row.approved_by,
        "opened_at": _utc_text(row.opened_at),
        "closed_at": _utc_text(row.closed_at),
        "decisions": [
            {
                "event_id": d.event_id,
                "approver_id": d.approver_id,
                "decision": d.decision,
                "comment": d.comment,
                "decided_at": _utc_text(d.decided_at),
                "recorded_at": _utc_text(d.recorded_at),
                "outcome": d.outcome,
                "counted": d.counted,
                "why": d.why,
            }
            for d in decisions
        ],
    }


@app.page("/approvals/{order_id}/decisions")
class Decisions(View):
    async def post(self, request: Request, order_id: str) -> Response:
        """Check a decision against the stored request, then queue it for the topic consumer.

        202, not 200: the decision takes effect when the consumer applies it, under
        the same rule, so a request closed in between still refuses it there.
        """
        try:
            body = DecisionBody.model_validate_json(await request.read())
        except ValidationError as invalid:
            return self.json({"error": describe_validation_error(invalid)}, status=400)
        async with service.db.transaction() as tx:
            approval = await store.find_request(tx.session, order_id)
            if approval is None:
                return self.json({"error": f"no approval request for order {order_id}"}, status=404)
            refused = approval.refusal(body.approver_id)
            if refused is not None:
                return self.json(
                    {"error": refused.why, "outcome": refused.kind.value},
                    status=HTTP_STATUS_OF_REFUSAL[refused.kind],
                )
            decision = ApprovalDecision.new(order_id=order_id, **body.model_dump())
            await tx.publish(APPROVAL_DECISIONS, decision)
        service.outbox_written()
        return self.json({"event_id": str(decision.event_id)}, status=202)


@app.page("/approvals/{order_id}")
class Approval(View):
    async def get(self, request: Request, order_id: str) -> Response:
        """The request as approvers and support see it: who may decide, who did, and the audit."""
        async with service.db.sessions() as session:
            row = await store.find_request_row(session, order_id)
            if row is None:
                return self.json({"error": f"no approval request for order {order_id}"}, status=404)
            decisions = await store.decisions_on(session, order_id)
        return self.json(request_summary(row, decisions))
