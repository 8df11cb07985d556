"""The approvals JSON API: an approver's inbox, one request in full, and decisions.

Every call carries `Authorization: Bearer <token>` whose subject is the
approver: no token or a bad one is 401, acting as someone else is 403. A
request exists only for members of its account: anyone else gets the 404 of an
order without one, never a 403 that would confirm it and name the account.
A decision is checked against the stored request, then put on
`approvals.decisions`, so it takes effect exactly as one sent to the topic.

The HTTP status of every answer is decided here (and in `web`), not in the
read models or the domain.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from faust.web import Request, Response, View
from pydantic import StringConstraints, ValidationError

from services.approvals import inbox, store
from services.approvals.domain import Outcome
from shared.consume import describe_validation_error
from shared.contract import ApprovalDecision, ApprovalDecisionKind, ContractModel, Id
from shared.service import Service
from shared.tokens import TokenError, approver_of, bearer
from shared.topics import APPROVAL_DECISIONS

LIST_STATUSES = ("pending", "decided")

HTTP_STATUS_OF_REFUSAL = {
    Outcome.REFUSED_CLOSED: 409,
    Outcome.REFUSED_NOT_OPEN_YET: 409,
    Outcome.REFUSED_STEP_SATISFIED: 409,
    Outcome.ALREADY_COUNTED: 409,
    Outcome.REFUSED_BUYER: 403,
    Outcome.REFUSED_NOT_MEMBER: 404,  # to a non-member the request does not exist
    Outcome.REFUSED_NOT_ELIGIBLE: 403,
    Outcome.REFUSED_SIGNED_OTHER_STEP: 403,
}


def not_found(order_id: str) -> dict[str, Any]:
    """The one 404 body: the same for an unknown order and one the caller may not see."""
    return {"error": f"no approval request for order {order_id}"}


class DecisionBody(ContractModel):
    """`POST /approvals/{order_id}/decisions`: the approver's verdict (the order is in the path)."""

    approver_id: Id
    decision: ApprovalDecisionKind
    comment: Annotated[str, StringConstraints(max_length=1000)] | None = None
    decision_id: uuid.UUID | None = None
    """Optional idempotency key: a retried POST with the same id is applied once."""


def authenticated(service: Service, request: Request) -> str:
    """The approver named by the request's bearer token; `TokenError` -> 401."""
    return approver_signed_in(service, bearer(request.headers.get("Authorization")))


def approver_signed_in(service: Service, token: str) -> str:
    """The approver a token names, under today's token secret or the one before a rotation."""
    settings = service.settings
    return approver_of(settings.token_secret(), token, settings.previous_token_secret())


DECISION_ID_REUSED = "decision_id_reused"
"""The 409 `outcome` of a decision_id that already names another decision (an API answer:
such a decision never reaches the topic, so no audit entry or metric has it)."""


def retried(decision_id: uuid.UUID) -> tuple[int, dict[str, Any]]:
    """A retry is answered as the first attempt was: its decision is queued or applied."""
    return 202, {"event_id": str(decision_id)}


def reused(decision_id: uuid.UUID) -> tuple[int, dict[str, Any]]:
    return 409, {
        "error": f"decision_id {decision_id} was already used for another decision; "
        "send a new decision_id for a new decision",
        "outcome": DECISION_ID_REUSED,
    }


