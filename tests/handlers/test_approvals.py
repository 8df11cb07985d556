"""Approvals' handlers and its request clock, in-process on SQLite: every incoming event and what
approvals says to it, with the demo accounts and policies of `tools.seed`.

ACME (policy v1): 5000 EUR and more needs the manager, then finance (finance
escalates to the director after a day); a buyer over 20000 EUR a month needs the
manager; requests expire after three days with a reminder one day before.
Globex: 2000 EUR and more needs a manager and finance in parallel, two people.
"""

from __future__ import annotations

import html
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from services.approvals import inbox, store
from services.approvals.app import NAME, create_service
from services.approvals.clock import advance_due
from services.approvals.domain import ApprovalRequest, Outcome, RequestState
from services.approvals.handlers import HANDLERS
from services.approvals.web import Session, render_payment, render_request
from services.pricing.terms import payment_plan
from shared.contract import (
    Account,
    ApprovalDecision,
    ApprovalDecisionKind,
    ApprovalMode,
    ApprovalNotice,
    ApprovalPolicy,
    ApprovalProgress,
    AuditEntry,
    Channel,
    Delegation,
    Member,
    NoticeKind,
    OrderApproved,
    OrderPriced,
    OrderState,
    OrderStatusChanged,
    OrderSubmitted,
    PricedLine,
    PromotionKind,
    PromotionOutcome,
    PromotionScope,
    ReasonCode,
    Role,
    Totals,
)
from shared.settings import DEV_TOKEN_SECRET, ConfigError, Settings
from shared.topics import (
    ACCOUNTS,
    APPROVAL_DECISIONS,
    APPROVAL_NOTICES,
    APPROVAL_POLICIES,
    DELEGATIONS,
    HOLD_MOVES,
    ORDERS_APPROVED,
    ORDERS_PRICED,
    ORDERS_STATUS,
)
from tests.handlers.conftest import (
    PRICED_ON,
    deliver_invalid,
    on_sqlite,
    priced,
    resent,
    status_from,
)
from tests.support.bench import ServiceBench
from tools.seed import ACME, GLOBEX, accounts, approval_policies, b2b_order, b2c_order

APPROVE, REJECT = ApprovalDecisionKind.APPROVE, ApprovalDecisionKind.REJECT
LARGE = [("BOLT-M8-100", 400)]
"""5160.00 EUR at list price: ACME's manager, then finance; Globex's manager and finance."""
SMALL = [("BOLT-M8-100", 100)]
"""1290.00 EUR: under every threshold."""
JUST_UNDER = [("BOLT-M8-100", 387)]
"""4992.30 EUR: under ACME's 5000, but four of them take its buyer near the 20000 a month."""
DAY = timedelta(days=1)


@pytest.fixture
async def approvals(tmp_path: Path) -> AsyncIterator[ServiceBench]:
    async with on_sqlite(tmp_path, NAME, store.Base.metadata, HANDLERS) as bench:
        await bench.deliver_all(ACCOUNTS, accounts())
        await bench.deliver_all(APPROVAL_POLICIES, approval_policies())
        yield bench


async def order(bench: ServiceBench, submitted: OrderSubmitted) -> str:
    await bench.deliver(ORDERS_PRICED, priced(submitted))
    return submitted.order_id


async def decide(
    bench: ServiceBench,
    order_id: str,
    approver_id: str,
    decision: ApprovalDecisionKind = APPROVE,
    comment: str | None = None,
) -> ApprovalDecision:
    event = ApprovalDecision.new(
        order_id=order_id, approver_id=approver_id, decision=decision, comment=comment
    )
    await bench.deliver(APPROVAL_DECISIONS, event)
    return event


async def ended_elsewhere(
    bench: ServiceBench, submitted: OrderSubmitted, state: OrderState = OrderState.CANCELLED
) -> None:
    """Another service ends the order (catalog reports a shop's cancellation, for one)."""
    await bench.hear(status_from("catalog", submitted.order(), state))


async def progress(bench: ServiceBench, order_id: str) -> ApprovalProgress:
    """The approval on the order's latest status."""
    latest = (await bench.statuses(order_id))[-1]
    assert latest.approval is not None
    return latest.approval


async def request_of(bench: ServiceBench, order_id: str) -> ApprovalRequest:
    async with bench.db.sessions() as session:
        request = await store.find_request(session, order_id)
    assert request is not None
    return request


