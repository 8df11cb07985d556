"""Catalog's handlers, in-process on SQLite: every incoming event and what catalog does with it.

The demo data set is loaded first (warehouses, products, stock, accounts); each
test then plays the part of PIM, the WMS, shops and the later services, and
delivers every event through the whole consume path.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from services.catalog import store
from services.catalog.app import NAME
from services.catalog.handlers import HANDLERS, refuse_order
from shared.contract import (
    BackorderFilled,
    OrderCancelled,
    OrderState,
    OrderStatusChanged,
    OrderSubmitted,
    OrderValidated,
    Product,
    Reason,
    ReasonCode,
    Shipment,
    ShipmentLine,
    ShipmentMode,
    StockAdjustment,
    StockLevel,
    Warehouse,
    WarehouseKind,
)
from shared.topics import (
    ACCOUNTS,
    BACKORDERS_FILLED,
    ORDERS_CANCELLED,
    ORDERS_SUBMITTED,
    ORDERS_VALIDATED,
    PRODUCTS,
    STOCK,
    STOCK_ADJUSTMENTS,
    STOCK_MOVES,
    WAREHOUSES,
)
from tests.handlers.conftest import deliver_invalid, on_sqlite, resent, status_from
from tests.support.bench import ServiceBench
from tools.seed import (
    ACME,
    GLOBEX,
    accounts,
    b2b_order,
    b2c_order,
    products,
    stock_levels,
    warehouses,
)

DC = "dc-kassel"
"""Where the demo keeps 5000 of most SKUs; businesses are served from here first."""


@pytest.fixture
async def catalog(tmp_path: Path) -> AsyncIterator[ServiceBench]:
    async with on_sqlite(tmp_path, NAME, store.Base.metadata, HANDLERS, refuse_order) as bench:
        async with bench.db.transaction() as tx:  # one commit: the tests deliver one by one
            for warehouse in warehouses():
                await HANDLERS[WAREHOUSES](warehouse, tx)
            for product in products():
                await HANDLERS[PRODUCTS](product, tx)
            for level in stock_levels():
                await HANDLERS[STOCK](level, tx)
            for account in accounts():
                await HANDLERS[ACCOUNTS](account, tx)
        yield bench


# --- helpers ---------------------------------------------------------------------------------


async def shelf(bench: ServiceBench, sku: str, warehouse_id: str = DC) -> tuple[int, int]:
    """(on hand, reserved) of a SKU in a warehouse, as catalog's database has it."""
    async with bench.db.sessions() as session:
        levels = await store.stock_by_warehouse(session, {sku})
    [(on_hand, reserved)] = [(o, r) for w, o, r in levels[sku] if w == warehouse_id]
    return on_hand, reserved


async def set_stock(bench: ServiceBench, sku: str, **on_hand: int) -> None:
    """The WMS reports absolute levels; warehouses not named get 0 (`dc_kassel=3`)."""
    for site in warehouses():
        units = on_hand.get(site.warehouse_id.replace("-", "_"), 0)
        await bench.deliver(
            STOCK, StockLevel.new(sku=sku, warehouse_id=site.warehouse_id, on_hand=units)
        )


async def validated(bench: ServiceBench) -> list[OrderValidated]:
    return await bench.published(ORDERS_VALIDATED, OrderValidated)


async def fills(bench: ServiceBench) -> list[tuple[str, list[tuple[str, int]]]]:
    """Every `orders.backorder_filled`, as (order id, [(sku, units)])."""
    return [
        (filled.order_id, [(line.sku, line.quantity) for line in filled.lines])
        for filled in await bench.published(BACKORDERS_FILLED, BackorderFilled)
    ]


def reason_of(status: OrderStatusChanged) -> Reason:
    assert status.reason is not None, f"{status.status} without a reason"
    return status.reason


def shipment(shipment_id: str, lines: list[tuple[str, int, int]]) -> Shipment:
    """A freight shipment from the central DC: (sku, quantity, order line) per line."""
    return Shipment(
        shipment_id=shipment_id,
        mode=ShipmentMode.FREIGHT,
        warehouse_id=DC,
        carrier="freight-ltl",
        service_level="scheduled",
        tracking_number="TL000000000001",
        promised_date=date(2026, 12, 1),
        weight_kg=Decimal("48"),
        lines=[ShipmentLine(sku=s, quantity=q, line_no=n) for s, q, n in lines],
    )


def planned(order: OrderSubmitted) -> OrderStatusChanged:
    """Fulfillment reports it planned `order`'s shipments."""
    return status_from("fulfillment", order, OrderState.FULFILLMENT_PLANNED)


def shipped(
    order: OrderSubmitted, shipment_id: str, lines: list[tuple[str, int, int]]
) -> OrderStatusChanged:
    """Fulfillment reports a shipment of `order` left: (sku, quantity, order line) per line."""
    return status_from(
        "fulfillment", order, OrderState.SHIPPED, shipments=[shipment(shipment_id, lines)]
    )


