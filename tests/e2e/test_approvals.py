"""B2B approvals end to end: policies, quorums, vetoes, delegation and the clock, over real Kafka.

Each test sets up its own business account and approval policy (unique ids),
publishes them as CRM would, and then acts only as a shop (orders), an
approver (decisions on the topic or over the token-checked API) and ops
(restarts, `/metrics`). Waits are conditions on what the system publishes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest

from shared.contract import (
    Account,
    ApprovalDecision,
    ApprovalPolicy,
    Channel,
    Delegation,
    Member,
    NoticeKind,
    OrderCancelled,
    OrderPriced,
    OrderState,
    OrderSubmitted,
    Product,
    ReasonCode,
    Role,
    StockLevel,
)
from shared.settings import DEV_TOKEN_SECRET
from shared.tokens import AUDIENCE, issue_token
from shared.topics import (
    ACCOUNTS,
    APPROVAL_DECISIONS,
    APPROVAL_POLICIES,
    DELEGATIONS,
    ORDERS_CANCELLED,
    ORDERS_PRICED,
    ORDERS_SUBMITTED,
    PRODUCTS,
    STOCK,
    STOCK_MOVES,
)
from tests.e2e.conftest import TOKEN_SECRET, Pipeline
from tools.seed import b2b_order, b2c_order

DRILL = "DRILL-18V"
"""129.00 EUR list price, 5000 in stock at dc-kassel: ten of them make a 1290.00 order."""


class Business:
    """One test's own B2B account: members named `<account>-<name>`, and its policy."""

    def __init__(self, pipeline: Pipeline, label: str, members: dict[str, list[Role]]) -> None:
        self.pipeline = pipeline
        self.account_id = f"{label}-{pipeline.run_id}-{uuid.uuid4().hex[:4]}"
        self.roles = {name: [Role.BUYER] for name in ("buyer",)} | members
        self.publish_account()

    def id(self, name: str) -> str:
        return f"{self.account_id}-{name}"

    def publish_account(self, without: tuple[str, ...] = ()) -> None:
        members = [
            Member(member_id=self.id(name), name=name.title(), roles=roles)
            for name, roles in self.roles.items()
            if name not in without
        ]
        self.pipeline.publish_reference(
            ACCOUNTS,
            Account.new(
                account_id=self.account_id,
                name=f"{self.account_id} GmbH",
                channel=Channel.B2B,
                payment_terms=["NET30", "NET60"],
                members=members,
            ),
        )

    def publish_policy(self, version: int = 1, **policy: Any) -> None:
        self.pipeline.publish_reference(
            APPROVAL_POLICIES,
            ApprovalPolicy.new(account_id=self.account_id, version=version, **policy),
        )

    def order(self, label: str, lines: list[tuple[str, int]] | None = None, **extra: Any) -> str:
        """Submit an order by this account's buyer; returns its id."""
        order = b2b_order(
            self.pipeline.order_id(label),
            lines or [(DRILL, 10)],
            account_id=self.account_id,
            buyer_id=self.id("buyer"),
        )
        if extra:
            order = OrderSubmitted.model_validate({**order.model_dump(by_alias=True), **extra})
        self.pipeline.publisher.publish(ORDERS_SUBMITTED, order)
        self.pipeline.publisher.flush()
        return order.order_id


def rule(
    rule_id: str, steps: list[dict[str, Any]], when: dict[str, Any] | None = None, **more: Any
) -> dict[str, Any]:
    return {"rule_id": rule_id, "version": 1, "when": when or {}, "steps": steps, **more}


def step(role: str, quorum: int = 1, **more: Any) -> dict[str, Any]:
    return {"step_id": role, "role": role, "quorum": quorum, **more}


def awaiting(pipeline: Pipeline, order_id: str) -> Any:
    status = pipeline.watch.wait_for_status(order_id, OrderState.AWAITING_APPROVAL)
    assert status.approval is not None
    return status.approval