async def audit(bench: ServiceBench, order_id: str) -> list[AuditEntry]:
    async with bench.db.sessions() as session:
        return await store.history(session, order_id)


async def outcomes(bench: ServiceBench, order_id: str) -> list[str | None]:
    return [entry.outcome for entry in await audit(bench, order_id) if entry.kind == "decision"]


async def notices(bench: ServiceBench) -> list[ApprovalNotice]:
    return await bench.published(APPROVAL_NOTICES, ApprovalNotice)


def step_states(approval: ApprovalProgress) -> dict[str, str]:
    return {step.step_id: step.state for step in approval.steps}


# --- the gate ------------------------------------------------------------------------------------


async def test_a_consumer_order_is_approved_at_once(approvals: ServiceBench) -> None:
    order_id = await order(approvals, b2c_order("c-1", [("GLOVE-L", 3)]))
    [approved] = await approvals.published(ORDERS_APPROVED, OrderApproved)
    assert (approved.order.order_id, approved.approval_mode) == (order_id, ApprovalMode.AUTOMATIC)
    assert approved.approved_by == []
    [status] = await approvals.statuses(order_id)
    assert (status.status, status.reported_by, status.approval) == (
        OrderState.APPROVED,
        "approvals",
        None,
    )
    assert status.totals == approved.totals and status.lines == approved.lines
    assert status.payment == approved.payment == priced(b2c_order("c-1", [("GLOVE-L", 3)])).payment


@pytest.mark.parametrize("holds", [True, False], ids=["holds", "no-holds"])
async def test_an_approval_is_repeated_for_pricing_only_when_pricing_holds_something(
    approvals: ServiceBench, holds: bool
) -> None:
    """Every approval is on `orders.status`; on `orders.status.holds`, which only pricing
    reads to move its holds, only if the priced order says pricing holds something."""
    submitted = b2c_order("c-1", [("GLOVE-L", 3)])
    await approvals.deliver(ORDERS_PRICED, priced(submitted).model_copy(update={"holds": holds}))
    [status] = await approvals.statuses(submitted.order_id)
    assert status.status is OrderState.APPROVED
    repeated = await approvals.published(HOLD_MOVES, OrderStatusChanged)
    assert [r.order_id for r in repeated] == ([submitted.order_id] if holds else [])


async def test_the_payment_plan_travels_with_the_order_to_its_approvers_and_on(
    approvals: ServiceBench,
) -> None:
    """Approvers see how the order is paid; fulfillment and shops get the plan pricing made."""
    submitted = b2b_order("b-plan", LARGE, terms="DEPOSIT30_NET30")
    await approvals.deliver(ORDERS_PRICED, priced(submitted))
    [awaiting] = await approvals.statuses("b-plan")
    assert awaiting.payment is not None and awaiting.payment.terms == "DEPOSIT30_NET30"
    assert [d.amount for d in awaiting.payment.schedule] == [Decimal("1548.00"), Decimal("3612.00")]
    await decide(approvals, "b-plan", "acme-manager")
    await decide(approvals, "b-plan", "acme-finance")
    [approved] = await approvals.published(ORDERS_APPROVED, OrderApproved)
    assert approved.payment == awaiting.payment
    assert (await approvals.statuses("b-plan"))[-1].payment == awaiting.payment


async def test_a_business_order_under_its_policys_threshold_is_approved_at_once(
    approvals: ServiceBench,
) -> None:
    order_id = await order(approvals, b2b_order("b-1", SMALL))
    [approved] = await approvals.published(ORDERS_APPROVED, OrderApproved)
    assert approved.approval_mode is ApprovalMode.AUTOMATIC
    assert await approvals.history(order_id) == ["approved"]


async def test_a_business_order_over_the_threshold_awaits_its_approvers(
    approvals: ServiceBench,
) -> None:
    order_id = await order(approvals, b2b_order("b-2", LARGE))
    assert await approvals.history(order_id) == ["awaiting_approval"]
    assert await approvals.published(ORDERS_APPROVED) == []
    approval = await progress(approvals, order_id)
    assert step_states(approval) == {"manager": "open", "finance": "waiting"}
    assert (approval.required_approvals, approval.policy_version) == (2, 1)
    assert approval.eligible_approvers == ["acme-manager"]
    assert [rule.rule_id for rule in approval.rules] == ["large-order"]
    [opened] = approval.history
    assert opened.kind == "opened" and "steps: manager (1 x manager), finance" in opened.why