async def accept(bench: ServiceBench, order: OrderSubmitted) -> OrderValidated:
    """Submit an order that must be accepted; returns what catalog hands to pricing."""
    await bench.deliver(ORDERS_SUBMITTED, order)
    assert await bench.history(order.order_id) == ["received"]
    [handed_on] = [v for v in await validated(bench) if v.order.order_id == order.order_id]
    return handed_on


# --- reference data ------------------------------------------------------------------------


async def test_a_new_product_warehouse_and_stock_level_are_used_by_the_next_order(
    catalog: ServiceBench,
) -> None:
    await catalog.deliver(
        WAREHOUSES,
        Warehouse.new(
            warehouse_id="wh-hamburg",
            name="Hamburg city warehouse",
            kind=WarehouseKind.REGIONAL,
            country="DE",
            postal_code="20095",
        ),
    )
    await catalog.deliver(
        PRODUCTS,
        Product.new(
            sku="ANCHOR-10",
            name="Wall anchor",
            category="fasteners/anchors",
            unit_weight_kg="0.050",
        ),
    )
    await catalog.deliver(
        STOCK, StockLevel.new(sku="ANCHOR-10", warehouse_id="wh-hamburg", on_hand=12)
    )
    handed_on = await accept(catalog, b2c_order("c-1", [("ANCHOR-10", 12)]))
    [line] = handed_on.lines
    assert (line.warehouse_id, line.category, line.unit_weight_kg) == (
        "wh-hamburg",
        "fasteners/anchors",
        Decimal("0.050"),
    )
    assert await shelf(catalog, "ANCHOR-10", "wh-hamburg") == (12, 12)


async def test_a_changed_account_and_product_change_what_may_be_bought(
    catalog: ServiceBench,
) -> None:
    await catalog.deliver(ORDERS_SUBMITTED, b2b_order("g-1", [("DRILL-18V", 1)], account_id=GLOBEX))
    assert reason_of((await catalog.statuses("g-1"))[-1]).code is ReasonCode.NOT_IN_ASSORTMENT
    [globex] = [a for a in accounts() if a.account_id == GLOBEX]
    await catalog.deliver(ACCOUNTS, resent(globex, assortment_categories=None))
    [saw] = [p for p in products() if p.sku == "SAW-LEGACY"]
    await catalog.deliver(PRODUCTS, resent(saw, active=True))
    handed_on = await accept(
        catalog, b2b_order("g-2", [("DRILL-18V", 1), ("SAW-LEGACY", 2)], account_id=GLOBEX)
    )
    assert [(line.sku, line.warehouse_id) for line in handed_on.lines] == [
        ("DRILL-18V", DC),
        ("SAW-LEGACY", DC),
    ]


# --- a submission --------------------------------------------------------------------------


async def test_an_accepted_business_order_is_received_and_handed_on_with_its_lines_held(
    catalog: ServiceBench,
) -> None:
    order = b2b_order("b-1", [("BOLT-M8-100", 40), ("CEMENT-25", 200)])
    handed_on = await accept(catalog, order)
    assert handed_on.order == order.order()
    assert [
        (line.line_no, line.sku, line.quantity, line.warehouse_id, line.category, line.backordered)
        for line in handed_on.lines
    ] == [
        (1, "BOLT-M8-100", 40, DC, "fasteners/bolts", 0),
        (2, "CEMENT-25", 200, DC, "building/cement", 0),
    ]
    [received] = await catalog.statuses("b-1")
    assert (received.account_id, received.channel, received.reported_by) == (
        ACME,
        order.channel,
        "catalog",
    )
    assert await shelf(catalog, "BOLT-M8-100") == (5000, 40)
    assert await shelf(catalog, "CEMENT-25") == (20000, 200)


async def test_a_consumer_order_is_held_in_a_regional_warehouse_of_its_country(
    catalog: ServiceBench,
) -> None:
    handed_on = await accept(catalog, b2c_order("c-1", [("GLOVE-L", 2)]))
    assert [line.warehouse_id for line in handed_on.lines] == ["wh-berlin"]
    assert await shelf(catalog, "GLOVE-L", "wh-berlin") == (200, 2)


REJECTIONS = "tradelane_order_rejections_total"
"""Counted by reason code for the overview dashboard's rejections by reason."""