def step_state(progress: Any, step_id: str) -> str:
    return str(next(s.state for s in progress.steps if s.step_id == step_id))


def test_sequential_manager_then_finance_with_audit_on_api_and_status(pipeline: Pipeline) -> None:
    acme = Business(pipeline, "seq", {"boss": [Role.MANAGER], "cfo": [Role.FINANCE]})
    acme.publish_policy(
        rules=[
            rule(
                "big-orders",
                [step("manager"), step("finance")],
                {"total_at_least": {"EUR": "1000"}},
            )
        ]
    )
    order_id = acme.order("seq")
    opened = awaiting(pipeline, order_id)
    assert [(s.step_id, s.state) for s in opened.steps] == [
        ("manager", "open"),
        ("finance", "waiting"),
    ]
    assert opened.rules[0].rule_id == "big-orders" and opened.rules[0].version == 1
    assert "1290.00 EUR is at or above 1000" in opened.rules[0].why

    status, body = pipeline.decide_over_http(order_id, acme.id("cfo"))
    assert (status, body["outcome"]) == (409, "refused_not_open_yet"), body

    pipeline.decide(order_id, acme.id("boss"), comment="fits the site budget")
    pipeline.wait_for_progress(
        order_id, "finance open", lambda p: step_state(p, "finance") == "open"
    )
    status, body = pipeline.decide_over_http(order_id, acme.id("cfo"), comment="paid in Q4")
    assert status == 202, body

    approved = pipeline.watch.wait_for_status(order_id, OrderState.APPROVED)
    assert approved.approval is not None
    assert approved.approval.approved_by == [acme.id("boss"), acme.id("cfo")]
    published = [(h.kind, h.approver_id, h.step_id, h.outcome) for h in approved.approval.history]
    assert published == [
        ("opened", None, None, None),
        ("decision", acme.id("boss"), "manager", "counted"),
        ("decision", acme.id("cfo"), "finance", "approved"),
    ]
    trail = pipeline.approval(order_id, acme.id("buyer"))
    assert trail["state"] == "approved"
    assert "rule big-orders v1" in trail["history"][0]["why"]
    decided = trail["history"][1]
    assert decided["role"] == "manager" and decided["comment"] == "fits the site budget"
    assert decided["decision"] == "approve" and decided["at"]


def test_parallel_steps_are_open_together_and_one_person_counts_towards_one_step(
    pipeline: Pipeline,
) -> None:
    acme = Business(
        pipeline,
        "par",
        {"both": [Role.MANAGER, Role.FINANCE], "cfo": [Role.FINANCE], "boss": [Role.MANAGER]},
    )
    acme.publish_policy(rules=[rule("all", [step("manager"), step("finance")], order="parallel")])
    order_id = acme.order("par")
    opened = awaiting(pipeline, order_id)
    assert [s.state for s in opened.steps] == ["open", "open"]

    pipeline.decide(order_id, acme.id("cfo"))
    pipeline.wait_for_progress(
        order_id, "finance signed", lambda p: step_state(p, "finance") == "satisfied"
    )
    pipeline.decide(order_id, acme.id("both"))  # manager and finance: counts once, as manager

    approved = pipeline.watch.wait_for_status(order_id, OrderState.APPROVED)
    assert approved.approval is not None
    signed = {s.step_id: [x.approver_id for x in s.signed_by] for s in approved.approval.steps}
    assert signed == {"manager": [acme.id("both")], "finance": [acme.id("cfo")]}


