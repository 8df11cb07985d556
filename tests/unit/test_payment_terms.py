"""Payment terms, due dates, deposits, instalments and the money rounding rule (docs/pricing.md)."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from services.pricing.terms import (
    add_months,
    due_schedule,
    installment_schedule,
    payment_plan,
)
from shared.contract import (
    Account,
    Channel,
    DueAmount,
    DueKind,
    Order,
    OrderPriced,
    PaymentPlan,
    PaymentTerms,
    PricedLine,
    ReasonCode,
    Totals,
)
from shared.contract.money import minor_unit, round_money
from shared.contract.payment import DueRule
from shared.rejection import Rejected
from shared.topics import ORDERS_PRICED

PRICED_ON = date(2026, 1, 31)


def parse(text: str) -> PaymentTerms:
    return PaymentTerms.parse(text)


def schedule(terms: str, total: str, currency: str = "EUR", on: date = PRICED_ON) -> list[Any]:
    """(kind, amount, due_on or 'on_fulfillment') of each due amount, to compare at a glance."""
    return [
        (due.kind.value, due.amount, due.due_on or due.due)
        for due in due_schedule(parse(terms), Decimal(total), currency, on)
    ]


# --- the grammar -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "terms"),
    [
        ("PREPAY", PaymentTerms(DueRule.PREPAY)),
        ("ON_FULFILLMENT", PaymentTerms(DueRule.ON_FULFILLMENT)),
        ("NET0", PaymentTerms(DueRule.NET, 0)),
        ("NET30", PaymentTerms(DueRule.NET, 30)),
        ("NET999", PaymentTerms(DueRule.NET, 999)),
        ("DOM1", PaymentTerms(DueRule.DOM, 1)),
        ("DOM31", PaymentTerms(DueRule.DOM, 31)),
        ("DEPOSIT30_NET30", PaymentTerms(DueRule.NET, 30, 30)),
        ("DEPOSIT1_DOM15", PaymentTerms(DueRule.DOM, 15, 1)),
        ("DEPOSIT99_ON_FULFILLMENT", PaymentTerms(DueRule.ON_FULFILLMENT, 0, 99)),
    ],
)
def test_terms_read_by_the_grammar(text: str, terms: PaymentTerms) -> None:
    assert parse(text) == terms


@pytest.mark.parametrize(
    "text",
    [
        "",
        "NET",
        "NET1000",
        "net30",
        "NET30 ",
        "DOM0",
        "DOM32",
        "DOM",
        "DEPOSIT0_NET30",
        "DEPOSIT100_NET30",
        "DEPOSIT30",
        "DEPOSIT30_PREPAY",
        "DEPOSIT30_DEPOSIT20_NET30",
        "COD",
    ],
)
def test_terms_outside_the_grammar_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="payment terms"):
        parse(text)


def test_an_account_whose_terms_do_not_parse_is_refused_by_the_contract() -> None:
    with pytest.raises(ValidationError, match="DOM needs a day of the month"):
        Account.new(account_id="a", name="A", channel=Channel.B2B, payment_terms=["DOM40"])
    with pytest.raises(ValidationError, match="payment terms"):
        Account.new(
            account_id="a", name="A", channel=Channel.B2B, default_payment_terms="NET30DAYS"
        )


def test_an_account_may_agree_every_form_of_terms() -> None:
    every = ["PREPAY", "ON_FULFILLMENT", "NET60", "DOM15", "DEPOSIT30_NET30"]
    account = Account.new(account_id="a", name="A", channel=Channel.B2B, payment_terms=every)
    assert account.payment_terms == every


# --- due dates --------------------------------------------------------------------------------


def test_prepay_is_due_the_day_the_order_is_priced() -> None:
    assert schedule("PREPAY", "100.00") == [("full", Decimal("100.00"), PRICED_ON)]


def test_net_terms_count_days_across_month_and_year_ends() -> None:
    assert schedule("NET30", "100.00") == [("full", Decimal("100.00"), date(2026, 3, 2))]
    assert schedule("NET30", "1", on=date(2026, 12, 15))[0][2] == date(2027, 1, 14)
    assert schedule("NET0", "1")[0][2] == PRICED_ON


def test_net_terms_know_leap_days() -> None:
    assert schedule("NET1", "1", on=date(2028, 2, 28))[0][2] == date(2028, 2, 29)
    assert schedule("NET1", "1", on=date(2027, 2, 28))[0][2] == date(2027, 3, 1)


def test_day_of_month_terms_fall_due_in_the_following_month() -> None:
    assert schedule("DOM15", "1", on=date(2026, 3, 1))[0][2] == date(2026, 4, 15)
    assert schedule("DOM15", "1", on=date(2026, 3, 31))[0][2] == date(2026, 4, 15)
    assert schedule("DOM15", "1", on=date(2026, 12, 20))[0][2] == date(2027, 1, 15)


def test_a_day_the_following_month_lacks_becomes_its_last_day() -> None:
    assert schedule("DOM31", "1", on=date(2026, 1, 10))[0][2] == date(2026, 2, 28)
    assert schedule("DOM30", "1", on=date(2028, 1, 10))[0][2] == date(2028, 2, 29)
    assert schedule("DOM31", "1", on=date(2026, 3, 10))[0][2] == date(2026, 4, 30)
    assert schedule("DOM31", "1", on=date(2026, 4, 10))[0][2] == date(2026, 5, 31)


def test_on_fulfillment_has_no_date_yet() -> None:
    assert schedule("ON_FULFILLMENT", "5.00") == [("full", Decimal("5.00"), "on_fulfillment")]


def test_a_deposit_is_due_now_and_the_remainder_on_the_terms() -> None:
    assert schedule("DEPOSIT30_NET30", "1000.00") == [
        ("deposit", Decimal("300.00"), PRICED_ON),
        ("remainder", Decimal("700.00"), date(2026, 3, 2)),
    ]
    assert schedule("DEPOSIT50_ON_FULFILLMENT", "10.00") == [
        ("deposit", Decimal("5.00"), PRICED_ON),
        ("remainder", Decimal("5.00"), "on_fulfillment"),
    ]


@pytest.mark.parametrize(
    ("currency", "total", "deposit", "remainder"),
    [
        ("EUR", "100.05", "33.02", "67.03"),  # 33.0165 -> 33.02
        ("JPY", "1001", "330", "671"),  # 330.33 -> 330
        ("BHD", "10.005", "3.302", "6.703"),  # 3.30165 -> 3.302
        ("EUR", "0.25", "0.08", "0.17"),  # 0.0825 -> 0.08
        ("JPY", "50", "16", "34"),  # 16.5 -> 16 (half to even)
    ],
)
def test_a_deposit_is_rounded_to_the_minor_unit_and_the_remainder_takes_the_rest(
    currency: str, total: str, deposit: str, remainder: str
) -> None:
    found = schedule("DEPOSIT33_NET30", total, currency)
    assert [amount for _, amount, _ in found] == [Decimal(deposit), Decimal(remainder)]


# --- instalments --------------------------------------------------------------------------------


def instalments(total: str, currency: str, months: int, first: date = PRICED_ON) -> list[Any]:
    return [
        (due.amount, due.due_on)
        for due in installment_schedule(Decimal(total), currency, months, first)
    ]


@pytest.mark.parametrize(
    ("currency", "total", "first", "others"),
    [
        ("EUR", "100.00", "33.34", "33.33"),
        ("JPY", "1000", "334", "333"),
        ("BHD", "10.000", "3.334", "3.333"),
        ("EUR", "99.00", "33.00", "33.00"),
        ("EUR", "0.02", "0.02", "0.00"),
    ],
)
def test_instalments_round_down_and_the_first_takes_the_remainder(
    currency: str, total: str, first: str, others: str
) -> None:
    amounts = [amount for amount, _ in instalments(total, currency, 3)]
    assert amounts == [Decimal(first), Decimal(others), Decimal(others)]


def test_instalments_fall_due_monthly_on_the_first_ones_day_or_the_months_last() -> None:
    dates = [due_on for _, due_on in instalments("120.00", "EUR", 6, date(2027, 10, 31))]
    assert dates == [
        date(2027, 10, 31),
        date(2027, 11, 30),
        date(2027, 12, 31),
        date(2028, 1, 31),
        date(2028, 2, 29),
        date(2028, 3, 31),
    ]


def test_twelve_instalments_span_a_year() -> None:
    dates = [due_on for _, due_on in instalments("1200.00", "EUR", 12, date(2026, 3, 15))]
    assert dates[0] == date(2026, 3, 15)
    assert dates[-1] == date(2027, 2, 15)


def test_add_months_keeps_the_day_or_takes_the_months_last() -> None:
    assert add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)
    assert add_months(date(2026, 11, 30), 3) == date(2027, 2, 28)
    assert add_months(date(2026, 5, 10), 12) == date(2027, 5, 10)


# --- the money rule -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "rounded"),
    [
        ("2.5", "JPY", "2"),
        ("3.5", "JPY", "4"),
        ("1.005", "EUR", "1.00"),
        ("1.015", "EUR", "1.02"),
        ("1.0005", "BHD", "1.000"),
        ("1.0015", "BHD", "1.002"),
        ("7", "EUR", "7.00"),
    ],
)
def test_money_rounds_to_the_minor_unit_half_to_even(
    amount: str, currency: str, rounded: str
) -> None:
    result = round_money(Decimal(amount), currency)
    assert result == Decimal(rounded)
    assert result.as_tuple().exponent == Decimal(rounded).as_tuple().exponent


def test_minor_units_come_from_iso_4217() -> None:
    assert [minor_unit(c) for c in ("JPY", "EUR", "BHD")] == [
        Decimal("1"),
        Decimal("0.01"),
        Decimal("0.001"),
    ]


# --- the plan of an order -----------------------------------------------------------------


def an_order(channel: Channel, payment: dict[str, Any], currency: str = "EUR") -> Order:
    return Order.model_validate(
        {
            "order_id": "o-1",
            "shop_id": "web",
            "channel": channel,
            "account_id": "acc",
            "buyer_id": "buyer",
            "currency": currency,
            "lines": [{"sku": "A", "quantity": 1}],
            "payment": payment,
            "delivery": {
                "address": {"country": "DE", "postal_code": "1", "city": "B", "line1": "x"}
            },
        }
    )


def test_a_card_payment_is_one_amount_due_at_once() -> None:
    plan = payment_plan(an_order(Channel.B2C, {"method": "card"}), Decimal("9.99"), PRICED_ON)
    assert plan.method == "card" and plan.terms is None
    assert [(d.kind, d.amount, d.currency, d.due_on) for d in plan.schedule] == [
        (DueKind.FULL, Decimal("9.99"), "EUR", PRICED_ON)
    ]


def test_an_invoice_plan_carries_its_terms_and_their_due_amounts() -> None:
    order = an_order(Channel.B2B, {"method": "invoice", "terms": "DEPOSIT30_NET30"})
    plan = payment_plan(order, Decimal("1000.00"), PRICED_ON)
    assert plan.terms == "DEPOSIT30_NET30"
    assert [d.kind for d in plan.schedule] == [DueKind.DEPOSIT, DueKind.REMAINDER]
    assert plan.total == Decimal("1000.00")


def test_an_installment_plan_carries_the_months_chosen() -> None:
    order = an_order(Channel.B2C, {"method": "installments", "installments": 6}, "JPY")
    plan = payment_plan(order, Decimal("10000"), PRICED_ON)
    assert plan.installments == 6 and len(plan.schedule) == 6
    assert {d.currency for d in plan.schedule} == {"JPY"}
    assert plan.schedule[0].amount == Decimal("1670")


def test_installments_without_a_number_of_months_are_rejected() -> None:
    order = an_order(Channel.B2C, {"method": "installments"})
    with pytest.raises(Rejected) as rejected:
        payment_plan(order, Decimal("10"), PRICED_ON)
    assert rejected.value.reason.code is ReasonCode.PAYMENT_TERMS_NOT_ALLOWED
    assert "3, 6 or 12" in rejected.value.reason.message


@pytest.mark.parametrize(
    "payment",
    [
        {"method": "installments", "installments": 4},
        {"method": "card", "installments": 3},
        {"method": "invoice", "terms": "NET30", "installments": 3},
    ],
)
def test_the_contract_refuses_instalments_it_does_not_offer(payment: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="installments"):
        an_order(Channel.B2C, payment)


def test_an_order_with_amounts_in_two_currencies_is_refused() -> None:
    order = an_order(Channel.B2C, {"method": "card"})
    plan = payment_plan(order, Decimal("5.00"), PRICED_ON)
    with pytest.raises(ValidationError, match="one order, one currency"):
        OrderPriced.new(
            order=order,
            lines=[],
            totals=Totals(currency="USD", subtotal=Decimal(5), total=Decimal(5)),
            payment=plan,
        )
    usd = plan.model_copy(update={"schedule": [plan.schedule[0].model_copy()]})
    usd.schedule[0] = DueAmount.model_validate({**plan.schedule[0].model_dump(), "currency": "USD"})
    with pytest.raises(ValidationError, match="one order, one currency"):
        OrderPriced.new(
            order=order,
            lines=[],
            totals=Totals(currency="EUR", subtotal=Decimal(5), total=Decimal(5)),
            payment=usd,
        )

    usd_line = PricedLine(
        sku="BOLT-M8",
        quantity=1,
        warehouse_id="wh-1",
        category="fasteners/bolts",
        unit_weight_kg=Decimal("0.01"),
        unit_price=Decimal(5),
        currency="USD",
        line_total=Decimal(5),
        price_source="list:list-USD",
    )
    with pytest.raises(ValidationError, match="one order, one currency"):
        OrderPriced.new(
            order=order,
            lines=[usd_line],
            totals=Totals(currency="EUR", subtotal=Decimal(5), total=Decimal(5)),
            payment=plan,
        )


def test_a_plan_mixing_currencies_is_refused() -> None:
    eur = {"kind": "instalment", "amount": "1", "due": "on_date", "due_on": "2026-01-01"}
    with pytest.raises(ValidationError, match="every amount of one plan"):
        PaymentPlan.model_validate(
            {
                "method": "installments",
                "installments": 3,
                "priced_on": "2026-01-01",
                "schedule": [
                    {**eur, "currency": "EUR"},
                    {**eur, "currency": "EUR"},
                    {**eur, "currency": "USD"},
                ],
            }
        )


def test_a_due_amount_has_a_date_exactly_when_it_is_due_on_a_date() -> None:
    with pytest.raises(ValidationError, match="due_on"):
        DueAmount.model_validate(
            {"kind": "full", "amount": "1", "currency": "EUR", "due": "on_date"}
        )
    with pytest.raises(ValidationError, match="due_on"):
        DueAmount.model_validate(
            {
                "kind": "full",
                "amount": "1",
                "currency": "EUR",
                "due": "on_fulfillment",
                "due_on": "2026-01-01",
            }
        )


# --- properties ---------------------------------------------------------------------------------

currencies = st.sampled_from(["JPY", "EUR", "BHD", "USD", "KWD", "CLP"])
days = st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31))


@st.composite
def totals(draw: st.DrawFn) -> tuple[Decimal, str]:
    """A total already in its currency's minor unit, as pricing computes it."""
    currency = draw(currencies)
    units = draw(st.integers(min_value=0, max_value=10**12 - 1))
    return units * minor_unit(currency), currency