@pytest.mark.parametrize(
    ("order", "code", "message"),
    [
        (b2c_order("r-1", [("NOPE-1", 1)]), ReasonCode.UNKNOWN_SKU, "is not in the catalog"),
        (b2c_order("r-2", [("SAW-LEGACY", 1)]), ReasonCode.UNKNOWN_SKU, "is no longer sold"),
        (
            b2b_order("r-3", [("HEADSET-BT", 1)]),
            ReasonCode.NOT_IN_ASSORTMENT,
            "not sold to b2b customers",
        ),
        (
            b2b_order("r-4", [("GLOVE-L", 20), ("DRILL-18V", 1)], account_id=GLOBEX),
            ReasonCode.NOT_IN_ASSORTMENT,
            "line 2: SKU 'DRILL-18V' (category 'tools/power') is not in account 'globex-ag''s",
        ),
        (
            b2b_order("r-5", [("CEMENT-25", 250)]),
            ReasonCode.QUANTITY_RULE,
            "it must be a multiple of 40 (rule of account acme-gmbh: min 200, increment 40)",
        ),
        (
            b2c_order("r-6", [("HEADSET-BT", 51)]),
            ReasonCode.OUT_OF_STOCK,
            "51 requested, at most 50 available in one warehouse (80 in all)",
        ),
    ],
    ids=["unknown", "inactive", "channel", "assortment", "quantity", "stock"],
)
async def test_a_submission_the_checks_refuse_is_rejected_and_holds_nothing(
    catalog: ServiceBench, order: OrderSubmitted, code: ReasonCode, message: str
) -> None:
    rejections = {"service": NAME, "channel": order.channel.value, "reason": code.value}
    counted_before = REGISTRY.get_sample_value(REJECTIONS, rejections) or 0.0
    await catalog.deliver(ORDERS_SUBMITTED, order)
    received, rejected = await catalog.statuses(order.order_id)
    assert (received.status, rejected.status) == (OrderState.RECEIVED, OrderState.REJECTED)
    assert reason_of(rejected).code is code
    assert REGISTRY.get_sample_value(REJECTIONS, rejections) == counted_before + 1
    assert message in reason_of(rejected).message
    assert await validated(catalog) == []
    assert await shelf(catalog, "HEADSET-BT", "wh-berlin") == (50, 0)
    assert await shelf(catalog, "GLOVE-L") == (5000, 0)


async def test_a_business_that_allows_it_gets_the_missing_units_backordered(
    catalog: ServiceBench,
) -> None:
    await set_stock(catalog, "BOLT-M8-100", dc_kassel=30, wh_berlin=10)
    handed_on = await accept(catalog, b2b_order("b-1", [("BOLT-M8-100", 100)]))
    [line] = handed_on.lines
    assert (line.warehouse_id, line.quantity, line.backordered) == (DC, 100, 70)
    assert await shelf(catalog, "BOLT-M8-100") == (30, 30)


@pytest.mark.parametrize(
    "order",
    [
        b2c_order("c-1", [("BOLT-M8-100", 100)]),
        b2b_order("g-1", [("BOLT-M8-100", 100)], account_id=GLOBEX),
    ],
    ids=["consumer", "business-without-backorders"],
)
async def test_a_consumer_or_a_business_that_did_not_agree_never_backorders(
    catalog: ServiceBench, order: OrderSubmitted
) -> None:
    await set_stock(catalog, "BOLT-M8-100", dc_kassel=30)
    await catalog.deliver(ORDERS_SUBMITTED, order)
    assert reason_of((await catalog.statuses(order.order_id))[-1]).code is ReasonCode.OUT_OF_STOCK
    assert await shelf(catalog, "BOLT-M8-100") == (30, 0)


async def test_a_sku_no_warehouse_stocks_is_out_of_stock_even_with_backorders(
    catalog: ServiceBench,
) -> None:
    await catalog.deliver(
        PRODUCTS, Product.new(sku="NEW-1", name="New", category="tools/hand", unit_weight_kg="1")
    )
    await catalog.deliver(ORDERS_SUBMITTED, b2b_order("b-1", [("NEW-1", 1)]))
    rejected = (await catalog.statuses("b-1"))[-1]
    assert reason_of(rejected).message == "line 1: SKU 'NEW-1': 1 requested, no warehouse stocks it"


# --- an order id is answered once ------------------------------------------------------------


async def test_a_redelivered_or_retried_submission_changes_nothing(catalog: ServiceBench) -> None:
    order = b2b_order("b-1", [("BOLT-M8-100", 40)])
    await accept(catalog, order)
    await catalog.deliver(ORDERS_SUBMITTED, order)  # the broker again
    await catalog.deliver(ORDERS_SUBMITTED, resent(order))  # the shop again, same content
    assert await catalog.history("b-1") == ["received"]
    assert len(await validated(catalog)) == 1
    assert await shelf(catalog, "BOLT-M8-100") == (5000, 40)
    assert await catalog.dead_letters(ORDERS_SUBMITTED) == []


async def test_other_content_under_a_live_order_id_is_dead_lettered_and_the_order_goes_on(
    catalog: ServiceBench,
) -> None:
    await accept(catalog, b2b_order("b-1", [("BOLT-M8-100", 40)]))
    await catalog.deliver(ORDERS_SUBMITTED, b2b_order("b-1", [("BOLT-M8-100", 400)]))
    [letter] = await catalog.dead_letters(ORDERS_SUBMITTED)
    assert letter.error.startswith("duplicate_order_id: order b-1 is under way with other content")
    assert await catalog.history("b-1") == ["received"]
    assert await shelf(catalog, "BOLT-M8-100") == (5000, 40)


