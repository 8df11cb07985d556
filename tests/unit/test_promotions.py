"""Promotion rules on plain data: eligibility, the combination rule, codes, never negative."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from services.pricing.promotions import InvalidPromoCode, NotApplied, Usage, apply_promotions
from shared.contract import Channel, Order, PricedLine, Promotion, ReasonCode

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def a_promotion(promotion_id: str = "p1", **fields: Any) -> Promotion:
    data: dict[str, Any] = {
        "schema": "pricing.promotions/v1",
        "event_id": "00000000-0000-4000-8000-000000000001",
        "occurred_at": NOW,
        "promotion_id": promotion_id,
        "name": promotion_id.upper(),
        "kind": "percentage",
        "percent": Decimal(10),
        "scope": "order",
        "valid_from": NOW - timedelta(days=1),
        "valid_until": NOW + timedelta(days=1),
    }
    data.update(fields)
    return Promotion.model_validate(data)


def an_order(codes: list[str] | None = None, channel: Channel = Channel.B2C, **kw: Any) -> Order:
    return Order.model_validate(
        {
            "order_id": "web-1",
            "shop_id": "web",
            "channel": channel,
            "account_id": "guest-42",
            "buyer_id": "u-17",
            "currency": kw.get("currency", "EUR"),
            "lines": [{"sku": "MUG", "quantity": 1}],
            "payment": {"method": "card"},
            "promo_codes": codes or [],
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


def a_line(
    sku: str = "MUG",
    price: str = "10.00",
    quantity: int = 2,
    category: str = "kitchen/mugs",
    source: str = "list:list-EUR",
) -> PricedLine:
    unit = Decimal(price)
    return PricedLine(
        sku=sku,
        quantity=quantity,
        warehouse_id="wh-1",
        category=category,
        unit_weight_kg=Decimal("0.3"),
        unit_price=unit,
        currency="EUR",
        line_total=unit * quantity,
        price_source=source,
    )


def test_an_order_promotion_is_a_separate_discount_and_lines_stay() -> None:
    promoted = apply_promotions(an_order(), [a_line()], [a_promotion()], {}, NOW)
    assert promoted.lines[0].line_total == Decimal("20.00")
    assert promoted.totals.subtotal == Decimal("20.00")
    assert promoted.totals.discount == Decimal("2.00")
    assert promoted.totals.total == Decimal("18.00")
    assert promoted.applied == {"p1": Decimal("2.00")}


def test_the_best_line_promotion_wins_and_the_other_says_why_not() -> None:
    by_sku = a_promotion("by-sku", scope="sku", skus=["MUG"], percent=Decimal(10))
    by_category = a_promotion(
        "by-cat", scope="category", categories=["kitchen"], kind="fixed", percent=None,
        amount=Decimal("3"), currency="EUR",
    )  # fmt: skip
    promoted = apply_promotions(an_order(), [a_line()], [by_sku, by_category], {}, NOW)
    [line] = promoted.lines
    assert line.discount == Decimal("6")  # 3 per unit beats 10 % of 20
    assert line.line_total == Decimal("14.00")
    assert line.price_source == "list:list-EUR promotion:by-cat"
    notes = {n.promotion_id: (n.applied, n.reason) for n in line.promotions}
    assert notes == {"by-cat": (True, None), "by-sku": (False, "better_promotion_applied")}


def test_line_then_one_order_promotion_on_what_is_left() -> None:
    line_promo = a_promotion("line", scope="sku", skus=["MUG"], percent=Decimal(50))
    small, big = a_promotion("o-small", percent=Decimal(5)), a_promotion("o-big")
    promoted = apply_promotions(an_order(), [a_line()], [line_promo, small, big], {}, NOW)
    assert promoted.totals.subtotal == Decimal("10.00")
    assert promoted.totals.discount == Decimal("1.00")
    assert [(n.promotion_id, n.reason) for n in promoted.totals.promotions] == [
        ("o-big", None),
        ("o-small", "better_promotion_applied"),
    ]


@pytest.mark.parametrize(
    ("fields", "usage", "why"),
    [
        ({"valid_until": NOW - timedelta(seconds=1)}, Usage(), NotApplied.EXPIRED),
        ({"valid_from": NOW + timedelta(hours=1)}, Usage(), NotApplied.NOT_YET_VALID),
        ({"max_uses_total": 3}, Usage(3, 0), NotApplied.EXHAUSTED),
        ({"max_uses_per_customer": 1}, Usage(1, 1), NotApplied.CUSTOMER_LIMIT_REACHED),
        ({"channels": ["b2b"]}, Usage(), NotApplied.CHANNEL_NOT_ALLOWED),
        ({"min_order_value": Decimal(50), "currency": "EUR"}, Usage(), NotApplied.MINIMUM_NOT_MET),
        ({"currency": "USD", "min_order_value": Decimal(1)}, Usage(), NotApplied.CURRENCY_MISMATCH),
        ({"scope": "sku", "skus": ["BOLT"]}, Usage(), NotApplied.NOT_APPLICABLE),
        ({"active": False}, Usage(), NotApplied.UNKNOWN),
    ],
)
def test_a_code_that_may_not_apply_rejects_the_order_saying_why(
    fields: dict[str, Any], usage: Usage, why: NotApplied
) -> None:
    promo = a_promotion(code="WINTER10", **fields)
    with pytest.raises(InvalidPromoCode) as raised:
        apply_promotions(an_order(["winter10"]), [a_line()], [promo], {"p1": usage}, NOW)
    assert raised.value.why is why
    assert raised.value.reason.code is ReasonCode.INVALID_PROMO_CODE
    assert "'WINTER10'" in raised.value.reason.message
    assert why.value in raised.value.reason.message


def test_an_unknown_code_rejects_the_order() -> None:
    with pytest.raises(InvalidPromoCode) as raised:
        apply_promotions(an_order(["NOPE"]), [a_line()], [], {}, NOW)
    assert raised.value.why is NotApplied.UNKNOWN


def test_an_automatic_promotion_that_may_not_apply_is_listed_with_why() -> None:
    promo = a_promotion(scope="sku", skus=["MUG"], max_uses_total=1)
    promoted = apply_promotions(an_order(), [a_line()], [promo], {"p1": Usage(1, 0)}, NOW)
    [note] = promoted.lines[0].promotions
    assert (note.applied, note.reason, note.discount) == (False, "exhausted", 0)
    assert promoted.applied == {}


def test_a_quoted_line_gets_no_promotion_and_a_code_only_for_it_is_not_applicable() -> None:
    quoted = a_line(source="quote:q-1 v2")
    promo = a_promotion(scope="sku", skus=["MUG"], code="MUGS")
    automatic = promo.model_copy(update={"code": None})
    promoted = apply_promotions(an_order(), [quoted], [automatic], {}, NOW)
    assert promoted.lines[0].promotions[0].reason == "quoted_line"
    with pytest.raises(InvalidPromoCode):
        apply_promotions(an_order(["MUGS"]), [quoted], [promo], {}, NOW)


def test_b2b_gets_a_promotion_only_where_it_names_the_channel() -> None:
    for_both = a_promotion(channels=["b2b", "b2c"])
    promoted = apply_promotions(an_order(channel=Channel.B2B), [a_line()], [for_both], {}, NOW)
    assert promoted.totals.discount == Decimal("2.00")
    b2c_only = a_promotion()
    promoted = apply_promotions(an_order(channel=Channel.B2B), [a_line()], [b2c_only], {}, NOW)
    assert promoted.totals.discount == 0


@pytest.mark.parametrize(
    "fields",
    [
        {"percent": Decimal(101)},
        {"percent": Decimal(0)},
        {"kind": "fixed", "percent": None, "amount": Decimal(5)},  # no currency
        {"kind": "fixed", "percent": None, "amount": Decimal(5), "currency": "XXY"},
        {"kind": "fixed", "percent": None, "amount": "-5", "currency": "EUR"},
        {"valid_until": NOW - timedelta(days=2)},
        {"scope": "sku"},
        {"scope": "order", "skus": ["MUG"]},
    ],
)
def test_a_nonsense_promotion_is_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        a_promotion(**fields)


money = st.decimals(min_value=Decimal(0), max_value=Decimal("9999.99"), places=2)


@given(
    prices=st.lists(st.tuples(money, st.integers(1, 50)), min_size=1, max_size=4),
    percents=st.lists(st.decimals(Decimal("0.01"), Decimal(100), places=2), max_size=3),
    amounts=st.lists(st.decimals(Decimal("0.01"), Decimal(99999), places=2), max_size=3),
)
def test_no_promotion_makes_a_price_negative(
    prices: list[tuple[Decimal, int]], percents: list[Decimal], amounts: list[Decimal]
) -> None:
    lines = [a_line(f"S{i}", str(p), q, "c") for i, (p, q) in enumerate(prices)]
    skus = [line.sku for line in lines]
    by_category = {"scope": "category", "categories": ["c"]}
    promos = [a_promotion(f"pc{i}", percent=p, **by_category) for i, p in enumerate(percents)]
    promos += [a_promotion(f"po{i}", percent=p) for i, p in enumerate(percents)]
    fixed: dict[str, Any] = {"kind": "fixed", "percent": None, "currency": "EUR"}
    by_sku = {"scope": "sku", "skus": skus, **fixed}
    promos += [a_promotion(f"fs{i}", amount=a, **by_sku) for i, a in enumerate(amounts)]
    promos += [a_promotion(f"fo{i}", amount=a, **fixed) for i, a in enumerate(amounts)]
    promoted = apply_promotions(an_order(), lines, promos, {}, NOW)
    assert all(line.line_total >= 0 and line.discount >= 0 for line in promoted.lines)
    assert 0 <= promoted.totals.total <= promoted.totals.subtotal
    assert promoted.totals.subtotal == sum(line.line_total for line in promoted.lines)
    assert promoted.totals.total == promoted.totals.subtotal - promoted.totals.discount
    assert sum(promoted.applied.values()) == promoted.totals.discount + sum(
        line.discount for line in promoted.lines
    )


def test_many_promotions_on_a_line_list_the_applied_one_first_and_at_most_100() -> None:
    many = [
        a_promotion(f"p{i:03d}", scope="sku", skus=["MUG"], percent=Decimal(1 + i % 50))
        for i in range(150)
    ]
    [line] = apply_promotions(an_order(), [a_line()], many, {}, NOW).lines
    assert len(line.promotions) == 100
    assert line.promotions[0].applied and line.promotions[0].promotion_id == "p049"
    assert not any(note.applied for note in line.promotions[1:])
