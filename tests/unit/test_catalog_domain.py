"""Catalog's rules, without a database: which lines are accepted, where stock is held, where an
order stands and where each unit of its lines is."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.catalog.domain import (
    ENDED_STAGES,
    OPEN_STAGES,
    TRANSITIONS,
    Allocation,
    Assortment,
    BuyerTerms,
    CatalogItem,
    Cause,
    LineUnits,
    NegativeStock,
    OutOfStock,
    QuantityLimits,
    Stage,
    StockAt,
    StockMove,
    Transition,
    WaitingLine,
    adjusted_on_hand,
    cause_of,
    check_lines,
    fill_backorders,
    may_backorder,
    quantity_limits,
    reserve_stock,
    transition,
)
from shared.contract import (
    AccountQuantityRule,
    Channel,
    Order,
    OrderState,
    QuantityRule,
    Reason,
    ReasonCode,
    StockAdjustment,
    WarehouseKind,
)
from shared.rejection import Rejected
from tools.seed import ACME, b2b_order, b2c_order

BOTH = frozenset({Channel.B2B, Channel.B2C})
B2B_ONLY = frozenset({Channel.B2B})


def item(
    sku: str,
    category: str,
    *,
    channels: frozenset[Channel] = BOTH,
    active: bool = True,
    pack_size: int = 1,
    rule: QuantityRule | None = None,
) -> CatalogItem:
    return CatalogItem(sku, category, active, channels, Decimal("1.2"), pack_size, rule)


ITEMS = {
    i.sku: i
    for i in (
        item("BOLT", "fasteners/bolts"),
        item("SCREW", "fasteners/screws"),
        item("NUT", "fastenersX/nuts"),
        item("GLOVE", "safety/gloves"),
        item("CEMENT", "building/cement", channels=B2B_ONLY),
        item("OLD", "tools/hand", active=False),
        item("BOX", "fasteners/boxed", pack_size=10),
        item(
            "PALLET",
            "building/blocks",
            rule=QuantityRule(min_quantity=20, increment=5, max_quantity=100),
        ),
        item("CASE", "safety/masks", pack_size=6, rule=QuantityRule(min_quantity=12)),
    )
}
DC = StockAt("dc", WarehouseKind.CENTRAL_DC, "DE", 1000)
BERLIN = StockAt("berlin", WarehouseKind.REGIONAL, "DE", 20)
VIENNA = StockAt("vienna", WarehouseKind.REGIONAL, "AT", 500)


def rejected_by(call: Callable[[], object]) -> Reason:
    with pytest.raises(Rejected) as rejected:
        call()
    return rejected.value.reason


def reason_of(call: Callable[[], object]) -> ReasonCode:
    return rejected_by(call).code


def may_buy(skus: Sequence[str] = (), categories: Sequence[str] = ()) -> BuyerTerms:
    """ACME's terms with an assortment of these SKUs and category subtrees."""
    return BuyerTerms(ACME, assortment=Assortment(frozenset(skus), tuple(categories)))


def own_rule(sku: str, **fields: int) -> BuyerTerms:
    """ACME's terms with its own quantity rule for one SKU and the whole catalog."""
    return BuyerTerms(ACME, quantity_rules={sku: QuantityRule(**fields)})


def free_stock(units: int, site: StockAt = DC) -> StockAt:
    return replace(site, available=units)


def where_held(allocations: Sequence[Allocation]) -> list[tuple[str, int, int]]:
    """Each line as (warehouse, units in stock, units backordered)."""
    return [(a.warehouse_id, a.in_stock, a.backordered) for a in allocations]


# --- which SKUs may be ordered -------------------------------------------------------------


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


def test_a_b2b_only_product_is_not_sold_to_consumers_even_if_their_assortment_lists_it() -> None:
    order = b2c_order("o", [("CEMENT", 1)])
    reason = rejected_by(lambda: check_lines(order, ITEMS, may_buy(skus=["CEMENT"])))
    assert reason.code is ReasonCode.NOT_IN_ASSORTMENT
    assert "line 1" in reason.message and "'CEMENT'" in reason.message
    assert "not sold to b2c customers" in reason.message