def test_two_of_three_managers_approve_and_a_repeat_does_not_count(pipeline: Pipeline) -> None:
    managers = {name: [Role.MANAGER] for name in ("ann", "bob", "cem")}
    acme = Business(pipeline, "quorum", managers)
    acme.publish_policy(rules=[rule("two-managers", [step("manager", quorum=2)])])
    order_id = acme.order("quorum")
    awaiting(pipeline, order_id)

    pipeline.decide(order_id, acme.id("ann"))
    pipeline.decide(order_id, acme.id("ann"))
    pipeline.watch.wait_until(
        "ann's repeat in the audit",
        lambda: (
            [h["outcome"] for h in pipeline.approval(order_id, acme.id("ann"))["history"]][1:]
            == ["counted", "already_counted"]
        ),
    )
    assert "approved" not in pipeline.watch.history(order_id)

    status, body = pipeline.decide_over_http(order_id, acme.id("cem"))
    assert status == 202, body
    approved = pipeline.watch.wait_for_status(order_id, OrderState.APPROVED)
    assert approved.approval is not None
    assert approved.approval.approved_by == [acme.id("ann"), acme.id("cem")]
    status, body = pipeline.decide_over_http(order_id, acme.id("bob"))
    assert (status, body["outcome"]) == (409, "refused_closed"), body


def test_one_eligible_reject_vetoes_after_an_approval(pipeline: Pipeline) -> None:
    acme = Business(pipeline, "veto", {"boss": [Role.MANAGER], "cfo": [Role.FINANCE]})
    acme.publish_policy(rules=[rule("chain", [step("manager"), step("finance")])])
    order_id = acme.order("veto")
    awaiting(pipeline, order_id)
    pipeline.decide(order_id, acme.id("boss"))
    pipeline.wait_for_progress(
        order_id, "finance open", lambda p: step_state(p, "finance") == "open"
    )
    status, body = pipeline.decide_over_http(order_id, acme.id("cfo"), "reject", "no budget")
    assert status == 202, body

    rejected = pipeline.watch.wait_for_status(order_id, OrderState.REJECTED)
    assert rejected.reason is not None
    assert rejected.reason.code is ReasonCode.APPROVAL_REJECTED
    assert rejected.reason.message == f"rejected by {acme.id('cfo')}: no budget"


@pytest.fixture
def scarce_product(pipeline: Pipeline) -> Iterator[str]:
    """A product of its own with 5 units at the central DC, 300.00 EUR each."""
    sku = f"PUMP-{pipeline.run_id}-{uuid.uuid4().hex[:4]}"
    pipeline.publish_reference(
        PRODUCTS,
        Product.new(sku=sku, name="Pump", category="machines/pumps", unit_weight_kg="12.5"),
    )
    pipeline.publish_reference(STOCK, StockLevel.new(sku=sku, warehouse_id="dc-kassel", on_hand=5))
    pipeline.add_list_price(sku, "300.00")
    yield sku


def test_an_unanswered_request_is_reminded_then_expires_and_its_stock_is_released(
    pipeline: Pipeline, scarce_product: str
) -> None:
    acme = Business(pipeline, "expiry", {"boss": [Role.MANAGER]})
    acme.publish_policy(
        expires_after="PT4S", remind_before="PT3S", rules=[rule("any", [step("manager")])]
    )
    order_id = acme.order("expiry", [(scarce_product, 5)])
    opened = awaiting(pipeline, order_id)

    reminder = pipeline.watch.wait_until(
        "a reminder", lambda: next(iter(pipeline.watch.notices[order_id]), None)
    )
    assert reminder.kind is NoticeKind.REMINDER
    assert reminder.recipients == [acme.id("boss")]
    assert reminder.deadline == opened.deadline

    expired = pipeline.watch.wait_for_status(order_id, OrderState.REJECTED)
    assert expired.reason is not None and expired.reason.code is ReasonCode.APPROVAL_EXPIRED
    assert expired.approval is not None and expired.approval.deadline == opened.deadline
    assert [h.kind for h in expired.approval.history] == ["opened", "reminder", "expiry"]
    assert expired.approval.history[-1].at >= opened.deadline

    pipeline.fleet.wait_caught_up([STOCK_MOVES], services=["catalog"])
    again = b2c_order(pipeline.order_id("after-expiry"), [(scarce_product, 5)])
    pipeline.publisher.publish(ORDERS_SUBMITTED, again)
    pipeline.watch.wait_for_status(again.order_id, OrderState.APPROVED)