async def test_another_accounts_submission_under_my_order_id_is_dead_lettered(
    catalog: ServiceBench,
) -> None:
    await accept(catalog, b2b_order("b-1", [("BOLT-M8-100", 40)]))
    await catalog.deliver(ORDERS_SUBMITTED, b2b_order("b-1", [("GLOVE-L", 20)], account_id=GLOBEX))
    [letter] = await catalog.dead_letters(ORDERS_SUBMITTED)
    assert letter.error == "foreign_order: order id b-1 belongs to another account"
    assert await catalog.history("b-1") == ["received"]
    assert len(await validated(catalog)) == 1


async def test_another_accounts_cancellation_of_my_order_is_dead_lettered_and_changes_nothing(
    catalog: ServiceBench,
) -> None:
    await accept(catalog, b2b_order("b-1", [("BOLT-M8-100", 40)]))
    await catalog.deliver(ORDERS_CANCELLED, OrderCancelled.new(order_id="b-1", account_id=GLOBEX))
    [letter] = await catalog.dead_letters(ORDERS_CANCELLED)
    assert letter.error == "foreign_order: order id b-1 belongs to another account"
    assert await catalog.history("b-1") == ["received"]
    assert await shelf(catalog, "BOLT-M8-100") == (5000, 40)


async def test_an_early_cancellation_cancels_its_own_accounts_order_when_it_arrives(
    catalog: ServiceBench,
) -> None:
    cancel = OrderCancelled.new(order_id="b-1", account_id=ACME, reason="ordered twice")
    await catalog.deliver(ORDERS_CANCELLED, cancel)
    assert await catalog.statuses("b-1") == []
    await catalog.deliver(ORDERS_SUBMITTED, b2b_order("b-1", [("BOLT-M8-100", 40)]))
    [cancelled] = await catalog.statuses("b-1")
    assert cancelled.status is OrderState.CANCELLED
    assert reason_of(cancelled) == Reason(
        code=ReasonCode.CANCELLED_BY_SHOP, message="ordered twice"
    )
    assert await validated(catalog) == []
    assert await shelf(catalog, "BOLT-M8-100") == (5000, 0)


async def test_an_early_cancellation_by_another_account_leaves_my_order_alone(
    catalog: ServiceBench,
) -> None:
    await catalog.deliver(ORDERS_CANCELLED, OrderCancelled.new(order_id="b-1", account_id=GLOBEX))
    await accept(catalog, b2b_order("b-1", [("BOLT-M8-100", 40)]))
    assert await catalog.dead_letters(ORDERS_CANCELLED) == []


async def test_a_corrected_resubmission_of_an_order_rejected_invalid_is_rejected_as_a_duplicate(
    catalog: ServiceBench,
) -> None:
    await deliver_invalid(catalog, ORDERS_SUBMITTED, "b-1")
    await catalog.deliver(ORDERS_SUBMITTED, b2b_order("b-1", [("BOLT-M8-100", 40)]))
    invalid, duplicate = await catalog.statuses("b-1")
    assert (invalid.account_id, reason_of(invalid).code) == (ACME, ReasonCode.INVALID_EVENT)
    assert reason_of(duplicate).code is ReasonCode.DUPLICATE_ORDER_ID
    assert "answered before (rejected)" in reason_of(duplicate).message
    assert await validated(catalog) == []
    assert await shelf(catalog, "BOLT-M8-100") == (5000, 0)


async def test_other_content_under_a_rejected_order_id_is_rejected_as_a_duplicate(
    catalog: ServiceBench,
) -> None:
    await catalog.deliver(ORDERS_SUBMITTED, b2b_order("b-1", [("NOPE-1", 1)]))
    await catalog.deliver(ORDERS_SUBMITTED, b2b_order("b-1", [("BOLT-M8-100", 1)]))
    assert await catalog.history("b-1") == ["received", "rejected", "rejected"]
    assert reason_of((await catalog.statuses("b-1"))[-1]).code is ReasonCode.DUPLICATE_ORDER_ID
    assert await catalog.dead_letters(ORDERS_SUBMITTED) == []


async def test_a_broken_message_naming_a_known_order_leaves_it_alone(catalog: ServiceBench) -> None:
    await accept(catalog, b2b_order("b-1", [("BOLT-M8-100", 40)]))
    await catalog.deliver(ORDERS_SUBMITTED, b'{"order_id": "b-1", "account_id": "acme-gmbh"}')
    assert len(await catalog.dead_letters(ORDERS_SUBMITTED)) == 1
    assert await catalog.history("b-1") == ["received"]
    assert await shelf(catalog, "BOLT-M8-100") == (5000, 40)