@given(totals(), st.sampled_from([3, 6, 12]), days)
def test_instalments_always_sum_exactly_to_the_total(
    total_in: tuple[Decimal, str], months: int, first: date
) -> None:
    total, currency = total_in
    plan = installment_schedule(total, currency, months, first)
    unit = minor_unit(currency)
    assert sum(d.amount for d in plan) == total
    assert len(plan) == months
    assert all(d.amount == d.amount.quantize(unit) for d in plan)
    first_amount, *rest = [d.amount for d in plan]
    assert len(set(rest)) == 1
    assert 0 <= first_amount - rest[0] < unit * months
    dates = [d.due_on for d in plan]
    assert None not in dates and dates == sorted({d for d in dates if d is not None})


@given(totals(), st.integers(min_value=1, max_value=99), st.sampled_from(["NET30", "DOM15"]), days)
def test_deposit_and_remainder_always_sum_exactly_to_the_total(
    total_in: tuple[Decimal, str], percent: int, rest: str, priced_on: date
) -> None:
    total, currency = total_in
    deposit, remainder = due_schedule(parse(f"DEPOSIT{percent}_{rest}"), total, currency, priced_on)
    assert deposit.amount + remainder.amount == total
    assert deposit.amount == deposit.amount.quantize(minor_unit(currency))
    assert abs(deposit.amount - total * percent / 100) <= minor_unit(currency) / 2
    assert deposit.due_on == priced_on
    assert remainder.due_on is not None and remainder.due_on > priced_on


