"""Approvals' own metrics, in base units with bounded labels (roles and outcomes, never ids)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from services.approvals.domain import Outcome, RequestState
from shared.contract import Role

UNKNOWN_REQUEST = "unknown_request"
NO_ROLE = "none"

PENDING = Gauge(
    "tradelane_approval_requests_pending",
    "Approval requests open now (read from the database on every scrape).",
)
DECISIONS = Counter(
    "tradelane_approval_decisions_total",
    "Approval decisions applied, by the role they counted in and their outcome "
    "(counted, approved, rejected, already_counted, refused_*, unknown_request).",
    ["role", "outcome"],
)
TIME_TO_DECISION = Histogram(
    "tradelane_approval_time_to_decision_seconds",
    "From a request opening to its end, by how it ended (approved, rejected, expired).",
    ["outcome"],
    buckets=(1, 10, 60, 300, 900, 3600, 4 * 3600, 8 * 3600, 86400, 2 * 86400, 7 * 86400),
)
EXPIRIES = Counter("tradelane_approval_expiries_total", "Approval requests that ran out of time.")
ESCALATIONS = Counter(
    "tradelane_approval_escalations_total", "Steps escalated to their escalation role."
)
REMINDERS = Counter("tradelane_approval_reminders_total", "Reminders sent before a deadline.")

for _outcome in (*Outcome, UNKNOWN_REQUEST):
    DECISIONS.labels(NO_ROLE, _outcome)  # every outcome shows on /metrics from the start, at 0
for _role in (Role.MANAGER, Role.FINANCE, Role.DIRECTOR):
    for _counted in (Outcome.COUNTED, Outcome.APPROVED, Outcome.REJECTED):
        DECISIONS.labels(_role.value, _counted.value)
for _state in (RequestState.APPROVED, RequestState.REJECTED, RequestState.EXPIRED):
    TIME_TO_DECISION.labels(_state.value)