# --- what happens to an accepted order's stock -----------------------------------------------


async def test_the_shops_cancellation_releases_the_stock_once(catalog: ServiceBench) -> None:
    await accept(catalog, b2b_order("b-1", [("BOLT-M8-100", 40)]))
    await catalog.deliver(ORDERS_CANCELLED, OrderCancelled.new(order_id="b-1", account_id=ACME))
    await catalog.deliver(ORDERS_CANCELLED, OrderCancelled.new(order_id="b-1", account_id=ACME))
    received, cancelled = await catalog.statuses("b-1")
    assert cancelled.status is OrderState.CANCELLED
    assert (cancelled.account_id, cancelled.channel) == (ACME, received.channel)
    assert reason_of(cancelled) == Reason(
        code=ReasonCode.CANCELLED_BY_SHOP, message="cancelled by shop"
    )
    assert await shelf(catalog, "BOLT-M8-100") == (5000, 0)


@pytest.mark.parametrize(
    ("by", "state", "code"),
    [
        ("pricing", OrderState.REJECTED, ReasonCode.PRICE_NOT_FOUND),
        ("approvals", OrderState.REJECTED, ReasonCode.APPROVAL_EXPIRED),
        ("approvals", OrderState.CANCELLED, ReasonCode.CANCELLED_BY_SHOP),
    ],
)
async def test_a_later_rejection_or_cancellation_releases_the_stock(
    catalog: ServiceBench, by: str, state: OrderState, code: ReasonCode
) -> None:
    order = b2b_order("b-1", [("BOLT-M8-100", 40), ("CEMENT-25", 200)])
    await accept(catalog, order)
    await catalog.hear(status_from(by, order, state, reason=Reason(code=code, message="x")))
    assert await shelf(catalog, "BOLT-M8-100") == (5000, 0)
    assert await shelf(catalog, "CEMENT-25") == (20000, 0)
    assert await catalog.history("b-1") == ["received"]  # the other service told the shop
    await catalog.deliver(ORDERS_CANCELLED, OrderCancelled.new(order_id="b-1", account_id=ACME))
    assert await catalog.history("b-1") == ["received"]  # too late to cancel


async def test_catalogs_own_reports_coming_back_change_nothing(catalog: ServiceBench) -> None:
    order = b2b_order("b-1", [("BOLT-M8-100", 40)])
    await accept(catalog, order)
    rejected = Reason(code=ReasonCode.OUT_OF_STOCK, message="x")
    await catalog.hear(status_from(NAME, order, OrderState.REJECTED, reason=rejected))
    assert await shelf(catalog, "BOLT-M8-100") == (5000, 40)


async def test_once_fulfillment_planned_it_a_late_cancel_or_rejection_keeps_the_stock(
    catalog: ServiceBench,
) -> None:
    order = b2b_order("b-1", [("BOLT-M8-100", 40)])
    await accept(catalog, order)
    await catalog.hear(planned(order))
    veto = Reason(code=ReasonCode.APPROVAL_REJECTED, message="x")
    await catalog.hear(status_from("approvals", order, OrderState.REJECTED, reason=veto))
    await catalog.deliver(ORDERS_CANCELLED, OrderCancelled.new(order_id="b-1", account_id=ACME))
    assert await shelf(catalog, "BOLT-M8-100") == (5000, 40)
    assert await catalog.history("b-1") == ["received"]


async def test_each_shipment_takes_its_units_off_the_shelf_once(catalog: ServiceBench) -> None:
    order = b2b_order("b-1", [("BOLT-M8-100", 40), ("CEMENT-25", 200)])
    await accept(catalog, order)
    await catalog.hear(planned(order))
    first = shipped(order, "b-1-1", [("BOLT-M8-100", 40, 1), ("CEMENT-25", 80, 2)])
    await catalog.hear(first)
    await catalog.hear(resent(first))  # the same shipment reported again
    assert await shelf(catalog, "BOLT-M8-100") == (4960, 0)
    assert await shelf(catalog, "CEMENT-25") == (19920, 120)
    rest = shipped(order, "b-1-2", [("CEMENT-25", 120, 2)])
    await catalog.hear(rest)
    assert await shelf(catalog, "CEMENT-25") == (19800, 0)
    assert await catalog.history("b-1") == ["received"]


async def test_a_shipment_that_matches_no_reservation_is_dead_lettered_and_stock_stays(
    catalog: ServiceBench,
) -> None:
    order = b2b_order("b-1", [("BOLT-M8-100", 40)])
    await accept(catalog, order)
    wrong = shipped(order, "b-1-1", [("BOLT-M8-100", 40, 1), ("GLOVE-L", 1, 2)])
    await catalog.hear(wrong)
    [letter] = await catalog.dead_letters(STOCK_MOVES)
    assert "line 2 (GLOVE-L from dc-kassel) matches no reservation of order b-1" in letter.error
    assert await shelf(catalog, "BOLT-M8-100") == (5000, 40)


