"""Catalog's rules, without a database: which lines are accepted and where stock is held."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.catalog.domain import CatalogItem, StockAt, check_lines, reserve_stock
from shared.contract import Channel, ReasonCode, WarehouseKind
from shared.rejection import Rejected
from shared.seed import b2b_order, b2c_order

BOTH = frozenset({Channel.B2B, Channel.B2C})
ITEMS = {
    "BOLT": CatalogItem("BOLT", "fasteners", True, BOTH, Decimal("1.2")),
    "CEMENT": CatalogItem("CEMENT", "building", True, frozenset({Channel.B2B}), Decimal("25")),
    "OLD": CatalogItem("OLD", "tools", False, BOTH, Decimal("1")),
}
DC = StockAt("dc", WarehouseKind.CENTRAL_DC, "DE", 1000)
BERLIN = StockAt("berlin", WarehouseKind.REGIONAL, "DE", 20)
VIENNA = StockAt("vienna", WarehouseKind.REGIONAL, "AT", 500)


def reason_of(call: object) -> ReasonCode:
    with pytest.raises(Rejected) as rejected:
        call()  # type: ignore[operator]
    return rejected.value.reason.code


def test_an_unknown_sku_is_rejected_naming_the_line() -> None:
    order = b2c_order("o", [("BOLT", 1), ("NOPE", 1)])
    with pytest.raises(Rejected) as rejected:
        check_lines(order, ITEMS, None)
    assert rejected.value.reason.code is ReasonCode.UNKNOWN_SKU
    assert "line 2" in rejected.value.reason.message and "NOPE" in rejected.value.reason.message


def test_an_inactive_sku_is_rejected_as_unknown() -> None:
    assert reason_of(lambda: check_lines(b2c_order("o", [("OLD", 1)]), ITEMS, None)) is (
        ReasonCode.UNKNOWN_SKU
    )


def test_a_b2b_only_product_is_not_sold_to_consumers() -> None:
    assert reason_of(lambda: check_lines(b2c_order("o", [("CEMENT", 1)]), ITEMS, None)) is (
        ReasonCode.NOT_IN_ASSORTMENT
    )
    check_lines(b2b_order("o", [("CEMENT", 1)]), ITEMS, None)


def test_an_account_assortment_limits_what_it_may_buy() -> None:
    order = b2b_order("o", [("BOLT", 1), ("CEMENT", 1)])
    assert reason_of(lambda: check_lines(order, ITEMS, frozenset({"BOLT"}))) is (
        ReasonCode.NOT_IN_ASSORTMENT
    )
    check_lines(order, ITEMS, frozenset({"BOLT", "CEMENT"}))


def test_b2b_stock_is_held_in_the_central_dc() -> None:
    [held] = reserve_stock(b2b_order("o", [("BOLT", 10)]), ITEMS, {"BOLT": [BERLIN, VIENNA, DC]})
    assert held.warehouse_id == "dc"


def test_b2c_stock_is_held_in_a_domestic_regional_warehouse() -> None:
    [held] = reserve_stock(b2c_order("o", [("BOLT", 10)]), ITEMS, {"BOLT": [DC, VIENNA, BERLIN]})
    assert held.warehouse_id == "berlin"


def test_b2c_falls_back_to_the_domestic_dc_before_going_abroad() -> None:
    [held] = reserve_stock(b2c_order("o", [("BOLT", 30)]), ITEMS, {"BOLT": [DC, VIENNA, BERLIN]})
    assert held.warehouse_id == "dc"


def test_no_single_warehouse_with_enough_stock_rejects_out_of_stock() -> None:
    order = b2c_order("o", [("BOLT", 30)])
    with pytest.raises(Rejected) as rejected:
        reserve_stock(order, ITEMS, {"BOLT": [BERLIN]})
    assert rejected.value.reason.code is ReasonCode.OUT_OF_STOCK
    assert "30 requested" in rejected.value.reason.message


def test_two_lines_of_one_sku_cannot_take_the_same_units_twice() -> None:
    order = b2c_order("o", [("BOLT", 15), ("BOLT", 15)])
    held = reserve_stock(order, ITEMS, {"BOLT": [BERLIN, DC]})
    assert [h.warehouse_id for h in held] == ["berlin", "dc"]


@given(
    stock=st.lists(st.integers(min_value=0, max_value=50), min_size=1, max_size=4),
    wanted=st.lists(st.integers(min_value=1, max_value=60), min_size=1, max_size=5),
)
def test_allocations_never_exceed_free_stock(stock: list[int], wanted: list[int]) -> None:
    sites = [StockAt(f"w{i}", WarehouseKind.REGIONAL, "DE", n) for i, n in enumerate(stock)]
    order = b2c_order("o", [("BOLT", q) for q in wanted])
    try:
        held = reserve_stock(order, ITEMS, {"BOLT": sites})
    except Rejected as rejected:
        assert rejected.reason.code is ReasonCode.OUT_OF_STOCK
        return
    for site in sites:
        taken = sum(h.quantity for h in held if h.warehouse_id == site.warehouse_id)
        assert taken <= site.available
    assert [h.quantity for h in held] == wanted
