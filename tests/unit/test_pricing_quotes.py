"""Negotiated quotes, the pure rules: whose quote, expiry, fit, quoted prices, versions;
and the contract's refusals of unsound quotes (what ends in `pricing.quotes.dlq`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from services.pricing import quotes
from services.pricing.quotes import QuoteTerms
from shared.contract import Order, Quote, ReasonCode, ReservedLine
from shared.rejection import Rejected
from tests.handlers.conftest import reserved
from tools.seed import ACME, b2b_order

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def quote(**changes: Any) -> Quote:
    fields: dict[str, Any] = {
        "quote_id": "q-1",
        "account_id": ACME,
        "version": 3,
        "currency": "EUR",
        "lines": [
            {"sku": "DRILL-18V", "quantity": 20, "unit_price": "89.00"},
            {"sku": "BOLT-M8-100", "quantity": 500, "unit_price": "7.405"},
        ],
        "issued_at": NOW - timedelta(days=1),
        "valid_until": NOW + timedelta(days=30),
        "use": "single",
        **changes,
    }
    return Quote.new(**fields)


def order_for(
    lines: list[tuple[str, int]], account_id: str = ACME
) -> tuple[Order, list[ReservedLine]]:
    submitted = b2b_order("o-1", lines, account_id=account_id, quote_id="q-1")
    return submitted.order(), reserved(submitted)


def rejection(lines: list[tuple[str, int]], terms: QuoteTerms | None, **kw: Any) -> Rejected:
    order, reserved_lines = order_for(lines, **kw)
    with pytest.raises(Rejected) as raised:
        quotes.price_from_quote(order, reserved_lines, terms, kw.get("now", NOW))  # type: ignore[arg-type]
    return raised.value


def test_an_order_that_fits_is_priced_at_the_quote_naming_quote_and_version() -> None:
    order, lines = order_for([("DRILL-18V", 2), ("BOLT-M8-100", 100)])
    priced = quotes.price_from_quote(order, lines, QuoteTerms.of(quote()), NOW)
    assert [(p.unit_price, p.line_total, p.price_source) for p in priced.lines] == [
        (Decimal("89.00"), Decimal("178.00"), "quote:q-1 v3"),
        (Decimal("7.405"), Decimal("740.50"), "quote:q-1 v3"),
    ]
    assert priced.totals.total == Decimal("918.50")


def test_line_totals_round_to_the_minor_unit_half_to_even() -> None:
    order, lines = order_for([("BOLT-M8-100", 1)])
    [line] = quotes.price_from_quote(order, lines, QuoteTerms.of(quote()), NOW).lines
    assert line.line_total == Decimal("7.40")


def test_the_quoted_quantity_exactly_still_fits_one_more_does_not() -> None:
    terms = QuoteTerms.of(quote())
    order, lines = order_for([("DRILL-18V", 20)])
    assert quotes.price_from_quote(order, lines, terms, NOW).totals.total == Decimal("1780.00")
    refused = rejection([("DRILL-18V", 21)], terms)
    assert refused.reason.code is ReasonCode.QUOTE_MISMATCH
    assert "21 units of SKU 'DRILL-18V'" in refused.reason.message and "at most 20" in str(refused)


def test_a_sku_the_quote_does_not_name_refuses_the_whole_order() -> None:
    refused = rejection([("DRILL-18V", 1), ("CEMENT-25", 10)], QuoteTerms.of(quote()))
    assert refused.reason.code is ReasonCode.QUOTE_MISMATCH
    assert "'CEMENT-25' is not in quote 'q-1' (v3)" in refused.reason.message


def test_another_accounts_quote_is_answered_like_an_unknown_one() -> None:
    foreign = rejection([("DRILL-18V", 1)], QuoteTerms.of(quote(account_id="globex-ag")))
    unknown = rejection([("DRILL-18V", 1)], None)
    assert foreign.reason == unknown.reason
    assert foreign.reason.code is ReasonCode.UNKNOWN_QUOTE and "globex" not in str(foreign)


def test_a_quote_is_valid_strictly_before_its_valid_until() -> None:
    terms = QuoteTerms.of(quote())
    order, lines = order_for([("DRILL-18V", 1)])
    before = terms.valid_until - timedelta(microseconds=1)
    assert quotes.price_from_quote(order, lines, terms, before).lines
    with pytest.raises(Rejected) as raised:
        quotes.price_from_quote(order, lines, terms, terms.valid_until)
    assert raised.value.reason.code is ReasonCode.QUOTE_EXPIRED
    assert terms.valid_until.isoformat() in raised.value.reason.message


def test_a_quote_in_another_currency_does_not_fit() -> None:
    refused = rejection([("DRILL-18V", 1)], QuoteTerms.of(quote(currency="CHF")))
    assert refused.reason.code is ReasonCode.QUOTE_MISMATCH and "CHF" in refused.reason.message


@given(st.integers(1, 10**6), st.one_of(st.none(), st.integers(1, 10**6)))
def test_only_a_higher_version_replaces_the_kept_one(incoming: int, kept: int | None) -> None:
    assert quotes.newer(incoming, kept) is (kept is None or incoming > kept)


@given(st.integers(1, 40), st.integers(1, 1000))
def test_an_order_fits_exactly_when_every_sku_is_within_its_quoted_units(
    drills: int, bolts: int
) -> None:
    terms = QuoteTerms.of(quote())
    order, lines = order_for([("DRILL-18V", drills), ("BOLT-M8-100", bolts)])
    if drills <= 20 and bolts <= 500:
        priced = quotes.price_from_quote(order, lines, terms, NOW)
        assert [line.price_source for line in priced.lines] == ["quote:q-1 v3"] * 2
    else:
        with pytest.raises(Rejected) as raised:
            quotes.price_from_quote(order, lines, terms, NOW)
        assert raised.value.reason.code is ReasonCode.QUOTE_MISMATCH


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        ({"lines": []}, "at least 1"),
        ({"lines": [{"sku": "A", "quantity": 1, "unit_price": "-1.00"}]}, "negative"),
        (
            {
                "lines": [
                    {"sku": "A", "quantity": 1, "unit_price": "1.00"},
                    {"sku": "A", "quantity": 2, "unit_price": "1.00"},
                ]
            },
            "quoted more than once",
        ),
        ({"currency": "XYZ"}, "currency"),
        ({"valid_until": NOW - timedelta(days=2)}, "is not after issued_at"),
        ({"version": 0}, "greater than or equal to 1"),
    ],
)
def test_an_unsound_quote_is_refused_by_the_contract(changes: dict[str, Any], said: str) -> None:
    with pytest.raises(ValidationError) as raised:
        quote(**changes)
    assert said in str(raised.value).lower() or said in str(raised.value)