async def test_a_report_about_an_order_catalog_never_saw_changes_nothing(
    catalog: ServiceBench,
) -> None:
    stranger = b2b_order("x-1", [("BOLT-M8-100", 40)])
    await catalog.hear(status_from("pricing", stranger, OrderState.REJECTED))
    await catalog.hear(shipped(stranger, "x-1-1", [("BOLT-M8-100", 40, 1)]))
    assert await catalog.dead_letters(STOCK_MOVES) == []
    assert await shelf(catalog, "BOLT-M8-100") == (5000, 0)


# --- stock arriving --------------------------------------------------------------------------


async def wait_for_bolts(catalog: ServiceBench) -> None:
    """No bolts anywhere; ACME's 5 (`b-first`) wait longer than its 3 (`a-second`)."""
    await set_stock(catalog, "BOLT-M8-100")
    early = datetime.now(UTC) - timedelta(minutes=5)
    first = b2b_order("b-first", [("BOLT-M8-100", 5)]).model_copy(update={"occurred_at": early})
    await accept(catalog, first)
    await accept(catalog, b2b_order("a-second", [("BOLT-M8-100", 3)]))


async def test_a_stock_level_fills_waiting_backorders_first_come_first_served(
    catalog: ServiceBench,
) -> None:
    await wait_for_bolts(catalog)
    await catalog.deliver(STOCK, StockLevel.new(sku="BOLT-M8-100", warehouse_id=DC, on_hand=6))
    assert await fills(catalog) == [
        ("b-first", [("BOLT-M8-100", 5)]),
        ("a-second", [("BOLT-M8-100", 1)]),
    ]
    [first, _] = await catalog.published(BACKORDERS_FILLED, BackorderFilled)
    assert (first.account_id, first.lines[0].warehouse_id, first.lines[0].line_no) == (ACME, DC, 1)
    assert await shelf(catalog, "BOLT-M8-100") == (6, 6)


async def test_an_adjustment_fills_the_head_of_the_queue_first(catalog: ServiceBench) -> None:
    await wait_for_bolts(catalog)
    arrival = StockAdjustment.new(sku="BOLT-M8-100", warehouse_id=DC, delta=2, reason="delivery")
    await catalog.deliver(STOCK_ADJUSTMENTS, arrival)
    await catalog.deliver(STOCK_ADJUSTMENTS, arrival)  # applied once per event
    assert await fills(catalog) == [("b-first", [("BOLT-M8-100", 2)])]
    assert await shelf(catalog, "BOLT-M8-100") == (2, 2)


async def test_stock_released_by_a_cancellation_goes_to_a_waiting_backorder(
    catalog: ServiceBench,
) -> None:
    await set_stock(catalog, "BOLT-M8-100", dc_kassel=10)
    await accept(catalog, b2b_order("b-1", [("BOLT-M8-100", 10)]))
    await accept(catalog, b2b_order("b-2", [("BOLT-M8-100", 4)]))
    await catalog.deliver(ORDERS_CANCELLED, OrderCancelled.new(order_id="b-1", account_id=ACME))
    assert await fills(catalog) == [("b-2", [("BOLT-M8-100", 4)])]
    assert await shelf(catalog, "BOLT-M8-100") == (10, 4)


async def test_a_cancelled_order_stops_waiting(catalog: ServiceBench) -> None:
    await wait_for_bolts(catalog)
    await catalog.deliver(ORDERS_CANCELLED, OrderCancelled.new(order_id="b-first", account_id=ACME))
    await catalog.deliver(STOCK, StockLevel.new(sku="BOLT-M8-100", warehouse_id=DC, on_hand=20))
    assert await fills(catalog) == [("a-second", [("BOLT-M8-100", 3)])]


async def test_a_planned_order_still_gets_its_backorder_filled(catalog: ServiceBench) -> None:
    await set_stock(catalog, "BOLT-M8-100")
    order = b2b_order("b-1", [("BOLT-M8-100", 5)])
    await accept(catalog, order)
    await catalog.hear(planned(order))
    await catalog.deliver(STOCK, StockLevel.new(sku="BOLT-M8-100", warehouse_id=DC, on_hand=5))
    assert await fills(catalog) == [("b-1", [("BOLT-M8-100", 5)])]


async def test_an_adjustment_below_zero_is_dead_lettered_and_stock_stays(
    catalog: ServiceBench,
) -> None:
    removal = StockAdjustment.new(sku="DRILL-18V", warehouse_id="wh-vienna", delta=-102, reason="x")
    await catalog.deliver(STOCK_ADJUSTMENTS, removal)
    [letter] = await catalog.dead_letters(STOCK_ADJUSTMENTS)
    assert "would take on hand of DRILL-18V in wh-vienna from 100 to -2" in letter.error
    assert await shelf(catalog, "DRILL-18V", "wh-vienna") == (100, 0)