def test_a_step_escalates_to_the_director_after_its_delay(pipeline: Pipeline) -> None:
    acme = Business(pipeline, "esc", {"cfo": [Role.FINANCE], "dora": [Role.DIRECTOR]})
    acme.publish_policy(
        rules=[
            rule(
                "finance-or-later-director",
                [step("finance", escalate_after="PT6S", escalation_role="director")],
            )
        ]
    )
    order_id = acme.order("esc")
    awaiting(pipeline, order_id)
    status, body = pipeline.decide_over_http(order_id, acme.id("dora"))
    assert (status, body["outcome"]) == (403, "refused_not_eligible"), body

    notice = pipeline.watch.wait_until(
        "an escalation", lambda: next(iter(pipeline.watch.notices[order_id]), None)
    )
    assert notice.kind is NoticeKind.ESCALATION and notice.step_id == "finance"
    assert acme.id("dora") in notice.recipients
    pipeline.wait_for_progress(order_id, "escalated", lambda p: p.steps[0].escalated)

    status, body = pipeline.decide_over_http(order_id, acme.id("dora"), comment="cfo is away")
    assert status == 202, body
    approved = pipeline.watch.wait_for_status(order_id, OrderState.APPROVED)
    assert approved.approval is not None
    [signature] = approved.approval.steps[0].signed_by
    assert signature.approver_id == acme.id("dora")
    assert [h.kind for h in approved.approval.history] == ["opened", "escalation", "decision"]
    assert approved.approval.history[-1].role == "director"


def test_pending_requests_survive_a_restart_of_approvals_with_their_deadlines(
    pipeline: Pipeline,
) -> None:
    keeper = Business(pipeline, "keep", {"boss": [Role.MANAGER]})
    keeper.publish_policy(expires_after="PT10M", rules=[rule("any", [step("manager")])])
    lapser = Business(pipeline, "lapse", {"boss": [Role.MANAGER]})
    lapser.publish_policy(expires_after="PT8S", rules=[rule("any", [step("manager")])])
    to_approve, to_expire = keeper.order("keep"), lapser.order("lapse")
    deadline = awaiting(pipeline, to_expire).deadline
    awaiting(pipeline, to_approve)

    pipeline.fleet.kill("approvals")
    pipeline.fleet.start(["approvals"])

    status, body = pipeline.decide_over_http(to_approve, keeper.id("boss"))
    assert status == 202, body
    pipeline.watch.wait_for_status(to_approve, OrderState.APPROVED)
    expired = pipeline.watch.wait_for_status(to_expire, OrderState.REJECTED)
    assert expired.reason is not None and expired.reason.code is ReasonCode.APPROVAL_EXPIRED
    assert expired.approval is not None and expired.approval.deadline == deadline
    assert expired.approval.history[-1].at >= deadline
    assert pipeline.watch.history(to_expire).count("rejected") == 1


def test_a_policy_change_leaves_pending_requests_as_they_were_opened(pipeline: Pipeline) -> None:
    acme = Business(pipeline, "change", {"boss": [Role.MANAGER], "cfo": [Role.FINANCE]})
    acme.publish_policy(version=1, rules=[rule("v1", [step("manager")])])
    before = acme.order("before")
    assert awaiting(pipeline, before).policy_version == 1

    acme.publish_policy(version=2, rules=[rule("v2", [step("manager"), step("finance")])])
    after = acme.order("after")
    assert awaiting(pipeline, after).policy_version == 2

    pipeline.decide(before, acme.id("boss"))
    pipeline.decide(after, acme.id("boss"))
    approved = pipeline.watch.wait_for_status(before, OrderState.APPROVED)
    assert approved.approval is not None and approved.approval.rules[0].rule_id == "v1"
    pipeline.wait_for_progress(after, "finance open", lambda p: step_state(p, "finance") == "open")
    assert "approved" not in pipeline.watch.history(after)