def test_an_account_assortment_limits_what_it_may_buy() -> None:
    order = b2b_order("o", [("BOLT", 1), ("CEMENT", 1)])
    assert reason_of(lambda: check_lines(order, ITEMS, may_buy(skus=["BOLT"]))) is (
        ReasonCode.NOT_IN_ASSORTMENT
    )
    check_lines(order, ITEMS, may_buy(skus=["BOLT", "CEMENT"]))


def test_a_sku_outside_the_assortment_is_rejected_naming_line_sku_category_and_account() -> None:
    order = b2b_order("o", [("BOLT", 1), ("CEMENT", 1)])
    reason = rejected_by(lambda: check_lines(order, ITEMS, may_buy(categories=["fasteners"])))
    assert reason.code is ReasonCode.NOT_IN_ASSORTMENT
    assert reason.message.startswith("line 2: SKU 'CEMENT'")
    assert "(category 'building/cement')" in reason.message
    assert f"account '{ACME}'" in reason.message


def test_an_assortment_category_allows_every_sku_below_it() -> None:
    order = b2b_order("o", [("BOLT", 1), ("SCREW", 1)])
    check_lines(order, ITEMS, may_buy(categories=["fasteners"]))


def test_an_assortment_category_matches_whole_path_segments_only() -> None:
    order = b2b_order("o", [("NUT", 1)])
    reason = rejected_by(lambda: check_lines(order, ITEMS, may_buy(categories=["fasteners"])))
    assert reason.code is ReasonCode.NOT_IN_ASSORTMENT
    assert "'NUT'" in reason.message and "'fastenersX/nuts'" in reason.message


def test_listed_skus_and_categories_combine_so_either_one_suffices() -> None:
    terms = may_buy(skus=["CEMENT"], categories=["fasteners"])
    check_lines(b2b_order("o", [("BOLT", 1), ("CEMENT", 1)]), ITEMS, terms)
    reason = rejected_by(lambda: check_lines(b2b_order("o", [("GLOVE", 1)]), ITEMS, terms))
    assert reason.code is ReasonCode.NOT_IN_ASSORTMENT
    assert "'GLOVE'" in reason.message and "'safety/gloves'" in reason.message


def test_an_account_without_an_assortment_may_buy_the_whole_catalog() -> None:
    order = b2b_order("o", [("BOLT", 1), ("NUT", 1), ("GLOVE", 1), ("CEMENT", 1)])
    check_lines(order, ITEMS, BuyerTerms(ACME, assortment=None))


def test_an_empty_assortment_allows_nothing() -> None:
    order = b2b_order("o", [("BOLT", 1)])
    assert reason_of(lambda: check_lines(order, ITEMS, may_buy())) is ReasonCode.NOT_IN_ASSORTMENT


# --- how many may be ordered (B2B) -----------------------------------------------------------


@pytest.mark.parametrize(
    ("quantity", "broken"),
    [
        (15, "at least 20 must be ordered"),
        (105, "at most 100 may be ordered"),
        (22, "it must be a multiple of 5"),
    ],
    ids=["below-min", "above-max", "off-increment"],
)
def test_a_b2b_line_breaking_the_product_rule_is_rejected_with_the_rule(
    quantity: int, broken: str
) -> None:
    order = b2b_order("o", [("BOLT", 1), ("PALLET", quantity)])
    reason = rejected_by(lambda: check_lines(order, ITEMS, None))
    assert reason.code is ReasonCode.QUANTITY_RULE
    assert reason.message == (
        f"line 2: SKU 'PALLET' quantity {quantity}: {broken} "
        "(rule of product PALLET: min 20, increment 5, max 100)"
    )