async def test_a_business_order_of_an_account_approvals_does_not_know_is_rejected(
    approvals: ServiceBench,
) -> None:
    order_id = await order(approvals, b2b_order("b-3", SMALL, account_id="nobody-gmbh"))
    [rejected] = await approvals.statuses(order_id)
    assert rejected.status is OrderState.REJECTED
    assert rejected.reason is not None and rejected.reason.code is ReasonCode.UNKNOWN_ACCOUNT
    assert await approvals.published(ORDERS_APPROVED) == []


async def test_a_replayed_orders_priced_changes_nothing(approvals: ServiceBench) -> None:
    at_once = priced(b2b_order("b-4", SMALL))
    waiting = priced(b2b_order("b-5", LARGE))
    for event in (at_once, waiting):
        await approvals.deliver(ORDERS_PRICED, event)
        await approvals.deliver(ORDERS_PRICED, event)  # redelivered
        await approvals.deliver(ORDERS_PRICED, resent(event))
    bigger = priced(b2b_order("b-4", LARGE))  # other content under the same order id
    await approvals.deliver(ORDERS_PRICED, bigger)
    assert len(await approvals.published(ORDERS_APPROVED)) == 1
    assert await approvals.history("b-4") == ["approved"]
    assert await approvals.history("b-5") == ["awaiting_approval"]


async def test_an_invalid_priced_order_is_dead_lettered_and_rejected(
    approvals: ServiceBench,
) -> None:
    letter = await deliver_invalid(approvals, ORDERS_PRICED, "b-6")
    assert "schema" in letter.error
    assert await approvals.published(ORDERS_APPROVED) == []


@pytest.mark.parametrize("holds", ["yes", 1, None, {"credit": True}])
async def test_a_priced_order_whose_holds_is_no_boolean_is_dead_lettered_and_the_next_passes(
    approvals: ServiceBench, holds: object
) -> None:
    bad = json.loads(priced(b2c_order("c-1", [("GLOVE-L", 3)])).to_bytes())
    await approvals.deliver(ORDERS_PRICED, json.dumps({**bad, "holds": holds}).encode())
    [letter] = await approvals.dead_letters(ORDERS_PRICED)
    assert "holds" in letter.error
    [rejected] = await approvals.statuses("c-1")
    assert rejected.reason is not None and rejected.reason.code is ReasonCode.INVALID_EVENT
    await order(approvals, b2c_order("c-2", [("GLOVE-L", 3)]))
    handed_on = await approvals.published(ORDERS_APPROVED, OrderApproved)
    assert [approved.order.order_id for approved in handed_on] == ["c-2"]


# --- decisions -----------------------------------------------------------------------------------


async def test_sequential_steps_are_signed_in_their_order(approvals: ServiceBench) -> None:
    order_id = await order(approvals, b2b_order("b-10", LARGE))
    await decide(approvals, order_id, "acme-finance")
    assert await outcomes(approvals, order_id) == [Outcome.REFUSED_NOT_OPEN_YET]
    assert await approvals.history(order_id) == ["awaiting_approval"]

    await decide(approvals, order_id, "acme-manager")
    assert step_states(await progress(approvals, order_id)) == {
        "manager": "satisfied",
        "finance": "open",
    }
    await decide(approvals, order_id, "acme-finance", comment="budget ok")
    assert await approvals.history(order_id) == [
        "awaiting_approval",
        "awaiting_approval",
        "approved",
    ]
    [approved] = await approvals.published(ORDERS_APPROVED, OrderApproved)
    assert approved.approval_mode is ApprovalMode.APPROVERS
    assert approved.approved_by == ["acme-manager", "acme-finance"]
    assert (await request_of(approvals, order_id)).state is RequestState.APPROVED


async def test_parallel_steps_are_signed_in_any_order_by_two_people(
    approvals: ServiceBench,
) -> None:
    order_id = await order(
        approvals, b2b_order("g-1", LARGE, account_id=GLOBEX, buyer_id="globex-buyer")
    )
    assert step_states(await progress(approvals, order_id)) == {
        "manager": "open",
        "finance": "open",
    }
    await decide(approvals, order_id, "globex-cfo")
    await decide(approvals, order_id, "globex-boss")
    [approved] = await approvals.published(ORDERS_APPROVED, OrderApproved)
    assert approved.approved_by == ["globex-boss", "globex-cfo"]  # in policy order of the steps


