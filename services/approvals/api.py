"""The approvals JSON API: an approver's inbox, one request in full, and decisions.

Every call but `GET /approvals/{order_id}` (support's view, for the internal
network like `/metrics`) carries `Authorization: Bearer <token>` whose subject
is the approver: no token or a bad one is 401, acting as someone else is 403.
A decision is checked against the stored request, then put on
`approvals.decisions`, so it takes effect exactly as one sent to the topic.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from faust.web import Request, Response, View
from pydantic import StringConstraints, ValidationError

from services.approvals import inbox
from shared.consume import describe_validation_error
from shared.contract import ApprovalDecision, ApprovalDecisionKind, ContractModel, Id
from shared.service import Service
from shared.tokens import TokenError, approver_of, bearer
from shared.topics import APPROVAL_DECISIONS

LIST_STATUSES = ("pending", "decided")


class DecisionBody(ContractModel):
    """`POST /approvals/{order_id}/decisions`: the approver's verdict (the order is in the path)."""

    approver_id: Id
    decision: ApprovalDecisionKind
    comment: Annotated[str, StringConstraints(max_length=1000)] | None = None
    decision_id: uuid.UUID | None = None
    """Optional idempotency key: a retried POST with the same id is applied once."""


def authenticated(service: Service, request: Request) -> str:
    """The approver named by the request's bearer token; `TokenError` -> 401."""
    token = bearer(request.headers.get("Authorization"))
    return approver_of(service.settings.approval_token_secret, token)


async def submit_decision(
    service: Service, order_id: str, body: DecisionBody
) -> tuple[int, dict[str, Any]]:
    """Check a decision, then queue it on the topic: (HTTP status, JSON body)."""
    now = datetime.now(UTC)
    async with service.db.transaction() as tx:
        status, message, refused = await inbox.check_decision(
            tx.session,
            order_id,
            body.approver_id,
            body.decision is ApprovalDecisionKind.REJECT,
            now,
        )
        if status != 202:
            answer: dict[str, Any] = {"error": message}
            if refused is not None:
                answer["outcome"] = refused.kind.value
            return status, answer
        fields = body.model_dump(exclude={"decision_id"})
        if body.decision_id is not None:
            fields["event_id"] = body.decision_id
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
            """The request with its rules, steps, signatures and the whole audit trail."""
            async with service.db.sessions() as session:
                try:
                    detail = await inbox.request_detail(session, order_id, datetime.now(UTC))
                except LookupError:
                    return self.json(
                        {"error": f"no approval request for order {order_id}"}, status=404
                    )
            return self.json(detail)