@pytest.mark.parametrize("quantity", [20, 25, 100])
def test_a_b2b_line_meeting_the_product_rule_is_accepted(quantity: int) -> None:
    check_lines(b2b_order("o", [("PALLET", quantity)]), ITEMS, None)


def test_without_an_increment_a_b2b_line_must_come_in_whole_packs() -> None:
    reason = rejected_by(lambda: check_lines(b2b_order("o", [("BOX", 15)]), ITEMS, None))
    assert reason.code is ReasonCode.QUANTITY_RULE
    assert "it must be a multiple of 10" in reason.message
    assert "(rule of product BOX: increment 10)" in reason.message
    check_lines(b2b_order("o", [("BOX", 30)]), ITEMS, None)


@pytest.mark.parametrize("quantity", [1, 7, 999_999])
def test_without_a_rule_or_a_pack_a_b2b_line_may_be_any_quantity(quantity: int) -> None:
    check_lines(b2b_order("o", [("BOLT", quantity)]), ITEMS, own_rule("PALLET", min_quantity=50))


@pytest.mark.parametrize(
    ("quantity", "broken"),
    [
        (30, "at least 40 must be ordered"),
        (105, "at most 100 may be ordered"),
        (42, "it must be a multiple of 5"),
    ],
    ids=["account-min", "product-max", "product-increment"],
)
def test_an_account_rule_replaces_only_the_fields_it_gives(quantity: int, broken: str) -> None:
    order = b2b_order("o", [("PALLET", quantity)])
    reason = rejected_by(lambda: check_lines(order, ITEMS, own_rule("PALLET", min_quantity=40)))
    assert reason.code is ReasonCode.QUANTITY_RULE
    assert f"quantity {quantity}: {broken}" in reason.message
    assert f"(rule of account {ACME}: min 40, increment 5, max 100)" in reason.message


def test_an_account_rule_lets_through_what_it_allows() -> None:
    terms = own_rule("PALLET", min_quantity=5, increment=1)
    check_lines(b2b_order("o", [("PALLET", 7)]), ITEMS, terms)


def test_an_account_rule_for_another_sku_leaves_the_product_rule_in_force() -> None:
    order = b2b_order("o", [("PALLET", 15)])
    reason = rejected_by(lambda: check_lines(order, ITEMS, own_rule("BOLT", min_quantity=1)))
    assert reason.code is ReasonCode.QUANTITY_RULE
    assert "(rule of product PALLET:" in reason.message and "account" not in reason.message


@pytest.mark.parametrize("quantity", [1, 3, 1000])
def test_consumer_orders_ignore_quantity_rules(quantity: int) -> None:
    order = b2c_order("o", [("PALLET", quantity), ("BOX", quantity), ("CASE", quantity)])
    check_lines(order, ITEMS, None)
    check_lines(order, ITEMS, own_rule("PALLET", min_quantity=5000))