async def test_two_of_three_managers_make_a_quorum(approvals: ServiceBench) -> None:
    managers = ["initech-ann", "initech-bob", "initech-cy"]
    await approvals.deliver(
        ACCOUNTS,
        Account.new(
            account_id="initech",
            name="Initech",
            channel=Channel.B2B,
            members=[
                Member(member_id="initech-buyer", name="Buyer", roles=[Role.BUYER]),
                *(Member(member_id=m, name=m, roles=[Role.MANAGER]) for m in managers),
            ],
        ),
    )
    await approvals.deliver(
        APPROVAL_POLICIES,
        ApprovalPolicy.new(
            account_id="initech",
            version=1,
            rules=[
                {
                    "rule_id": "board",
                    "version": 1,
                    "when": {"total_at_least": {"EUR": "1000"}},
                    "steps": [{"step_id": "managers", "role": "manager", "quorum": 2}],
                }
            ],
        ),
    )
    order_id = await order(
        approvals, b2b_order("i-1", SMALL, account_id="initech", buyer_id="initech-buyer")
    )
    await decide(approvals, order_id, "initech-bob")
    [managers_step] = (await progress(approvals, order_id)).steps
    assert (managers_step.state, len(managers_step.signed_by)) == ("open", 1)
    assert managers_step.eligible == ["initech-ann", "initech-cy"]
    await decide(approvals, order_id, "initech-cy")
    [approved] = await approvals.published(ORDERS_APPROVED, OrderApproved)
    assert approved.approved_by == ["initech-bob", "initech-cy"]


async def test_an_eligible_approvers_veto_rejects_the_order(approvals: ServiceBench) -> None:
    order_id = await order(approvals, b2b_order("b-11", LARGE))
    await decide(approvals, order_id, "acme-manager")
    await decide(approvals, order_id, "acme-finance", REJECT, comment="not this quarter")
    rejected = (await approvals.statuses(order_id))[-1]
    assert rejected.status is OrderState.REJECTED
    assert rejected.reason is not None
    assert rejected.reason.code is ReasonCode.APPROVAL_REJECTED
    assert rejected.reason.message == "rejected by acme-finance: not this quarter"
    assert await approvals.published(ORDERS_APPROVED) == []

    await decide(approvals, order_id, "acme-manager")  # too late: the request is closed
    assert (await outcomes(approvals, order_id))[-1] == Outcome.REFUSED_CLOSED
    assert len(await approvals.statuses(order_id)) == 3


async def test_the_buyer_may_not_approve_their_own_order(approvals: ServiceBench) -> None:
    order_id = await order(approvals, b2b_order("b-12", LARGE, buyer_id="acme-manager"))
    await decide(approvals, order_id, "acme-manager")
    assert await outcomes(approvals, order_id) == [Outcome.REFUSED_BUYER]
    assert await approvals.history(order_id) == ["awaiting_approval"]


async def test_a_delegate_may_stand_in_for_an_approver_out_of_office(
    approvals: ServiceBench,
) -> None:
    now = datetime.now(UTC)
    await approvals.deliver(
        DELEGATIONS,
        Delegation.new(
            account_id=ACME,
            delegator_id="acme-finance",
            delegate_id="acme-director",
            starts_at=now - DAY,
            ends_at=now + DAY,
        ),
    )
    order_id = await order(approvals, b2b_order("b-13", LARGE))
    await decide(approvals, order_id, "acme-manager")
    assert "acme-director" in (await progress(approvals, order_id)).eligible_approvers
    await decide(approvals, order_id, "acme-director")
    [approved] = await approvals.published(ORDERS_APPROVED, OrderApproved)
    assert approved.approved_by == ["acme-manager", "acme-finance"]
    finance = (await progress(approvals, order_id)).steps[1]
    [signature] = finance.signed_by
    assert (signature.approver_id, signature.on_behalf_of) == ("acme-director", "acme-finance")


async def test_a_member_removed_from_the_account_can_no_longer_decide(
    approvals: ServiceBench,
) -> None:
    order_id = await order(approvals, b2b_order("b-14", LARGE))
    [acme] = [account for account in accounts() if account.account_id == ACME]
    without_manager = [m for m in acme.members if m.member_id != "acme-manager"]
    await approvals.deliver(ACCOUNTS, acme.model_copy(update={"members": without_manager}))
    await decide(approvals, order_id, "acme-manager")
    assert await outcomes(approvals, order_id) == [Outcome.REFUSED_NOT_MEMBER]
    assert await approvals.history(order_id) == ["awaiting_approval"]