def test_a_member_removed_from_the_account_can_no_longer_decide(pipeline: Pipeline) -> None:
    acme = Business(pipeline, "leaver", {"boss": [Role.MANAGER], "old": [Role.MANAGER]})
    acme.publish_policy(rules=[rule("any", [step("manager")])])
    order_id = acme.order("leaver")
    opened = awaiting(pipeline, order_id)
    assert opened.eligible_approvers == [acme.id("boss"), acme.id("old")]

    acme.publish_account(without=("old",))
    status, body = pipeline.decide_over_http(order_id, acme.id("old"))
    assert status == 404, body  # to a non-member the request does not exist
    assert body == {"error": f"no approval request for order {order_id}"}
    assert (
        pipeline.http("approvals", "GET", f"/approvals/{order_id}", as_approver=acme.id("old"))[0]
        == 404
    )


def test_a_request_is_shown_only_to_members_of_its_account(pipeline: Pipeline) -> None:
    """Anyone else gets the 404 of an order that does not exist: no account, buyer or total."""
    acme = Business(pipeline, "private", {"boss": [Role.MANAGER]})
    other = Business(pipeline, "other", {"boss": [Role.MANAGER]})
    acme.publish_policy(rules=[rule("any", [step("manager")])])
    order_id = acme.order("private")
    awaiting(pipeline, order_id)
    path = f"/approvals/{order_id}"

    status, body = pipeline.http("approvals", "GET", path)
    assert status == 401 and "Authorization" in body["error"]
    status, body = pipeline.http("approvals", "GET", path, as_approver=acme.id("buyer"))
    assert status == 200 and body["account_id"] == acme.account_id
    assert pipeline.http("approvals", "GET", path, as_approver=acme.id("boss"))[0] == 200

    unknown = pipeline.order_id("nothing")
    status, missing = pipeline.http(
        "approvals", "GET", f"/approvals/{unknown}", as_approver=acme.id("boss")
    )
    assert (status, missing) == (404, {"error": f"no approval request for order {unknown}"})
    for stranger in (other.id("boss"), "acme-manager", "nobody-at-all"):
        status, body = pipeline.http("approvals", "GET", path, as_approver=stranger)
        assert (status, body) == (404, {"error": f"no approval request for order {order_id}"})

    # Deciding is the same: a stranger cannot tell an open request from a missing one...
    status, body = pipeline.decide_over_http(order_id, other.id("boss"))
    assert (status, body) == (404, {"error": f"no approval request for order {order_id}"})
    pipeline.decide(order_id, acme.id("boss"))
    pipeline.watch.wait_for_status(order_id, OrderState.APPROVED)
    # ...or from a closed one (a member hears why: it is closed)
    status, body = pipeline.decide_over_http(order_id, other.id("boss"))
    assert (status, body) == (404, {"error": f"no approval request for order {order_id}"})
    status, body = pipeline.decide_over_http(order_id, acme.id("buyer"))
    assert (status, body["outcome"]) == (409, "refused_closed")