@pytest.mark.parametrize(
    ("sku", "terms", "expected"),
    [
        ("BOLT", None, QuantityLimits(None, 1, None, "product BOLT")),
        ("BOX", None, QuantityLimits(None, 10, None, "product BOX")),
        ("PALLET", None, QuantityLimits(20, 5, 100, "product PALLET")),
        ("CASE", None, QuantityLimits(12, 6, None, "product CASE")),
        ("PALLET", BuyerTerms(ACME), QuantityLimits(20, 5, 100, "product PALLET")),
        (
            "PALLET",
            own_rule("PALLET", min_quantity=40),
            QuantityLimits(40, 5, 100, f"account {ACME}"),
        ),
        (
            "PALLET",
            own_rule("PALLET", min_quantity=1, increment=1, max_quantity=10),
            QuantityLimits(1, 1, 10, f"account {ACME}"),
        ),
        ("BOX", own_rule("BOX", max_quantity=50), QuantityLimits(None, 10, 50, f"account {ACME}")),
        ("BOX", own_rule("BOX", increment=4), QuantityLimits(None, 4, None, f"account {ACME}")),
        ("CASE", own_rule("CASE", max_quantity=60), QuantityLimits(12, 6, 60, f"account {ACME}")),
        ("BOX", own_rule("PALLET", min_quantity=40), QuantityLimits(None, 10, None, "product BOX")),
        (
            "PALLET",
            BuyerTerms(
                ACME, quantity_rules={"PALLET": AccountQuantityRule(sku="PALLET", max_quantity=60)}
            ),
            QuantityLimits(20, 5, 60, f"account {ACME}"),
        ),
    ],
    ids=[
        "no-rule-no-pack",
        "increment-is-the-pack",
        "product-rule",
        "product-rule-increment-from-pack",
        "account-without-rules",
        "account-min-over-product-rule",
        "account-rule-in-full",
        "account-max-and-pack",
        "account-increment-over-pack",
        "account-max-keeps-product-min-and-pack",
        "rule-for-another-sku",
        "account-rule-as-published",
    ],
)
def test_quantity_limits_combine_the_product_and_the_account_rule(
    sku: str, terms: BuyerTerms | None, expected: QuantityLimits
) -> None:
    assert quantity_limits(ITEMS[sku], terms) == expected


# --- where stock is held -------------------------------------------------------------------


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


def test_out_of_stock_carries_the_category_and_what_is_there() -> None:
    order = b2b_order("o", [("BOLT", 1), ("SCREW", 30)])
    with pytest.raises(OutOfStock) as rejected:
        reserve_stock(
            order, ITEMS, {"BOLT": [DC], "SCREW": [free_stock(12), free_stock(20, BERLIN)]}
        )
    assert rejected.value.category == "fasteners/screws"
    assert rejected.value.reason.code is ReasonCode.OUT_OF_STOCK
    assert rejected.value.reason.message == (
        "line 2: SKU 'SCREW': 30 requested, at most 20 available in one warehouse (32 in all)"
    )


# --- backorders ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("order", "terms", "allowed"),
    [
        (b2b_order("o", [("BOLT", 1)]), BuyerTerms(ACME, allows_backorders=True), True),
        (b2b_order("o", [("BOLT", 1)]), BuyerTerms(ACME, allows_backorders=False), False),
        (b2b_order("o", [("BOLT", 1)]), None, False),
        (b2c_order("o", [("BOLT", 1)]), BuyerTerms("cust", allows_backorders=True), False),
    ],
    ids=["b2b-allowed", "b2b-not-agreed", "b2b-unknown-account", "b2c-even-if-flagged"],
)
def test_only_businesses_that_agreed_to_wait_may_backorder(
    order: Order, terms: BuyerTerms | None, allowed: bool
) -> None:
    assert may_backorder(order, terms) is allowed


def test_a_line_no_warehouse_covers_is_held_in_its_best_warehouse_and_the_rest_waits() -> None:
    order = b2b_order("o", [("BOLT", 50)])
    [line] = reserve_stock(
        order, ITEMS, {"BOLT": [free_stock(40, BERLIN), free_stock(30)]}, backorders=True
    )
    assert line == Allocation(
        1, "BOLT", 50, "dc", "fasteners/bolts", Decimal("1.2"), backordered=20
    )
    assert line.in_stock == 30


def test_with_backorders_a_line_one_warehouse_covers_is_held_there_in_full() -> None:
    order = b2b_order("o", [("BOLT", 35)])
    allocations = reserve_stock(
        order, ITEMS, {"BOLT": [free_stock(40, BERLIN), free_stock(30)]}, backorders=True
    )
    assert where_held(allocations) == [("berlin", 35, 0)]


