"""Approvals' gate as pure rules (`services.approvals.domain`): which orders pass at once, which
open a request and which are rejected, and what an order ending elsewhere undoes at each gate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from services.approvals.domain import (
    ENDINGS,
    Ending,
    Gate,
    GateDecision,
    ending_at,
    gate_order,
)
from services.approvals.policy import FALLBACK_RULE_ID, LimitKey, policy_in_force
from shared.contract import (
    Account,
    ApprovalPolicy,
    LimitScope,
    OrderState,
    OrderSubmitted,
    Period,
    ReasonCode,
    Role,
    StepOrder,
)
from tests.handlers.conftest import priced
from tools.seed import ACME, B2C_CUSTOMER, GLOBEX, accounts, approval_policies, b2b_order, b2c_order

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
ACCOUNTS = {account.account_id: account for account in accounts()}
POLICIES = {p.account_id: p for p in approval_policies()}
LARGE = [("BOLT-M8-100", 400)]
"""5160.00 EUR at list price: at or above ACME's 5000 and Globex's 2000."""
SMALL = [("BOLT-M8-100", 100)]
"""1290.00 EUR: under every threshold, no power tools."""
BUYER_THIS_MONTH = LimitKey(LimitScope.BUYER, "acme-buyer", Period.MONTHLY, "EUR")


def gated(
    order: OrderSubmitted,
    account: Account | None,
    rules: ApprovalPolicy | None,
    spent: dict[LimitKey, Decimal] | None = None,
) -> GateDecision:
    return gate_order(priced(order), account, rules, spent or {}, NOW)


def acme(order: OrderSubmitted) -> GateDecision:
    return gated(order, ACCOUNTS[ACME], POLICIES[ACME])


def test_a_consumer_order_passes_at_once() -> None:
    decided = gated(b2c_order("c-1", [("GLOVE-L", 2)]), ACCOUNTS[B2C_CUSTOMER], None)
    assert decided == GateDecision(Gate.APPROVED_AT_ONCE, "consumer order: the buyer decides alone")


def test_a_consumer_order_of_an_account_approvals_does_not_know_passes_at_once() -> None:
    decided = gated(b2c_order("c-2", [("GLOVE-L", 2)], account_id="walk-in"), None, None)
    assert decided.gate is Gate.APPROVED_AT_ONCE


def test_a_business_order_of_an_account_approvals_does_not_know_is_rejected() -> None:
    decided = gated(b2b_order("b-1", LARGE, account_id="nobody-gmbh"), None, None)
    assert decided.gate is Gate.REJECTED and decided.request is None
    assert decided.reason is not None and decided.reason.code is ReasonCode.UNKNOWN_ACCOUNT
    assert decided.why == decided.reason.message


def test_a_business_account_with_no_policy_in_force_passes_at_once() -> None:
    account = ACCOUNTS[ACME].model_copy(update={"approval_threshold": None})
    decided = gated(b2b_order("b-2", LARGE), account, None)
    assert decided == GateDecision(
        Gate.APPROVED_AT_ONCE, "account acme-gmbh has no approval policy"
    )


def test_a_business_order_no_rule_applies_to_passes_at_once() -> None:
    decided = acme(b2b_order("b-3", SMALL))
    assert decided == GateDecision(Gate.APPROVED_AT_ONCE, "no approval rule applies")


def test_a_business_order_a_rule_applies_to_opens_a_request_under_a_snapshot() -> None:
    decided = acme(b2b_order("b-4", LARGE))
    assert decided.gate is Gate.APPROVAL_REQUESTED and decided.reason is None
    request = decided.request
    assert request is not None
    assert (request.order_id, request.account_id, request.buyer_id) == ("b-4", ACME, "acme-buyer")
    assert [(s.step_id, s.after) for s in request.steps] == [
        ("manager", frozenset()),
        ("finance", frozenset({"manager"})),
    ]
    assert request.members["acme-director"] == frozenset({Role.DIRECTOR, Role.BUYER})
    assert (request.opened_at, request.deadline) == (NOW, NOW + timedelta(days=3))
    assert decided.why == (
        "policy v1: rule large-order v1: total 5160.00 EUR is at or above 5000; "
        "steps: manager (1 x manager), finance (1 x finance, after manager)"
    )


def test_a_consumer_channel_order_of_a_business_account_is_gated_as_business() -> None:
    order = b2c_order("b-5", LARGE, account_id=ACME)
    decided = acme(order)
    assert decided.gate is Gate.APPROVAL_REQUESTED


def test_spend_so_far_takes_the_buyer_over_the_limit() -> None:
    order = b2b_order("b-6", SMALL)
    assert acme(order).gate is Gate.APPROVED_AT_ONCE
    spent = {BUYER_THIS_MONTH: Decimal("19000")}
    decided = gated(order, ACCOUNTS[ACME], POLICIES[ACME], spent)
    assert decided.request is not None
    assert [s.step_id for s in decided.request.steps] == ["manager"]
    assert "rule buyer-limit v1: buyer acme-buyer would spend 20290.00 EUR" in decided.why


def test_pricings_credit_limit_flag_reaches_the_rules() -> None:
    policy = ApprovalPolicy.new(
        account_id=ACME,
        version=2,
        rules=[
            {
                "rule_id": "credit",
                "version": 1,
                "when": {"credit_limit_override": True},
                "steps": [{"step_id": "finance", "role": "finance"}],
            }
        ],
    )
    order = b2b_order("b-7", SMALL)
    assert gated(order, ACCOUNTS[ACME], policy).gate is Gate.APPROVED_AT_ONCE
    flagged = gate_order(priced(order, credit_limit_override=True), ACCOUNTS[ACME], policy, {}, NOW)
    assert flagged.gate is Gate.APPROVAL_REQUESTED


def test_the_threshold_fallback_asks_a_manager_and_finance_in_parallel() -> None:
    account = ACCOUNTS[ACME]
    decided = gated(b2b_order("b-8", LARGE), account, policy_in_force(account, None))
    assert decided.request is not None
    assert decided.request.matches[0].rule_id == FALLBACK_RULE_ID
    assert [(s.step_id, s.after) for s in decided.request.steps] == [
        ("manager", frozenset()),
        ("finance", frozenset()),
    ]


def test_an_accounts_own_policy_is_in_force_before_its_threshold() -> None:
    account = ACCOUNTS[GLOBEX]
    assert policy_in_force(account, POLICIES[GLOBEX]) == POLICIES[GLOBEX]
    fallback = policy_in_force(account, None)
    assert fallback is not None and fallback.rules[0].order is StepOrder.PARALLEL
    without = account.model_copy(update={"approval_threshold": None})
    assert policy_in_force(without, None) is None
    assert policy_in_force(None, POLICIES[GLOBEX]) is None


# --- orders that end elsewhere ------------------------------------------------------------------


@pytest.mark.parametrize("report", [OrderState.CANCELLED, OrderState.REJECTED])
@pytest.mark.parametrize(
    ("gate", "ending"),
    [
        (None, Ending(remember=Gate.ENDED_ELSEWHERE)),
        (Gate.APPROVED_AT_ONCE, Ending(give_back_spend=True)),
        (Gate.APPROVAL_REQUESTED, Ending(give_back_spend=True, withdraw_request=True)),
        (Gate.REJECTED, Ending()),
        (Gate.ENDED_ELSEWHERE, Ending()),
    ],
)
def test_an_order_ended_elsewhere_undoes_what_its_gate_gave(
    gate: Gate | None, ending: Ending, report: OrderState
) -> None:
    assert ending_at(gate, report) == ending


@pytest.mark.parametrize(
    "report",
    [s for s in OrderState if s not in (OrderState.CANCELLED, OrderState.REJECTED)],
)
@pytest.mark.parametrize("gate", [None, *Gate])
def test_other_reports_end_nothing(gate: Gate | None, report: OrderState) -> None:
    assert ending_at(gate, report) is None


def test_every_gate_has_an_ending_and_only_an_unknown_order_is_remembered() -> None:
    assert set(ENDINGS) == {None, *Gate}
    assert [g for g, e in ENDINGS.items() if e.remember is not None] == [None]