def unknown_requests() -> float:
    labels = {"role": "none", "outcome": "unknown_request"}
    return REGISTRY.get_sample_value("tradelane_approval_decisions_total", labels) or 0.0


async def test_a_decision_for_an_unknown_order_is_refused_quietly(approvals: ServiceBench) -> None:
    before = unknown_requests()
    await decide(approvals, "never-priced", "acme-manager")
    assert unknown_requests() == before + 1
    assert await approvals.published(ORDERS_STATUS) == []
    assert await approvals.dead_letters(APPROVAL_DECISIONS) == []
    assert await audit(approvals, "never-priced") == []


async def test_a_redelivered_or_repeated_decision_counts_once(approvals: ServiceBench) -> None:
    order_id = await order(approvals, b2b_order("b-15", LARGE))
    decision = await decide(approvals, order_id, "acme-manager")
    await approvals.deliver(APPROVAL_DECISIONS, decision)  # redelivered: the inbox drops it
    assert await outcomes(approvals, order_id) == [Outcome.COUNTED]
    await approvals.deliver(APPROVAL_DECISIONS, resent(decision))  # the same person, again
    assert await outcomes(approvals, order_id) == [Outcome.COUNTED, Outcome.ALREADY_COUNTED]
    assert await approvals.history(order_id) == ["awaiting_approval", "awaiting_approval"]
    [manager] = (await progress(approvals, order_id)).steps[:1]
    assert len(manager.signed_by) == 1


# --- reference data over time --------------------------------------------------------------------


async def test_a_policy_change_applies_to_orders_priced_later_only(
    approvals: ServiceBench,
) -> None:
    first = await order(approvals, b2b_order("b-20", LARGE))
    await approvals.deliver(
        APPROVAL_POLICIES, ApprovalPolicy.new(account_id=ACME, version=2, rules=[])
    )
    later = await order(approvals, b2b_order("b-21", LARGE))
    assert await approvals.history(later) == ["approved"]

    await decide(approvals, first, "acme-manager")
    assert await approvals.history(first) == ["awaiting_approval", "awaiting_approval"]
    await decide(approvals, first, "acme-finance")
    assert (await approvals.statuses(first))[-1].status is OrderState.APPROVED
    assert (await progress(approvals, first)).policy_version == 1


# --- orders that end elsewhere -------------------------------------------------------------------


async def test_an_order_ended_elsewhere_withdraws_its_request_quietly(
    approvals: ServiceBench,
) -> None:
    cancelled = b2b_order("b-30", LARGE)
    order_id = await order(approvals, cancelled)
    await ended_elsewhere(approvals, cancelled)
    assert await approvals.history(order_id) == ["awaiting_approval"]
    request = await request_of(approvals, order_id)
    assert request.state is RequestState.WITHDRAWN
    withdrawn = (await audit(approvals, order_id))[-1]
    assert (withdrawn.kind, withdrawn.why) == ("withdrawn", "order cancelled by catalog")

    await decide(approvals, order_id, "acme-manager")
    assert await outcomes(approvals, order_id) == [Outcome.REFUSED_CLOSED]
    assert await advance_due(approvals.db, request.deadline + DAY) == []
    assert await approvals.history(order_id) == ["awaiting_approval"]
    assert await notices(approvals) == []


async def test_an_approved_order_ended_elsewhere_stops_counting_against_the_buyers_limit(
    approvals: ServiceBench,
) -> None:
    earlier = [b2b_order(f"s-{n}", JUST_UNDER) for n in range(4)]
    for submitted in earlier:  # 4 x 4992.30 = 19969.20 EUR of the buyer's 20000 this month
        assert await approvals.history(await order(approvals, submitted)) == ["approved"]
    over = await order(approvals, b2b_order("s-4", JUST_UNDER))
    assert [rule.rule_id for rule in (await progress(approvals, over)).rules] == ["buyer-limit"]

    await ended_elsewhere(approvals, earlier[0], OrderState.REJECTED)
    again = await order(approvals, b2b_order("s-5", JUST_UNDER))
    assert await approvals.history(again) == ["approved"]