@pytest.mark.parametrize("rows", [{}, {"BOLT": []}], ids=["no-sku", "no-rows"])
def test_with_backorders_a_sku_no_warehouse_stocks_is_still_out_of_stock(
    rows: dict[str, list[StockAt]],
) -> None:
    order = b2b_order("o", [("BOLT", 5)])
    with pytest.raises(OutOfStock) as rejected:
        reserve_stock(order, ITEMS, rows, backorders=True)
    assert rejected.value.category == "fasteners/bolts"
    assert rejected.value.reason.code is ReasonCode.OUT_OF_STOCK
    assert rejected.value.reason.message == (
        "line 1: SKU 'BOLT': 5 requested, no warehouse stocks it"
    )


def test_negative_free_stock_is_taken_as_none_rather_than_less_than_none() -> None:
    order = b2b_order("o", [("BOLT", 10)])
    allocations = reserve_stock(order, ITEMS, {"BOLT": [free_stock(-5)]}, backorders=True)
    assert where_held(allocations) == [("dc", 0, 10)]


# --- stock arriving for backorders ---------------------------------------------------------


FIRST = WaitingLine("o-1", 1, 10)
SECOND = WaitingLine("o-2", 1, 5)
THIRD = WaitingLine("o-3", 2, 7)


def test_arriving_stock_fills_waiting_lines_first_come_first_served() -> None:
    assert fill_backorders(15, [FIRST, SECOND, THIRD]) == [(FIRST, 10), (SECOND, 5)]


def test_a_partial_fill_of_the_head_line_stops_there() -> None:
    small_later = WaitingLine("o-2", 1, 2)
    assert fill_backorders(6, [FIRST, small_later]) == [(FIRST, 6)]


def test_stock_left_after_every_waiting_line_stays_unused() -> None:
    assert fill_backorders(100, [FIRST, SECOND]) == [(FIRST, 10), (SECOND, 5)]


@pytest.mark.parametrize("available", [0, -3])
def test_no_free_stock_fills_nothing(available: int) -> None:
    assert fill_backorders(available, [FIRST, SECOND]) == []


# --- properties ------------------------------------------------------------------------------


@given(
    stock=st.lists(st.integers(min_value=0, max_value=50), min_size=1, max_size=4),
    wanted=st.integers(min_value=1, max_value=60),
)
def test_allocations_never_exceed_free_stock(stock: list[int], wanted: int) -> None:
    sites = [StockAt(f"w{i}", WarehouseKind.REGIONAL, "DE", n) for i, n in enumerate(stock)]
    order = b2c_order("o", [("BOLT", wanted)])
    try:
        held = reserve_stock(order, ITEMS, {"BOLT": sites})
    except Rejected as rejected:
        assert rejected.reason.code is ReasonCode.OUT_OF_STOCK
        return
    for site in sites:
        taken = sum(h.quantity for h in held if h.warehouse_id == site.warehouse_id)
        assert taken <= site.available
    assert [h.quantity for h in held] == [wanted]


SKUS = ["BOLT", "SCREW"]
stock_rows = st.dictionaries(
    keys=st.sampled_from(SKUS),
    values=st.lists(
        st.builds(
            free_stock, st.integers(min_value=-5, max_value=50), st.sampled_from([DC, BERLIN])
        ),
        max_size=2,
        unique_by=lambda site: site.warehouse_id,
    ),
)
order_lines = st.lists(
    st.tuples(st.sampled_from(SKUS), st.integers(min_value=1, max_value=60)),
    min_size=1,
    max_size=len(SKUS),
    unique_by=lambda line: line[0],  # the contract allows one line per SKU
)


def assert_within_free_stock(
    allocations: Sequence[Allocation], stock: dict[str, list[StockAt]]
) -> None:
    """Per SKU and warehouse, the units held in stock are at most the free units there."""
    taken: Counter[tuple[str, str]] = Counter()
    for a in allocations:
        taken[a.sku, a.warehouse_id] += a.in_stock
    free = {(sku, s.warehouse_id): s.available for sku, sites in stock.items() for s in sites}
    for site, units in taken.items():
        assert units <= max(free[site], 0)


