"""Pricing's money properties for any input: totals equal their lines in every currency's
minor unit, and volume tiers never raise the unit price."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.pricing.domain import AmbiguousPriceList, PriceBook, Tier
from shared.contract import Channel, PriceList
from shared.contract.money import minor_unit
from tests.unit.test_pricing_domain import an_order, priced

currencies = st.sampled_from(["JPY", "EUR", "BHD", "CLP", "KWD", "USD"])
prices = st.decimals(min_value=Decimal("0"), max_value=Decimal("99999.999999"), places=6)
quantities = st.integers(min_value=1, max_value=100_000)


@given(currencies, st.lists(st.tuples(prices, quantities), min_size=1, max_size=20))
def test_totals_equal_the_sum_of_lines_in_the_currencys_minor_unit(
    currency: str, lines: list[tuple[Decimal, int]]
) -> None:
    list_id = f"list-{currency}"
    book = PriceBook(
        list_id, currency, {f"SKU-{i}": (Tier(1, price),) for i, (price, _) in enumerate(lines)}
    )
    order = an_order(
        Channel.B2C,
        {f"SKU-{i}": quantity for i, (_, quantity) in enumerate(lines)},
        currency=currency,
    )

    result = priced(order, account=None, books={list_id: book})

    unit = minor_unit(currency)
    assert result.totals.currency == currency
    assert result.totals.total == result.totals.subtotal
    assert result.totals.total == sum(line.line_total for line in result.lines)
    for amount in [result.totals.total, *(line.line_total for line in result.lines)]:
        assert amount.as_tuple().exponent == unit.as_tuple().exponent
    for line, (price, quantity) in zip(result.lines, lines, strict=True):
        assert abs(line.line_total - price * quantity) <= unit / 2


tier_lists = st.lists(
    st.tuples(st.integers(min_value=1, max_value=10_000), prices),
    min_size=1,
    max_size=6,
    unique_by=lambda tier: tier[0],
)


def a_list(tiers: list[tuple[int, Decimal]]) -> PriceList:
    return PriceList.new(
        price_list_id="contract-x",
        currency="EUR",
        prices=[
            {
                "sku": "BOLT",
                "tiers": [{"min_quantity": q, "unit_price": price} for q, price in tiers],
            }
        ],
    )


@given(tier_lists, quantities, quantities)
def test_a_larger_quantity_never_pays_a_higher_unit_price(
    tiers: list[tuple[int, Decimal]], fewer: int, more: int
) -> None:
    """Whatever list arrives, a book pricing reads from it never charges more per unit for
    more units: a list that would is refused (`AmbiguousPriceList`, dead-letter topic)."""
    fewer, more = sorted((fewer, more))
    try:
        book = PriceBook.of(a_list(tiers))
    except AmbiguousPriceList:
        by_quantity = [price for _, price in sorted(tiers)]
        assert any(b > a for a, b in itertools.pairwise(by_quantity))
        return
    small, large = book.tier_for("BOLT", fewer), book.tier_for("BOLT", more)
    if small is not None:
        assert large is not None and large.unit_price <= small.unit_price


def test_a_list_whose_tier_raises_the_unit_price_is_refused_naming_it() -> None:
    with pytest.raises(AmbiguousPriceList, match=r"raises the unit price of SKU 'BOLT'"):
        PriceBook.of(a_list([(1, Decimal("0.40")), (100, Decimal("0.45"))]))


def test_a_list_whose_tiers_keep_the_unit_price_is_read() -> None:
    book = PriceBook.of(a_list([(1, Decimal("0.40")), (100, Decimal("0.40"))]))
    assert book.tier_for("BOLT", 100) == Tier(100, Decimal("0.40"))