def test_a_decision_id_names_one_decision_on_one_order(pipeline: Pipeline) -> None:
    """A retry is answered like the first attempt and applied once; reusing the id for
    another order, or for another decision, is refused (it used to vanish as a duplicate)."""
    acme = Business(pipeline, "idem", {"boss": [Role.MANAGER], "cfo": [Role.FINANCE]})
    acme.publish_policy(rules=[rule("chain", [step("manager"), step("finance")])])
    first, second = acme.order("idem-1"), acme.order("idem-2")
    awaiting(pipeline, first)
    awaiting(pipeline, second)
    decision_id = str(uuid.uuid4())
    body = {
        "approver_id": acme.id("boss"),
        "decision": "approve",
        "comment": "ok",
        "decision_id": decision_id,
    }

    def post(order_id: str, sent: dict[str, Any]) -> tuple[int, Any]:
        path = f"/approvals/{order_id}/decisions"
        return pipeline.http("approvals", "POST", path, sent, as_approver=acme.id("boss"))

    assert post(first, body) == (202, {"event_id": decision_id})
    assert post(first, body) == (202, {"event_id": decision_id})  # a retry before it is applied
    pipeline.wait_for_progress(
        first, "manager signed", lambda p: step_state(p, "manager") == "satisfied"
    )
    assert post(first, body) == (202, {"event_id": decision_id})  # and after

    status, answer = post(second, body)
    assert (status, answer["outcome"]) == (409, "decision_id_reused"), answer
    assert decision_id in answer["error"] and first not in answer["error"]
    status, answer = post(first, body | {"decision": "reject", "comment": "changed my mind"})
    assert (status, answer["outcome"]) == (409, "decision_id_reused"), answer

    fresh = str(uuid.uuid4())
    assert post(second, body | {"decision_id": fresh}) == (202, {"event_id": fresh})
    pipeline.wait_for_progress(
        second, "manager signed", lambda p: step_state(p, "manager") == "satisfied"
    )
    # an id that came over the topic as a decision's event_id is taken as well
    on_topic = ApprovalDecision.new(order_id=second, approver_id=acme.id("cfo"), decision="approve")
    pipeline.publisher.publish(APPROVAL_DECISIONS, on_topic)
    pipeline.publisher.flush()
    pipeline.watch.wait_for_status(second, OrderState.APPROVED)
    status, answer = post(first, body | {"decision_id": str(on_topic.event_id)})
    assert (status, answer["outcome"]) == (409, "decision_id_reused"), answer

    decisions = [
        (h["approver_id"], h["outcome"])
        for h in pipeline.approval(first, acme.id("boss"))["history"]
        if h["kind"] == "decision"
    ]
    assert decisions == [(acme.id("boss"), "counted")]
    assert "rejected" not in pipeline.watch.history(first)


def test_a_delegate_decides_for_an_approver_out_of_office(pipeline: Pipeline) -> None:
    acme = Business(pipeline, "deleg", {"boss": [Role.MANAGER], "deputy": [Role.BUYER]})
    acme.publish_policy(rules=[rule("any", [step("manager")])])
    now = datetime.now(UTC)
    pipeline.publish_reference(
        DELEGATIONS,
        Delegation.new(
            account_id=acme.account_id,
            delegator_id=acme.id("boss"),
            delegate_id=acme.id("deputy"),
            starts_at=now - timedelta(minutes=1),
            ends_at=now + timedelta(hours=1),
            reason="holiday",
        ),
    )
    order_id = acme.order("deleg")
    awaiting(pipeline, order_id)

    status, inbox = pipeline.http(
        "approvals",
        "GET",
        f"/approvals?approver_id={acme.id('deputy')}&status=pending",
        as_approver=acme.id("deputy"),
    )
    assert status == 200, inbox
    [item] = [r for r in inbox["requests"] if r["order_id"] == order_id]
    assert item["acting_for"] == [acme.id("boss")]

    status, body = pipeline.decide_over_http(order_id, acme.id("deputy"), comment="for boss")
    assert status == 202, body
    approved = pipeline.watch.wait_for_status(order_id, OrderState.APPROVED)
    assert approved.approval is not None
    [signature] = approved.approval.steps[0].signed_by
    assert (signature.approver_id, signature.on_behalf_of) == (acme.id("deputy"), acme.id("boss"))
    decision = approved.approval.history[-1]
    assert (decision.approver_id, decision.on_behalf_of) == (acme.id("deputy"), acme.id("boss"))