async def submit_decision(
    service: Service, order_id: str, body: DecisionBody
) -> tuple[int, dict[str, Any]]:
    """Check a decision, then queue it on the topic: (HTTP status, JSON body).

    A `decision_id` names one decision on one order. Sent again with the same
    decision it is a retry: answered 202 like the first time and not sent
    again. Sent with another order or another decision it is refused with 409:
    its event would carry an `event_id` already taken, and the inbox would drop
    it without a word.
    """
    now = datetime.now(UTC)
    decision_id = body.decision_id
    this = store.ClaimedDecision(order_id, body.approver_id, body.decision.value, body.comment)
    async with service.db.transaction() as tx:
        if decision_id is not None:
            first = await store.decision_with_id(tx.session, decision_id)
            if first is not None:
                return retried(decision_id) if first == this else reused(decision_id)
            if await service.db.received(tx.session, decision_id):
                return reused(decision_id)  # the id of an event that came over the topic
        verdict = await inbox.check_decision(
            tx.session,
            order_id,
            body.approver_id,
            body.decision is ApprovalDecisionKind.REJECT,
            now,
        )
        if not verdict.found:
            return 404, not_found(order_id)
        if verdict.refused is not None:
            status = HTTP_STATUS_OF_REFUSAL.get(verdict.refused.kind, 409)
            if status == 404:
                return 404, not_found(order_id)
            return status, {"error": verdict.refused.why, "outcome": verdict.refused.kind.value}
        fields = body.model_dump(exclude={"decision_id"})
        if decision_id is not None:
            fields["event_id"] = decision_id
            first = await store.claim_decision_id(tx.session, decision_id, this)
            if first is not None:  # claimed in the meantime by a request running alongside
                return retried(decision_id) if first == this else reused(decision_id)
        decision = ApprovalDecision.new(order_id=order_id, **fields)
        await tx.publish(APPROVAL_DECISIONS, decision)
    return 202, {"event_id": str(decision.event_id)}


def register(service: Service) -> None:
    app = service.app

    @app.page("/approvals")
    class ApproverInbox(View):
        async def get(self, request: Request) -> Response:
            """`?approver_id=…&status=pending|decided`: what this approver may decide, or did."""
            try:
                subject = authenticated(service, request)
            except TokenError as error:
                return self.json({"error": str(error)}, status=401)
            approver_id = request.query.get("approver_id") or subject
            status = request.query.get("status", "pending")
            if status not in LIST_STATUSES:
                expected = ", ".join(LIST_STATUSES)
                return self.json(
                    {"error": f"status: expected one of {expected}, got {status!r}"}, status=400
                )
            if approver_id != subject:
                return self.json(
                    {"error": f"the token is {subject}'s; it cannot read {approver_id}'s inbox"},
                    status=403,
                )
            now = datetime.now(UTC)
            async with service.db.sessions() as session:
                if status == "pending":
                    items = await inbox.pending_for(session, approver_id, now)
                    found = [item.summary(now) for item in items]
                else:
                    found = await inbox.decided_by(session, approver_id)
            return self.json({"approver_id": approver_id, "status": status, "requests": found})

    @app.page("/approvals/{order_id}/decisions")
    class Decisions(View):
        async def post(self, request: Request, order_id: str) -> Response:
            """202 when queued; 400 bad body, 401 no token, 403/404/409 refused (and why)."""
            try:
                subject = authenticated(service, request)
            except TokenError as error:
                return self.json({"error": str(error)}, status=401)
            try:
                body = DecisionBody.model_validate_json(await request.read())
            except ValidationError as invalid:
                return self.json({"error": describe_validation_error(invalid)}, status=400)
            if body.approver_id != subject:
                return self.json(
                    {
                        "error": f"approver_id is {body.approver_id} but the token is {subject}'s: "
                        "decide only in your own name"
                    },
                    status=403,
                )
            status, answer = await submit_decision(service, order_id, body)
            return self.json(answer, status=status)

    @app.page("/approvals/{order_id}")
    class Approval(View):
        async def get(self, request: Request, order_id: str) -> Response:
            """The request with its rules, steps, signatures and the whole audit trail, for
            members of its account; 401 without a token, 404 for anyone else."""
            try:
                subject = authenticated(service, request)
            except TokenError as error:
                return self.json({"error": str(error)}, status=401)
            async with service.db.sessions() as session:
                try:
                    detail = await inbox.request_detail(
                        session, order_id, subject, datetime.now(UTC)
                    )
                except LookupError:
                    return self.json(not_found(order_id), status=404)
            return self.json(detail)