async def test_an_order_ended_before_it_is_priced_is_never_approved(
    approvals: ServiceBench,
) -> None:
    late = b2b_order("b-31", SMALL)
    await ended_elsewhere(approvals, late)
    await order(approvals, late)
    assert await approvals.published(ORDERS_APPROVED) == []
    assert await approvals.statuses("b-31") == []


# --- the clock -----------------------------------------------------------------------------------


async def test_the_clock_reminds_the_approvers_a_day_before_the_deadline(
    approvals: ServiceBench,
) -> None:
    order_id = await order(approvals, b2b_order("b-40", LARGE))
    request = await request_of(approvals, order_id)
    assert await advance_due(approvals.db, request.opened_at + DAY) == []

    reminded_at = request.deadline - DAY
    assert await advance_due(approvals.db, reminded_at) == [order_id]
    [reminder] = await notices(approvals)
    assert (reminder.kind, reminder.step_id, reminder.recipients) == (
        NoticeKind.REMINDER,
        None,
        ["acme-manager"],
    )
    assert reminder.deadline == request.deadline
    assert await advance_due(approvals.db, reminded_at + timedelta(hours=1)) == []
    assert len(await notices(approvals)) == 1
    assert await approvals.history(order_id) == ["awaiting_approval"]
    assert (await audit(approvals, order_id))[-1].kind == "reminder"


async def test_the_clock_escalates_a_step_after_its_delay(approvals: ServiceBench) -> None:
    order_id = await order(approvals, b2b_order("b-41", LARGE))
    await decide(approvals, order_id, "acme-manager")
    finance = (await request_of(approvals, order_id)).steps[1]
    assert finance.escalates_at is not None

    await advance_due(approvals.db, finance.escalates_at)
    [escalation] = await notices(approvals)
    assert (escalation.kind, escalation.step_id, escalation.recipients) == (
        NoticeKind.ESCALATION,
        "finance",
        ["acme-director", "acme-finance"],
    )
    assert await approvals.history(order_id) == ["awaiting_approval"] * 3
    escalated = (await progress(approvals, order_id)).steps[1]
    assert escalated.escalated and escalated.eligible == ["acme-director", "acme-finance"]

    await decide(approvals, order_id, "acme-director")  # the director signs in finance's place
    [approved] = await approvals.published(ORDERS_APPROVED, OrderApproved)
    assert approved.approved_by == ["acme-manager", "acme-director"]


async def test_the_clock_expires_a_request_at_its_deadline(approvals: ServiceBench) -> None:
    order_id = await order(approvals, b2b_order("b-42", LARGE))
    request = await request_of(approvals, order_id)

    assert await advance_due(approvals.db, request.deadline) == [order_id]
    expired = (await approvals.statuses(order_id))[-1]
    assert expired.status is OrderState.REJECTED
    assert expired.reason is not None and expired.reason.code is ReasonCode.APPROVAL_EXPIRED
    assert "steps still waiting: manager, finance" in expired.reason.message
    assert await notices(approvals) == []  # expired, not reminded first
    assert (await request_of(approvals, order_id)).state is RequestState.EXPIRED

    assert await advance_due(approvals.db, request.deadline + DAY) == []
    await decide(approvals, order_id, "acme-manager")
    assert await outcomes(approvals, order_id) == [Outcome.REFUSED_CLOSED]
    assert await approvals.history(order_id) == ["awaiting_approval", "rejected"]
    assert await approvals.published(ORDERS_APPROVED) == []


# --- the inbox page ------------------------------------------------------------------------------

HOSTILE = '<script>alert("pwned")</script>'
"""Markup where pricing passes on text it was given (a promotion's name from the ERP)."""


def priced_with_discounts_and_credit_warning(submitted: OrderSubmitted) -> OrderPriced:
    """`priced`, plus what pricing may add: a line promotion (60.00 off 5160.00), an order
    promotion (100.00 off), the plan of the 5000.00 EUR left, and a credit warning."""
    plain = priced(submitted)
    [line] = plain.lines
    promoted = PricedLine(
        **{
            **line.model_dump(),
            "discount": Decimal("60.00"),
            "line_total": line.line_total - Decimal("60.00"),
            "price_source": "list:list-EUR promotion:bolt-week",
        }
    )
    order_promotion = PromotionOutcome(
        promotion_id="b2b-spring",
        name=HOSTILE,
        kind=PromotionKind.FIXED,
        scope=PromotionScope.ORDER,
        applied=True,
        discount=Decimal("100.00"),
    )
    total = Decimal("5000.00")
    return OrderPriced.new(
        order=plain.order,
        lines=[promoted],
        totals=Totals(
            currency="EUR",
            subtotal=promoted.line_total,
            discount=Decimal("100.00"),
            total=total,
            promotions=[order_promotion],
        ),
        payment=payment_plan(plain.order, total, PRICED_ON),
        credit_limit_override=True,
        credit_warning=f"exposure 251000.00 of 250000.00 EUR (100.4 %) {HOSTILE}",
        submitted_at=plain.submitted_at,
    )