async def test_a_level_below_what_is_reserved_keeps_the_reservations(catalog: ServiceBench) -> None:
    await accept(catalog, b2b_order("b-1", [("BOLT-M8-100", 40)]))
    await catalog.deliver(STOCK, StockLevel.new(sku="BOLT-M8-100", warehouse_id=DC, on_hand=25))
    assert await shelf(catalog, "BOLT-M8-100") == (25, 40)
    assert await fills(catalog) == []


# --- one-click reorder -----------------------------------------------------------------------


async def test_a_reorder_takes_the_earlier_orders_lines_and_holds_their_stock_again(
    catalog: ServiceBench,
) -> None:
    earlier = b2b_order("b-1", [("BOLT-M8-100", 40), ("CEMENT-25", 200)])
    first = await accept(catalog, earlier)
    handed_on = await accept(catalog, b2b_order("b-2", [], reorder_of="b-1", reference="PO-77"))
    assert handed_on.order.lines == earlier.lines
    assert (handed_on.order.reorder_of, handed_on.order.reference) == ("b-1", "PO-77")
    assert [line.model_dump() for line in handed_on.lines] == [
        line.model_dump() for line in first.lines
    ]
    assert await shelf(catalog, "BOLT-M8-100") == (5000, 80)
    assert await shelf(catalog, "CEMENT-25") == (20000, 400)


async def test_a_reorder_of_a_reorder_and_of_a_cancelled_order_takes_the_same_lines(
    catalog: ServiceBench,
) -> None:
    earlier = b2b_order("b-1", [("BOLT-M8-100", 40)])
    await accept(catalog, earlier)
    await catalog.deliver(ORDERS_CANCELLED, OrderCancelled.new(order_id="b-1", account_id=ACME))
    await accept(catalog, b2b_order("b-2", [], reorder_of="b-1"))
    again = await accept(catalog, b2b_order("b-3", [], reorder_of="b-2"))
    assert (again.order.lines, again.order.reorder_of) == (earlier.lines, "b-2")
    assert await shelf(catalog, "BOLT-M8-100") == (5000, 80)


async def test_a_reorder_meets_todays_catalog_not_the_one_of_the_earlier_order(
    catalog: ServiceBench,
) -> None:
    await catalog.deliver(ORDERS_SUBMITTED, b2b_order("g-1", [("DRILL-18V", 1)], account_id=GLOBEX))
    assert reason_of((await catalog.statuses("g-1"))[-1]).code is ReasonCode.NOT_IN_ASSORTMENT
    [globex] = [a for a in accounts() if a.account_id == GLOBEX]
    await catalog.deliver(ACCOUNTS, resent(globex, assortment_categories=None))
    handed_on = await accept(catalog, b2b_order("g-2", [], account_id=GLOBEX, reorder_of="g-1"))
    assert [(line.sku, line.quantity) for line in handed_on.lines] == [("DRILL-18V", 1)]

    [drill] = [p for p in products() if p.sku == "DRILL-18V"]
    await catalog.deliver(PRODUCTS, resent(drill, active=False))
    await catalog.deliver(
        ORDERS_SUBMITTED, b2b_order("g-3", [], account_id=GLOBEX, reorder_of="g-2")
    )
    rejected = (await catalog.statuses("g-3"))[-1]
    assert (rejected.status, reason_of(rejected).code) == (
        OrderState.REJECTED,
        ReasonCode.UNKNOWN_SKU,
    )


@pytest.mark.parametrize(
    ("reorder", "earlier_id"),
    [
        (b2b_order("g-1", [], account_id=GLOBEX, reorder_of="b-1"), "b-1"),
        (b2b_order("g-1", [], account_id=GLOBEX, reorder_of="b-404"), "b-404"),
        (b2b_order("g-1", [], account_id=GLOBEX, reorder_of="broken-1"), "broken-1"),
    ],
    ids=["another account's", "unknown", "unreadable"],
)
async def test_a_reorder_of_no_order_of_ones_own_is_rejected_alike_and_holds_nothing(
    catalog: ServiceBench, reorder: OrderSubmitted, earlier_id: str
) -> None:
    await accept(catalog, b2b_order("b-1", [("BOLT-M8-100", 40)]))
    await deliver_invalid(catalog, ORDERS_SUBMITTED, order_id="broken-1", account_id=GLOBEX)
    await catalog.deliver(ORDERS_SUBMITTED, reorder)
    received, rejected = await catalog.statuses("g-1")
    assert (received.status, rejected.status) == (OrderState.RECEIVED, OrderState.REJECTED)
    assert reason_of(rejected) == Reason(
        code=ReasonCode.UNKNOWN_REORDER,
        message=f"reorder_of {earlier_id}: account globex-ag has no earlier order with this id "
        "to reorder; send the lines instead",
    )
    assert [v.order.order_id for v in await validated(catalog)] == ["b-1"]
    assert await shelf(catalog, "BOLT-M8-100") == (5000, 40)
    assert await catalog.history("b-1") == ["received"]


