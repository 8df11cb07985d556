"""Pricing's credit rules and hold ledger transitions, as pure functions."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.pricing.credit import (
    CreditLine,
    CreditOutcome,
    check_credit,
    exposure_of,
    split_payment,
)
from services.pricing.holds import HoldState, fate_of, moves
from shared.contract import Account, Channel, CreditPolicy, CreditTerms, OrderState, ReasonCode
from shared.rejection import Rejected

LINE = CreditLine("acme", "EUR", Decimal("1000.00"), CreditPolicy.REJECT, 80)
MONEY = st.decimals(min_value=0, max_value=10**9, places=2)


def test_without_a_limit_nothing_is_checked() -> None:
    unlimited = CreditLine("acme", "EUR", None)
    assert check_credit(unlimited, Decimal(10**9), Decimal(10**9), "EUR").outcome is (
        CreditOutcome.UNLIMITED
    )
    assert check_credit(None, Decimal(0), Decimal(1), "USD").outcome is CreditOutcome.UNLIMITED


def test_within_the_limit_below_the_threshold_fits_quietly() -> None:
    check = check_credit(LINE, Decimal("500.00"), Decimal("299.99"), "EUR")
    assert (check.outcome, check.warning, check.override) == (CreditOutcome.WITHIN, None, False)
    assert check.utilisation == Decimal("0.79999")


def test_from_the_threshold_on_the_order_carries_a_warning() -> None:
    check = check_credit(LINE, Decimal("500.00"), Decimal("300.00"), "EUR")
    assert check.outcome is CreditOutcome.WARNED
    assert check.warning is not None and "80 % of the credit limit of 1000.00 EUR" in check.warning


def test_reaching_the_limit_exactly_fits() -> None:
    assert check_credit(LINE, Decimal("999.99"), Decimal("0.01"), "EUR").outcome is (
        CreditOutcome.WARNED
    )


def test_over_the_limit_is_rejected_with_limit_exposure_and_amount() -> None:
    with pytest.raises(Rejected) as raised:
        check_credit(LINE, Decimal("900.00"), Decimal("100.01"), "EUR")
    reason = raised.value.reason
    assert reason.code is ReasonCode.CREDIT_LIMIT_EXCEEDED
    assert reason.message == (
        "order total 100.01 EUR would take the open exposure of account 'acme' from 900.00 EUR "
        "to 1000.01 EUR, over its credit limit of 1000.00 EUR (available 100.00 EUR)"
    )


def test_over_the_limit_goes_to_finance_when_the_account_says_so() -> None:
    line = CreditLine("acme", "EUR", Decimal("1000.00"), CreditPolicy.FINANCE_APPROVAL)
    check = check_credit(line, Decimal("900.00"), Decimal("200.00"), "EUR")
    assert check.override and check.outcome is CreditOutcome.OVERRIDE
    assert check.warning is not None and check.warning.endswith("finance must approve")


def test_an_order_in_another_currency_cannot_be_set_against_the_limit() -> None:
    with pytest.raises(Rejected) as raised:
        check_credit(LINE, Decimal(0), Decimal(1), "USD")
    assert raised.value.reason.code is ReasonCode.CURRENCY_NOT_SUPPORTED


def test_a_zero_limit_lets_nothing_on_credit() -> None:
    zero = CreditLine("acme", "EUR", Decimal(0))
    with pytest.raises(Rejected):
        check_credit(zero, Decimal(0), Decimal("0.01"), "EUR")
    assert check_credit(zero, Decimal(0), Decimal(0), "EUR").outcome is CreditOutcome.WITHIN


def test_credit_on_account_lowers_exposure() -> None:
    assert exposure_of([Decimal("10.00"), Decimal("5.50")], Decimal("20.00")) == Decimal("-4.50")


@given(open_amount=MONEY, paid=MONEY.filter(lambda d: d > 0))
def test_a_payment_is_split_without_losing_a_cent(open_amount: Decimal, paid: Decimal) -> None:
    split = split_payment(open_amount, paid)
    assert split.applied + split.surplus == paid
    assert 0 <= split.applied <= open_amount and split.surplus >= 0
    assert split.surplus == 0 or split.applied == open_amount


@given(limit=MONEY, exposure=MONEY, amount=MONEY)
def test_under_the_reject_policy_an_accepted_order_never_passes_the_limit(
    limit: Decimal, exposure: Decimal, amount: Decimal
) -> None:
    line = CreditLine("acme", "EUR", limit)
    try:
        check_credit(line, exposure, amount, "EUR")
    except Rejected:
        assert exposure + amount > limit
    else:
        assert exposure + amount <= limit


@pytest.mark.parametrize(
    ("current", "wanted", "moved"),
    [
        (HoldState.HELD, HoldState.COMMITTED, True),
        (HoldState.HELD, HoldState.RELEASED, True),
        (HoldState.COMMITTED, HoldState.RELEASED, True),
        (HoldState.COMMITTED, HoldState.HELD, False),
        (HoldState.COMMITTED, HoldState.COMMITTED, False),
        (HoldState.RELEASED, HoldState.COMMITTED, False),
        (HoldState.RELEASED, HoldState.RELEASED, False),
    ],
)
def test_a_hold_moves_forward_only_and_a_release_is_final(
    current: HoldState, wanted: HoldState, moved: bool
) -> None:
    assert moves(current, wanted) is moved


def test_an_orders_fate_is_read_from_its_status() -> None:
    assert fate_of(OrderState.APPROVED) is HoldState.COMMITTED
    assert fate_of(OrderState.REJECTED) is HoldState.RELEASED
    assert fate_of(OrderState.CANCELLED) is HoldState.RELEASED
    for passing in (OrderState.AWAITING_APPROVAL, OrderState.SHIPPED, OrderState.DELIVERED):
        assert fate_of(passing) is None


def test_a_consumer_account_cannot_have_a_credit_line() -> None:
    with pytest.raises(ValueError, match="only business"):
        Account.new(
            account_id="anna",
            name="Anna",
            channel=Channel.B2C,
            credit=CreditTerms(limit=Decimal(100)),
        )