async def request_page(bench: ServiceBench, order_id: str, approver_id: str) -> str:
    """The request's page as `approver_id` sees it, rendered from what approvals stored."""
    async with bench.db.sessions() as session:
        detail = await inbox.request_detail(session, order_id, approver_id, datetime.now(UTC))
    return render_request(Session(approver_id, "form-token"), detail, uuid.uuid4())


async def test_the_request_page_shows_the_payment_plan_discounts_and_credit_warning(
    approvals: ServiceBench,
) -> None:
    """What approving commits the account to: deposit and remainder with their due dates, the
    promotions taken off, pricing's credit warning; text from outside is escaped."""
    submitted = b2b_order("b-page", LARGE, terms="DEPOSIT30_NET30")
    await approvals.deliver(ORDERS_PRICED, priced_with_discounts_and_credit_warning(submitted))
    page = await request_page(approvals, "b-page", "acme-manager")

    assert "On invoice, terms DEPOSIT30_NET30; due dates count from 2026-11-30" in page
    deposit = '<td>Deposit</td><td class="num">1500.00 EUR</td><td>by 2026-11-30</td>'
    remainder = '<td>Remainder</td><td class="num">3500.00 EUR</td><td>by 2026-12-30</td>'
    assert deposit in page and remainder in page
    assert "list:list-EUR promotion:bolt-week" in page
    assert '<td class="num">&minus;60.00</td><td class="num">5100.00</td>' in page
    assert f"{html.escape(HOSTILE)} (b2b-spring)" in page
    assert '<td class="num">&minus;100.00 EUR</td>' in page
    assert '<td class="num"><strong>5000.00 EUR</strong></td>' in page
    assert "takes the account over its credit limit" in page
    assert f"Credit: exposure 251000.00 of 250000.00 EUR (100.4 %) {html.escape(HOSTILE)}" in page
    assert HOSTILE not in page and "<script" not in page


def test_an_instalment_plan_is_shown_instalment_by_instalment() -> None:
    """A consumer's plan (should one ever wait for approval): each month's amount and date."""
    plan = priced(b2c_order("c-plan", [("GLOVE-L", 10)], method="installments", installments=3))
    assert plan.payment is not None
    page = render_payment({"payment": plan.payment.model_dump(mode="json")})
    assert "In instalments, 3 monthly instalments" in page
    rows = [f"<td>Instalment {n}</td>" for n in (1, 2, 3)]
    assert all(row in page for row in rows)
    amounts = [due.amount for due in plan.payment.schedule]
    assert all(f'<td class="num">{amount} EUR</td>' in page for amount in amounts)
    assert plan.payment.schedule[-1].due_on is not None
    assert f"by {plan.payment.schedule[-1].due_on.isoformat()}" in page


# --- the service, wired --------------------------------------------------------------------------


async def test_the_service_reads_each_topic_it_has_a_handler_for(tmp_path: Path) -> None:
    service = create_service(Settings(TRADELANE_DATA_DIR=tmp_path))
    try:
        assert service.consumed_topics() == sorted(spec.name for spec in HANDLERS)
    finally:
        await service.db.dispose()


def test_the_development_secret_on_an_open_port_stops_it_before_anything_is_built(
    tmp_path: Path,
) -> None:
    settings = Settings(
        TRADELANE_DATA_DIR=tmp_path,
        WEB_BIND="0.0.0.0",
        APPROVALS_TOKEN_SECRET=DEV_TOKEN_SECRET,
        TRADELANE_DEV_MODE=False,
    )
    with pytest.raises(ConfigError, match="APPROVALS_TOKEN_SECRET"):
        create_service(settings)
    assert list(tmp_path.iterdir()) == []