@given(st.sampled_from(["PREPAY", "ON_FULFILLMENT", "NET45", "DOM31"]), totals(), days)
def test_terms_without_a_deposit_put_the_whole_total_in_one_amount(
    terms: str, total_in: tuple[Decimal, str], priced_on: date
) -> None:
    total, currency = total_in
    [due] = due_schedule(parse(terms), total, currency, priced_on)
    assert (due.kind, due.amount, due.currency) == (DueKind.FULL, total, currency)


def test_a_line_written_before_lines_carried_a_currency_takes_the_totals_one() -> None:
    order = an_order(Channel.B2C, {"method": "card"})
    line = {
        "sku": "BOLT-M8",
        "quantity": 2,
        "warehouse_id": "wh-1",
        "category": "fasteners/bolts",
        "unit_weight_kg": "0.01",
        "unit_price": "2.50",
        "line_total": "5.00",
        "price_source": "list:list-EUR",
    }
    written = OrderPriced.new(
        order=order,
        lines=[],
        totals=Totals(currency="EUR", subtotal=Decimal(5), total=Decimal(5)),
    ).model_dump(mode="json", by_alias=True)
    priced = ORDERS_PRICED.parse(json.dumps({**written, "lines": [line]}).encode())
    assert isinstance(priced, OrderPriced)
    assert [priced_line.currency for priced_line in priced.lines] == ["EUR"]