def test_the_inbox_lists_what_an_approver_may_decide_now(pipeline: Pipeline) -> None:
    acme = Business(pipeline, "inbox", {"boss": [Role.MANAGER], "cfo": [Role.FINANCE]})
    acme.publish_policy(rules=[rule("chain", [step("manager"), step("finance")])])
    order_id = acme.order("inbox")
    awaiting(pipeline, order_id)

    def pending(who: str) -> list[dict[str, Any]]:
        path = f"/approvals?approver_id={acme.id(who)}&status=pending"
        status, body = pipeline.http("approvals", "GET", path, as_approver=acme.id(who))
        assert status == 200, body
        return [r for r in body["requests"] if r["order_id"] == order_id]

    [item] = pending("boss")
    assert item["buyer_id"] == acme.id("buyer")
    assert item["reference"] == f"PO-{order_id}"
    assert item["totals"]["total"] == "1290.00"
    assert item["lines"] == [
        {
            "sku": DRILL,
            "quantity": 10,
            "unit_price": "129.00",
            "line_total": "1290.00",
            "discount": "0",
            "price_source": "list:list-EUR",
            "category": "tools/power",
        }
    ]
    assert item["payment"]["terms"] == "NET30" and item["payment"]["schedule"][0]["kind"] == "full"
    assert item["credit_warning"] is None and item["credit_limit_override"] is False
    assert item["your_steps"] == ["manager"] and item["age_seconds"] >= 0 and item["deadline"]
    assert pending("cfo") == []  # finance's step is not open yet
    assert pending("buyer") == []

    pipeline.decide(order_id, acme.id("boss"))
    pipeline.wait_for_progress(
        order_id, "finance open", lambda p: step_state(p, "finance") == "open"
    )
    assert pending("boss") == []
    assert [i["your_steps"] for i in pending("cfo")] == [["finance"]]


def test_the_api_wants_the_approvers_own_token(pipeline: Pipeline) -> None:
    acme = Business(pipeline, "auth", {"boss": [Role.MANAGER]})
    inbox = f"/approvals?approver_id={acme.id('boss')}"
    decisions = "/approvals/any-order/decisions"
    body = {"approver_id": acme.id("boss"), "decision": "approve"}

    assert pipeline.http("approvals", "GET", inbox)[0] == 401
    forged = issue_token("someone-elses-secret-0123456789abcdef", acme.id("boss"))
    status, answer = pipeline.http(
        "approvals", "GET", inbox, headers={"Authorization": f"Bearer {forged}"}
    )
    assert status == 401 and "Signature verification failed" in answer["error"]
    issued = datetime.now(UTC)
    a_month = {"iat": issued, "exp": issued + timedelta(days=30)}
    lasting = jwt.encode(
        {"sub": acme.id("boss"), "aud": AUDIENCE, **a_month}, TOKEN_SECRET, algorithm="HS256"
    )
    status, answer = pipeline.http(
        "approvals", "GET", inbox, headers={"Authorization": f"Bearer {lasting}"}
    )
    assert status == 401 and "at most 24 hours" in answer["error"]
    assert pipeline.http("approvals", "POST", decisions, body)[0] == 401
    assert pipeline.http("approvals", "GET", inbox, as_approver=acme.id("buyer"))[0] == 403
    status, answer = pipeline.http(
        "approvals", "POST", decisions, body, as_approver=acme.id("buyer")
    )
    assert status == 403 and "decide only in your own name" in answer["error"]
    status, answer = pipeline.http(
        "approvals", "GET", f"{inbox}&status=everything", as_approver=acme.id("boss")
    )
    assert status == 400 and "status: expected one of pending, decided" in answer["error"]


def test_a_cost_centre_over_its_budget_needs_the_director(pipeline: Pipeline) -> None:
    acme = Business(pipeline, "budget", {"dora": [Role.DIRECTOR]})
    acme.publish_policy(
        spending_limits=[
            {
                "scope": "cost_centre",
                "subject": "CC-7",
                "amount": "2000",
                "currency": "EUR",
                "period": "monthly",
            }
        ],
        rules=[rule("budget", [step("director")], {"cost_centre_over_budget": True})],
    )
    first = acme.order("first", cost_centre="CC-7")  # 1290 of 2000: within budget
    pipeline.watch.wait_for_status(first, OrderState.APPROVED)
    other_centre = acme.order("other", cost_centre="CC-8")
    pipeline.watch.wait_for_status(other_centre, OrderState.APPROVED)

    second = acme.order("second", cost_centre="CC-7")  # 2580 of 2000: over
    opened = awaiting(pipeline, second)
    assert "cost centre CC-7 would spend 2580.00 EUR this month" in opened.rules[0].why