async def test_a_redelivered_or_retried_reorder_changes_nothing(catalog: ServiceBench) -> None:
    await accept(catalog, b2b_order("b-1", [("BOLT-M8-100", 40)]))
    reorder = b2b_order("b-2", [], reorder_of="b-1")
    await accept(catalog, reorder)
    await catalog.deliver(ORDERS_SUBMITTED, reorder)  # the broker again
    await catalog.deliver(ORDERS_SUBMITTED, resent(reorder))  # the shop again, same content
    assert await catalog.history("b-2") == ["received"]
    assert [v.order.order_id for v in await validated(catalog)] == ["b-1", "b-2"]
    assert await shelf(catalog, "BOLT-M8-100") == (5000, 80)
    assert await catalog.dead_letters(ORDERS_SUBMITTED) == []


async def test_a_retried_rejected_reorder_is_answered_once(catalog: ServiceBench) -> None:
    reorder = b2b_order("b-2", [], reorder_of="b-404")
    await catalog.deliver(ORDERS_SUBMITTED, reorder)
    await catalog.deliver(ORDERS_SUBMITTED, reorder)
    await catalog.deliver(ORDERS_SUBMITTED, resent(reorder))
    assert await catalog.history("b-2") == ["received", "rejected"]


async def test_a_submission_with_both_lines_and_reorder_of_is_dead_lettered_and_rejected(
    catalog: ServiceBench,
) -> None:
    await accept(catalog, b2b_order("b-1", [("BOLT-M8-100", 40)]))
    body = json.loads(b2b_order("b-2", [("GLOVE-L", 20)]).to_bytes())
    await catalog.deliver(ORDERS_SUBMITTED, json.dumps({**body, "reorder_of": "b-1"}).encode())
    [letter] = await catalog.dead_letters(ORDERS_SUBMITTED)
    assert "send either lines or reorder_of, not both" in letter.error
    [rejected] = await catalog.statuses("b-2")
    assert reason_of(rejected).code is ReasonCode.INVALID_EVENT
    assert await shelf(catalog, "GLOVE-L") == (5000, 0)


# --- batches -------------------------------------------------------------------------------


async def test_an_order_submitted_twice_in_one_batch_holds_its_stock_once_in_one_run(
    catalog: ServiceBench, caplog: pytest.LogCaptureFixture
) -> None:
    """The batch reads ahead that b-1 is new; its second event must still find the first's row,
    at once: not after a failed insert has sent the batch round again."""
    first = b2b_order("b-1", [("BOLT-M8-100", 40)])
    again = b2b_order("b-1", [("BOLT-M8-100", 40)])  # the shop sent it again: a new event id

    with caplog.at_level(logging.INFO, logger="shared.consume"):
        await catalog.deliver_batch(ORDERS_SUBMITTED, [first, again])

    assert [r.getMessage() for r in caplog.records if r.name == "shared.consume"] == []
    assert await catalog.history("b-1") == ["received"]
    assert [v.order.order_id for v in await validated(catalog)] == ["b-1"]
    assert await shelf(catalog, "BOLT-M8-100") == (5000, 40)


async def test_orders_in_one_batch_see_the_units_the_ones_before_them_took(
    catalog: ServiceBench,
) -> None:
    """The batch locks the stock once and each order plans from the session's rows: those
    rows must follow every reservation. If they did not, the second order would plan the
    Berlin units the first took, fail the guard and be rejected, though Kassel has them."""
    await set_stock(catalog, "GLOVE-L", wh_berlin=30, dc_kassel=50)
    orders = [b2c_order(f"c-{n}", [("GLOVE-L", 20)]) for n in range(1, 4)]

    await catalog.deliver_batch(ORDERS_SUBMITTED, orders)

    assert sorted(v.order.order_id for v in await validated(catalog)) == ["c-1", "c-2", "c-3"]
    berlin, kassel = await shelf(catalog, "GLOVE-L", "wh-berlin"), await shelf(catalog, "GLOVE-L")
    assert (berlin[1] + kassel[1], berlin[1] <= 30, kassel[1] <= 50) == (60, True, True)


async def test_an_early_cancellation_is_found_for_its_order_in_a_batch_of_new_orders(
    catalog: ServiceBench,
) -> None:
    await catalog.deliver(ORDERS_CANCELLED, OrderCancelled.new(order_id="b-2", account_id=ACME))
    orders = [b2b_order(f"b-{n}", [("BOLT-M8-100", 10)]) for n in range(1, 4)]

    await catalog.deliver_batch(ORDERS_SUBMITTED, orders)

    assert [await catalog.history(f"b-{n}") for n in range(1, 4)] == [
        ["received"],
        ["cancelled"],
        ["received"],
    ]
    assert await shelf(catalog, "BOLT-M8-100") == (5000, 20)