@given(stock=stock_rows, lines=order_lines)
def test_backorders_never_promise_more_than_the_free_stock(
    stock: dict[str, list[StockAt]], lines: list[tuple[str, int]]
) -> None:
    order = b2b_order("o", lines)
    try:
        allocations = reserve_stock(order, ITEMS, stock, backorders=True)
    except OutOfStock as rejected:
        assert "no warehouse stocks it" in rejected.reason.message
        return
    assert_within_free_stock(allocations, stock)
    for a in allocations:
        assert 0 <= a.backordered <= a.quantity
    assert [(a.sku, a.quantity) for a in allocations] == lines


@given(stock=stock_rows, lines=order_lines)
def test_without_backorders_an_order_is_held_in_full_or_out_of_stock(
    stock: dict[str, list[StockAt]], lines: list[tuple[str, int]]
) -> None:
    order = b2b_order("o", lines)
    try:
        allocations = reserve_stock(order, ITEMS, stock)
    except OutOfStock as rejected:
        assert rejected.reason.code is ReasonCode.OUT_OF_STOCK
        return
    assert all(a.backordered == 0 for a in allocations)
    assert_within_free_stock(allocations, stock)
    assert [(a.sku, a.quantity) for a in allocations] == lines


# --- where an order stands ---------------------------------------------------------------------


def test_every_stage_is_either_open_or_ended() -> None:
    assert set(OPEN_STAGES) | ENDED_STAGES == set(Stage)
    assert not set(OPEN_STAGES) & ENDED_STAGES
    assert [s for s in Stage if s.open] == [Stage.RESERVED, Stage.FULFILLING]
    assert Stage("released").ended and not Stage("reserved").ended


def test_a_submission_the_checks_refuse_is_rejected_and_held_nothing() -> None:
    assert transition("reserved", Cause.REFUSED) == Transition(Stage.REJECTED, StockMove.KEEP)


def test_a_reserved_order_cancelled_by_its_shop_gives_its_stock_back() -> None:
    assert transition(Stage.RESERVED, Cause.SHOP_CANCELLED) == Transition(
        Stage.CANCELLED, StockMove.RELEASE
    )


@pytest.mark.parametrize("report", [OrderState.REJECTED, OrderState.CANCELLED])
def test_a_later_rejection_or_cancellation_releases_a_reserved_order(report: OrderState) -> None:
    cause = cause_of(report)
    assert cause is Cause.ENDED_LATER
    assert transition(Stage.RESERVED, cause) == Transition(Stage.RELEASED, StockMove.RELEASE)


def test_a_fulfillment_plan_keeps_the_stock() -> None:
    cause = cause_of(OrderState.FULFILLMENT_PLANNED)
    assert cause is Cause.FULFILLMENT_PLANNED
    assert transition(Stage.RESERVED, cause) == Transition(Stage.FULFILLING, StockMove.KEEP)


@pytest.mark.parametrize("cause", [Cause.SHOP_CANCELLED, Cause.ENDED_LATER, Cause.REFUSED])
def test_once_fulfillment_has_the_order_a_cancel_or_reject_changes_nothing(cause: Cause) -> None:
    assert transition(Stage.FULFILLING, cause) is None


@pytest.mark.parametrize("stage", sorted(ENDED_STAGES))
@pytest.mark.parametrize("cause", [c for c in Cause if c is not Cause.SHIPPED])
def test_an_ended_order_goes_nowhere(stage: Stage, cause: Cause) -> None:
    assert transition(stage, cause) is None


@pytest.mark.parametrize("stage", list(Stage))
def test_a_shipment_commits_its_units_whatever_the_stage_and_keeps_the_stage(
    stage: Stage,
) -> None:
    assert cause_of(OrderState.SHIPPED) is Cause.SHIPPED
    assert transition(stage, Cause.SHIPPED) == Transition(stage, StockMove.COMMIT)


