"""The clock of every open approval request: reminders, escalations and expiry, when they are due.

Each open request keeps the next moment its clock needs a look (`next_due_at`,
in the database), so what is due survives a restart. The service's timer calls
`advance_due` with the time it is now; tests call it with the time they want.
Each request moves on in its own transaction, and `ApprovalRequest.tick`
remembers what it did, so nothing happens twice when two workers look at once.
"""

from __future__ import annotations

import logging
from datetime import datetime

from services.approvals import domain, store
from services.approvals import metrics as m
from services.approvals.domain import ApprovalRequest, Tick, TimerEvent
from services.approvals.handlers import close_request, report_progress
from shared.contract import ApprovalNotice, NoticeKind, OrderPriced
from shared.db import ServiceDatabase, Transaction
from shared.topics import APPROVAL_NOTICES

log = logging.getLogger(__name__)


async def advance_due(db: ServiceDatabase, now: datetime) -> list[str]:
    """Remind, escalate and expire what is due at `now`; returns the orders looked at."""
    async with db.sessions() as session:
        due = await store.due_requests(session, now)
    for order_id in due:
        await advance(db, order_id, now)
    return due


async def advance(db: ServiceDatabase, order_id: str, now: datetime) -> None:
    """Move one request's clock to `now` and tell whom it concerns what happened."""
    async with db.transaction() as tx:
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
            await announce(tx, request, priced, event, now)


async def announce(
    tx: Transaction,
    request: ApprovalRequest,
    priced: OrderPriced,
    event: TimerEvent,
    now: datetime,
) -> None:
    """Expiry ends the order; a reminder or an escalation goes to the approvers (and an
    escalation to shops too, with the step now escalated)."""
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
