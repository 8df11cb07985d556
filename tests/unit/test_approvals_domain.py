"""Approvals' rules, without Kafka or a database: the gate and the request's decisions."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.approvals.domain import (
    AccountPolicy,
    ApprovalRequest,
    ApproveAtOnce,
    Outcome,
    RequestState,
    RequireApprovers,
    gate,
    rejection_reason,
)
from shared.contract import (
    Account,
    ApprovalDecisionKind,
    Channel,
    Member,
    Order,
    ReasonCode,
    Role,
    Totals,
)
from shared.rejection import Rejected

APPROVE, REJECT = ApprovalDecisionKind.APPROVE, ApprovalDecisionKind.REJECT
BUYER = "acme-buyer"
MANAGER, FINANCE, DIRECTOR = "acme-manager", "acme-finance", "acme-director"
OUTSIDER = "globex-manager"


def an_order(channel: Channel = Channel.B2B, buyer_id: str = BUYER) -> Order:
    return Order.model_validate(
        {
            "order_id": "web-000123",
            "shop_id": "web",
            "channel": channel,
            "account_id": "acme",
            "buyer_id": buyer_id,
            "currency": "EUR",
            "lines": [{"sku": "BOLT-M8-100", "quantity": 40}],
            "payment": {"method": "invoice", "terms": "NET30"},
            "delivery": {
                "address": {
                    "country": "DE",
                    "postal_code": "10115",
                    "city": "Berlin",
                    "line1": "Invalidenstr. 1",
                }
            },
        }
    )


def acme(
    threshold: str | None = "1000.00",
    currency: str = "EUR",
    channel: Channel = Channel.B2B,
) -> AccountPolicy:
    account = Account.new(
        account_id="acme",
        name="ACME GmbH",
        channel=channel,
        currency=currency,
        approval_threshold=None if threshold is None else Decimal(threshold),
        members=[
            Member(member_id=BUYER, name="Bea Buyer", roles=[Role.BUYER]),
            Member(member_id=MANAGER, name="Max Manager", roles=[Role.MANAGER, Role.BUYER]),
            Member(member_id=FINANCE, name="Fiona Finance", roles=[Role.FINANCE]),
            Member(member_id=DIRECTOR, name="Dora Director", roles=[Role.DIRECTOR]),
        ],
    )
    return AccountPolicy.of(account)


def total(amount: str, currency: str = "EUR") -> Totals:
    return Totals(currency=currency, subtotal=Decimal(amount), total=Decimal(amount))


def opened(order: Order | None = None, policy: AccountPolicy | None = None) -> ApprovalRequest:
    order = order or an_order()
    verdict = gate(order, total("5000.00"), policy or acme())
    assert isinstance(verdict, RequireApprovers)
    return ApprovalRequest.open(order, verdict)


# --- the gate ------------------------------------------------------------------------------


def test_b2b_below_threshold_passes_at_once() -> None:
    assert isinstance(gate(an_order(), total("999.99"), acme()), ApproveAtOnce)


def test_b2b_at_threshold_needs_two_approvers() -> None:
    verdict = gate(an_order(), total("1000.00"), acme())
    assert isinstance(verdict, RequireApprovers)
    assert verdict.required_approvals == 2


def test_b2b_above_threshold_needs_approvers_of_the_account_except_the_buyer() -> None:
    verdict = gate(an_order(), total("1000.01"), acme())
    assert isinstance(verdict, RequireApprovers)
    assert verdict.eligible_approvers == (DIRECTOR, FINANCE, MANAGER)


def test_a_manager_buying_is_not_among_the_approvers_of_their_order() -> None:
    verdict = gate(an_order(buyer_id=MANAGER), total("5000"), acme())
    assert isinstance(verdict, RequireApprovers)
    assert verdict.eligible_approvers == (DIRECTOR, FINANCE)


def test_b2b_account_without_threshold_passes_at_once() -> None:
    assert isinstance(gate(an_order(), total("1000000"), acme(threshold=None)), ApproveAtOnce)


def test_b2c_passes_at_once_whatever_the_total() -> None:
    order = an_order(Channel.B2C)
    consumer = acme(channel=Channel.B2C)
    assert isinstance(gate(order, total("99999"), consumer), ApproveAtOnce)
    assert isinstance(gate(order, total("99999"), None), ApproveAtOnce)


def test_an_order_marked_b2c_from_a_business_account_still_meets_its_threshold() -> None:
    assert isinstance(gate(an_order(Channel.B2C), total("5000"), acme()), RequireApprovers)


def test_currency_other_than_the_thresholds_requires_approval() -> None:
    verdict = gate(an_order(), total("1.00", currency="USD"), acme())
    assert isinstance(verdict, RequireApprovers)
    assert "USD" in verdict.why and "EUR" in verdict.why


def test_b2b_order_of_an_unknown_account_is_rejected() -> None:
    with pytest.raises(Rejected) as rejected:
        gate(an_order(), total("1.00"), None)
    assert rejected.value.reason.code is ReasonCode.UNKNOWN_ACCOUNT


# --- the request ----------------------------------------------------------------------------


def test_the_buyer_cannot_approve_their_own_order() -> None:
    request = opened()
    outcome = request.record_decision(BUYER, APPROVE)
    assert outcome.kind is Outcome.REFUSED_BUYER and outcome.refused
    assert request.approved_by == [] and request.is_open


def test_the_buyer_is_refused_even_if_an_old_snapshot_lists_them() -> None:
    request = ApprovalRequest("o-1", BUYER, 2, (BUYER, MANAGER))
    assert request.record_decision(BUYER, APPROVE).kind is Outcome.REFUSED_BUYER
    assert not request.can_complete


def test_someone_outside_the_account_is_refused() -> None:
    request = opened()
    assert request.record_decision(OUTSIDER, APPROVE).kind is Outcome.REFUSED_NOT_ELIGIBLE
    assert request.record_decision(OUTSIDER, REJECT).kind is Outcome.REFUSED_NOT_ELIGIBLE
    assert request.is_open


def test_the_same_approver_twice_counts_once() -> None:
    request = opened()
    assert request.record_decision(MANAGER, APPROVE).kind is Outcome.COUNTED
    assert request.record_decision(MANAGER, APPROVE).kind is Outcome.ALREADY_COUNTED
    assert request.approved_by == [MANAGER]
    assert request.is_open


def test_two_distinct_approvers_approve() -> None:
    request = opened()
    request.record_decision(MANAGER, APPROVE)
    outcome = request.record_decision(FINANCE, APPROVE)
    assert outcome.kind is Outcome.APPROVED
    assert request.state is RequestState.APPROVED
    assert request.progress().approved_by == [MANAGER, FINANCE]


def test_a_reject_vetoes_even_after_one_approval() -> None:
    request = opened()
    request.record_decision(MANAGER, APPROVE)
    assert request.record_decision(DIRECTOR, REJECT).kind is Outcome.REJECTED
    assert request.state is RequestState.REJECTED


def test_decisions_after_close_are_refused() -> None:
    request = opened()
    request.record_decision(MANAGER, REJECT)
    for approver, decision in ((FINANCE, APPROVE), (DIRECTOR, APPROVE), (MANAGER, REJECT)):
        assert request.record_decision(approver, decision).kind is Outcome.REFUSED_CLOSED
    assert request.state is RequestState.REJECTED and request.approved_by == []


def test_a_withdrawn_request_refuses_decisions() -> None:
    request = opened()
    assert request.withdraw()
    assert not request.withdraw()
    assert request.record_decision(MANAGER, APPROVE).kind is Outcome.REFUSED_CLOSED


def test_a_request_with_too_few_eligible_people_opens_but_cannot_complete() -> None:
    lone = AccountPolicy(
        "acme", Channel.B2B, "EUR", Decimal(100), {MANAGER: frozenset({Role.MANAGER})}
    )
    request = opened(policy=lone)
    assert not request.can_complete
    assert request.record_decision(MANAGER, APPROVE).kind is Outcome.COUNTED
    assert request.is_open


def test_the_rejection_reason_names_the_approver_and_their_comment() -> None:
    reason = rejection_reason(FINANCE, "budget frozen until Q1")
    assert reason.code is ReasonCode.APPROVAL_REJECTED
    assert FINANCE in reason.message and "budget frozen until Q1" in reason.message


# --- the rule, for any sequence of decisions -----------------------------------------------

PEOPLE = [BUYER, MANAGER, FINANCE, DIRECTOR, OUTSIDER, "acme-clerk"]


@given(
    eligible=st.lists(st.sampled_from(PEOPLE), unique=True, max_size=5),
    decisions=st.lists(
        st.tuples(st.sampled_from(PEOPLE), st.sampled_from(list(ApprovalDecisionKind))),
        max_size=12,
    ),
)
def test_approved_only_by_two_distinct_eligible_approvers_before_any_veto(
    eligible: list[str], decisions: list[tuple[str, ApprovalDecisionKind]]
) -> None:
    """Any snapshot (even one wrongly naming the buyer), any people, any order of decisions."""
    request = ApprovalRequest("o-1", BUYER, 2, tuple(eligible))
    may_decide = set(eligible) - {BUYER}
    for approver, decision in decisions:
        request.record_decision(approver, decision)

    approvals: list[str] = []
    expected = RequestState.OPEN
    for approver, decision in decisions:
        if approver not in may_decide:
            continue
        if decision is REJECT:
            expected = RequestState.REJECTED
            break
        if approver not in approvals:
            approvals.append(approver)
        if len(approvals) >= 2:
            expected = RequestState.APPROVED
            break

    assert request.state is expected
    if request.state is RequestState.APPROVED:
        assert len(set(request.approved_by)) == len(request.approved_by) >= 2
        assert set(request.approved_by) <= may_decide
    assert BUYER not in request.approved_by