@pytest.mark.parametrize(
    "report",
    [
        OrderState.RECEIVED,
        OrderState.AWAITING_APPROVAL,
        OrderState.APPROVED,
        OrderState.DELIVERED,
    ],
)
def test_other_reports_mean_nothing_to_catalog(report: OrderState) -> None:
    assert cause_of(report) is None


def test_only_a_reserved_order_or_a_shipment_moves_stock() -> None:
    moving = {key for key, move in TRANSITIONS.items() if move.stock is not StockMove.KEEP}
    assert {key for key in moving if key[1] is not Cause.SHIPPED} == {
        (Stage.RESERVED, Cause.SHOP_CANCELLED),
        (Stage.RESERVED, Cause.ENDED_LATER),
    }


# --- where each unit of an order line is ---------------------------------------------------------


def allocation(quantity: int, backordered: int = 0) -> Allocation:
    return Allocation(1, "BOLT", quantity, "dc", "fasteners/bolts", Decimal("1.2"), backordered)


def test_an_allocated_line_holds_what_is_in_stock_and_waits_for_the_rest() -> None:
    units = LineUnits.allocated(allocation(10, backordered=4))
    assert (units.held, units.backordered, units.quantity, units.waiting) == (6, 4, 10, True)
    assert not LineUnits.allocated(allocation(10)).waiting


def test_releasing_a_line_gives_back_what_it_held_and_stops_its_backorder() -> None:
    units = LineUnits(held=3, backordered=4, committed=2, released=0).release()
    assert units == LineUnits(held=0, backordered=0, committed=2, released=7)
    assert not units.waiting


def test_a_shipment_commits_at_most_what_the_line_holds() -> None:
    assert LineUnits(held=5).ship(3) == LineUnits(held=2, committed=3)
    assert LineUnits(held=2, backordered=3).ship(9) == LineUnits(held=0, backordered=3, committed=2)


def test_arriving_stock_moves_backordered_units_to_held() -> None:
    units = LineUnits(held=2, backordered=3).fill(1)
    assert (units.held, units.backordered, units.waiting) == (3, 2, True)
    assert not units.fill(2).waiting


@pytest.mark.parametrize("units", [0, 4])
def test_a_fill_is_never_more_than_the_backorder(units: int) -> None:
    with pytest.raises(ValueError, match="backorder of 3"):
        LineUnits(held=2, backordered=3).fill(units)


@given(
    quantity=st.integers(1, 50),
    backordered=st.integers(0, 50),
    steps=st.lists(
        st.tuples(st.sampled_from(["fill", "ship", "release"]), st.integers(1, 60)), max_size=12
    ),
)
def test_a_lines_units_are_never_lost_or_invented(
    quantity: int, backordered: int, steps: list[tuple[str, int]]
) -> None:
    units = LineUnits.allocated(allocation(quantity, min(backordered, quantity)))
    for kind, number in steps:
        if kind == "fill" and units.backordered:
            units = units.fill(min(number, units.backordered))
        elif kind == "ship":
            units = units.ship(number)
        elif kind == "release":
            units = units.release()
        parts = (units.held, units.backordered, units.committed, units.released)
        assert min(parts) >= 0 and units.quantity == quantity


# --- on hand -------------------------------------------------------------------------------------


def adjustment(delta: int) -> StockAdjustment:
    return StockAdjustment.new(sku="DRILL-18V", warehouse_id="wh-vienna", delta=delta, reason="x")


def test_an_adjustment_changes_on_hand_by_its_delta() -> None:
    assert adjusted_on_hand(3, adjustment(+5)) == 8
    assert adjusted_on_hand(3, adjustment(-3)) == 0


def test_an_adjustment_below_zero_is_refused_with_both_levels() -> None:
    with pytest.raises(
        NegativeStock, match="DRILL-18V in wh-vienna from 3 to -2; send the absolute"
    ):
        adjusted_on_hand(3, adjustment(-5))
