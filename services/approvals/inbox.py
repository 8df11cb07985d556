"""What approvers see: their inbox, one request in full, and the decision check.

Read models over the store, shared by the JSON API and the web page so both
show the same thing and refuse the same decisions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.approvals import store
from services.approvals.domain import ApprovalRequest, DecisionOutcome
from shared.contract import ApprovalDecisionKind, OrderPriced


@dataclass(frozen=True)
class InboxItem:
    """One request an approver may act on now, with what they need to decide."""

    request: ApprovalRequest
    priced: OrderPriced
    steps: list[str]
    """The open steps this approver's signature would count towards."""
    acting_for: list[str]
    """Delegators this approver stands in for today."""

    def summary(self, now: datetime) -> dict[str, Any]:
        """The order as pricing handed it on: lines, discounts, totals, and what approving it
        commits the account to (the payment plan, pricing's word on its credit)."""
        order, totals, plan = self.priced.order, self.priced.totals, self.priced.payment
        return {
            "order_id": order.order_id,
            "account_id": order.account_id,
            "buyer_id": order.buyer_id,
            "reference": order.reference,
            "cost_centre": order.cost_centre,
            "payment_terms": order.payment.terms,
            "lines": [
                {
                    "sku": line.sku,
                    "quantity": line.quantity,
                    "unit_price": format(line.unit_price, "f"),
                    "line_total": format(line.line_total, "f"),
                    "discount": format(line.discount, "f"),
                    "price_source": line.price_source,
                    "category": line.category,
                }
                for line in self.priced.lines
            ],
            "totals": totals.model_dump(mode="json"),
            "payment": plan.model_dump(mode="json") if plan is not None else None,
            "credit_warning": self.priced.credit_warning,
            "credit_limit_override": self.priced.credit_limit_override,
            "opened_at": self.request.opened_at.isoformat(),
            "age_seconds": int((now - self.request.opened_at).total_seconds()),
            "deadline": self.request.deadline.isoformat(),
            "your_steps": self.steps,
            "acting_for": self.acting_for,
            "why": [f"{m.rule_id} v{m.version}: {m.why}" for m in self.request.matches],
        }


async def pending_for(session: AsyncSession, approver_id: str, now: datetime) -> list[InboxItem]:
    """Open requests `approver_id` may sign now, in their name or a delegator's; oldest first."""
    items = []
    for account_id in await store.accounts_of(session, approver_id):
        account = await store.account_now(session, account_id)
        for request, priced in await store.open_requests_of(session, [account_id]):
            steps = request.steps_for(approver_id, now, account)
            if steps:
                items.append(
                    InboxItem(request, priced, steps, account.delegators_of(approver_id, now))
                )
    return sorted(items, key=lambda item: item.request.opened_at)


async def decided_by(session: AsyncSession, approver_id: str) -> list[dict[str, Any]]:
    """Requests this person decided on, with how their decision counted."""
    order_ids = await store.decided_by(session, approver_id)
    found = []
    for request, priced in await store.requests_of(session, order_ids):
        history = await store.history(session, request.order_id)
        mine = [h for h in history if h.approver_id == approver_id and h.kind == "decision"]
        found.append(
            {
                "order_id": request.order_id,
                "account_id": request.account_id,
                "buyer_id": request.buyer_id,
                "totals": priced.totals.model_dump(mode="json"),
                "state": request.state.value,
                "decisions": [h.model_dump(mode="json") for h in mine],
            }
        )
    return found


@dataclass(frozen=True)
class Verdict:
    """What the topic consumer would make of a decision, asked before it goes on the topic."""

    found: bool
    """False: there is no request, or none the approver may know of (not a member of its
    account): to them the two look the same."""
    refused: DecisionOutcome | None = None
    """Why the decision would not count; None when it would."""

    @property
    def accepted(self) -> bool:
        return self.found and self.refused is None


NOT_FOUND = Verdict(found=False)


async def visible_request(
    session: AsyncSession, order_id: str, member_id: str
) -> ApprovalRequest | None:
    """The order's request if `member_id` is a member of its account today, else None.

    A non-member learns nothing, not even that the request exists: the same
    None as for an order without one.
    """
    request = await store.find_request(session, order_id)
    if request is None:
        return None
    account = await store.account_now(session, request.account_id)
    return request if member_id in account.members else None


async def check_decision(
    session: AsyncSession, order_id: str, approver_id: str, decision_is_reject: bool, now: datetime
) -> Verdict:
    """What the topic consumer would say, asked before the decision goes on the topic.

    An accepted verdict means the decision is accepted for the consumer, which
    applies it under the same rule (a request closed in between still refuses it
    there). The trial decision below changes a copy read for this check only;
    nothing is saved.
    """
    request = await visible_request(session, order_id, approver_id)
    if request is None:
        return NOT_FOUND
    account = await store.account_now(session, request.account_id)
    refused = request.refusal(approver_id, now, account)
    if refused is None and not decision_is_reject:
        trial = request.decide(approver_id, ApprovalDecisionKind.APPROVE, now, account)
        refused = trial if not trial.counted else None
    return Verdict(found=True, refused=refused)


async def request_detail(
    session: AsyncSession, order_id: str, member_id: str, now: datetime
) -> dict[str, Any]:
    """The request as members of its account see it: rules, steps, signatures and the audit.

    `LookupError` if there is none, or `member_id` is not a member of its account.
    """
    request = await visible_request(session, order_id, member_id)
    if request is None:
        raise LookupError(order_id)
    priced = await store.priced_order(session, order_id)
    account = await store.account_now(session, request.account_id)
    progress = request.progress(now, account, await store.history(session, order_id))
    return {
        "order_id": request.order_id,
        "account_id": request.account_id,
        "buyer_id": request.buyer_id,
        "state": request.state.value,
        "opened_at": request.opened_at.isoformat(),
        "closed_at": request.closed_at.isoformat() if request.closed_at else None,
        "order": InboxItem(request, priced, [], []).summary(now),
        **progress.model_dump(mode="json"),
    }