def test_a_buyer_over_the_daily_limit_needs_the_manager(pipeline: Pipeline) -> None:
    acme = Business(pipeline, "limit", {"boss": [Role.MANAGER]})
    acme.publish_policy(
        spending_limits=[
            {"scope": "buyer", "amount": "2000", "currency": "EUR", "period": "daily"}
        ],
        rules=[rule("limit", [step("manager")], {"buyer_over_spending_limit": True})],
    )
    first = acme.order("first")  # 1290 of 2000 today
    pipeline.watch.wait_for_status(first, OrderState.APPROVED)
    second = acme.order("second")  # 2580 of 2000 today: over
    opened = awaiting(pipeline, second)
    assert f"buyer {acme.id('buyer')} would spend 2580.00 EUR this day" in opened.rules[0].why

    pipeline.publisher.publish(
        ORDERS_CANCELLED, OrderCancelled.new(order_id=second, account_id=acme.account_id)
    )
    pipeline.watch.wait_for_status(second, OrderState.CANCELLED)
    pipeline.watch.wait_until(
        "the request withdrawn",
        lambda: pipeline.approval(second, acme.id("boss"))["state"] == "withdrawn",
    )


def test_an_order_pricing_let_over_the_credit_limit_needs_finance(pipeline: Pipeline) -> None:
    """Pricing has no credit limits yet, so this test speaks for it on `orders.priced`."""
    acme = Business(pipeline, "credit", {"cfo": [Role.FINANCE]})
    acme.publish_policy(rules=[rule("credit", [step("finance")], {"credit_limit_override": True})])
    within, over = pipeline.order_id("within"), pipeline.order_id("over")
    for order_id, flagged in ((within, False), (over, True)):
        order = b2b_order(order_id, [(DRILL, 1)], account_id=acme.account_id).order()
        order = order.model_copy(update={"buyer_id": acme.id("buyer")})
        line = {
            "sku": DRILL,
            "quantity": 1,
            "warehouse_id": "dc-kassel",
            "category": "tools/power",
            "unit_weight_kg": "1.8",
            "unit_price": "129.00",
            "line_total": "129.00",
            "price_source": "list:list-EUR",
        }
        pipeline.publisher.publish(
            ORDERS_PRICED,
            OrderPriced.new(
                order=order,
                lines=[line],
                totals={"currency": "EUR", "subtotal": "129.00", "total": "129.00"},
                credit_limit_override=flagged,
            ),
        )
    pipeline.publisher.flush()

    pipeline.watch.wait_for_status(within, OrderState.APPROVED)
    opened = awaiting(pipeline, over)
    assert opened.rules[0].why == "pricing flagged a credit-limit override"


def test_approval_metrics_are_exposed(pipeline: Pipeline) -> None:
    text = pipeline.metrics("approvals")
    for name in (
        "tradelane_approval_requests_pending",
        "tradelane_approval_decisions_total",
        "tradelane_approval_time_to_decision_seconds_bucket",
        "tradelane_approval_expiries_total",
        "tradelane_approval_escalations_total",
        "tradelane_approval_reminders_total",
    ):
        assert name in text
    assert 'tradelane_approval_decisions_total{outcome="approved",role="manager"}' in text


def test_approvals_will_not_start_with_the_development_secret_on_an_open_port(
    tmp_path: Path,
) -> None:
    """Refused before it touches Kafka or its database: the broker here does not even exist."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"APPROVALS_TOKEN_SECRET", "TRADELANE_DEV_MODE", "DATABASE_URL"}
    }
    env |= {
        "WEB_BIND": "0.0.0.0",
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
        "TRADELANE_DATA_DIR": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "-m", "services.approvals"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "bad configuration: APPROVALS_TOKEN_SECRET" in output, output
    assert DEV_TOKEN_SECRET not in output
    assert not (tmp_path / "approvals.db").exists()
