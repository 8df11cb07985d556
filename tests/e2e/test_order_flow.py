"""An order's whole life over a real broker, four real service processes, and real SQLite."""

from __future__ import annotations

import uuid
from decimal import Decimal

from shared.contract import (
    OrderState,
    Product,
    ReasonCode,
    ShipmentMode,
    StockAdjustment,
    StockLevel,
)
from shared.topics import (
    ORDERS_SUBMITTED,
    PRODUCTS,
    STOCK,
    STOCK_ADJUSTMENTS,
    STOCK_MOVES,
)
from tests.e2e.conftest import Pipeline
from tools.seed import ACME, GLOBEX, b2b_order, b2c_order


def test_b2c_order_is_shipped_as_parcel_from_a_nearby_warehouse(pipeline: Pipeline) -> None:
    order = b2c_order(
        pipeline.order_id("b2c"), [("BOLT-M8-100", 2), ("GLOVE-L", 3)], speed="express"
    )
    pipeline.publisher.publish(ORDERS_SUBMITTED, order)

    planned = pipeline.watch.wait_for_status(order.order_id, OrderState.FULFILLMENT_PLANNED)

    assert pipeline.watch.history(order.order_id) == ["received", "approved", "fulfillment_planned"]
    [shipment] = planned.shipments or []
    assert shipment.mode is ShipmentMode.PARCEL
    assert shipment.warehouse_id == "wh-berlin"  # domestic regional site, not the central DC
    assert shipment.carrier == "parcel-express"
    assert shipment.tracking_number
    assert planned.totals is not None
    assert planned.totals.total == Decimal("40.77")  # 2 x 12.90 + 3 x 4.99 list price


def test_b2b_order_over_5000_waits_for_manager_then_finance_then_ships_as_freight(
    pipeline: Pipeline,
) -> None:
    order = b2b_order(pipeline.order_id("b2b"), [("BOLT-M8-100", 700)])  # 700 x 7.95 = 5565.00
    pipeline.publisher.publish(ORDERS_SUBMITTED, order)
    waiting = pipeline.watch.wait_for_status(order.order_id, OrderState.AWAITING_APPROVAL)
    assert waiting.totals is not None and waiting.totals.total == Decimal("5565.00")
    assert waiting.approval is not None and waiting.approval.required_approvals == 2

    pipeline.decide(order.order_id, "acme-manager")
    pipeline.wait_for_progress(
        order.order_id, "the manager step signed", lambda p: p.steps[0].state == "satisfied"
    )
    status, body = pipeline.decide_over_http(order.order_id, "acme-finance", comment="budget ok")
    assert status == 202, body

    approved = pipeline.watch.wait_for_status(order.order_id, OrderState.APPROVED)
    assert approved.approval is not None
    assert approved.approval.approved_by == ["acme-manager", "acme-finance"]
    planned = pipeline.watch.wait_for_status(order.order_id, OrderState.FULFILLMENT_PLANNED)
    [shipment] = planned.shipments or []
    assert shipment.mode is ShipmentMode.FREIGHT
    assert shipment.warehouse_id == "dc-kassel"
    assert shipment.pallets and shipment.pallets >= 1
    assert shipment.delivery_window


def test_a_second_approval_by_the_same_approver_does_not_count(pipeline: Pipeline) -> None:
    order = b2b_order(pipeline.order_id("same"), [("BOLT-M8-100", 700)])
    pipeline.publisher.publish(ORDERS_SUBMITTED, order)
    pipeline.watch.wait_for_status(order.order_id, OrderState.AWAITING_APPROVAL)

    pipeline.decide(order.order_id, "acme-manager")
    pipeline.decide(order.order_id, "acme-manager")
    pipeline.watch.wait_until(
        "both manager decisions in the audit trail",
        lambda: (
            [h["outcome"] for h in pipeline.approval(order.order_id, "acme-buyer")["history"]][1:]
            == ["counted", "already_counted"]
        ),
    )
    assert pipeline.approval(order.order_id, "acme-buyer")["approved_by"] == ["acme-manager"]
    assert "approved" not in pipeline.watch.history(order.order_id)

    pipeline.decide(order.order_id, "acme-finance")
    approved = pipeline.watch.wait_for_status(order.order_id, OrderState.APPROVED)
    assert approved.approval is not None
    assert approved.approval.approved_by == ["acme-manager", "acme-finance"]


def test_the_buyer_cannot_approve_own_order_over_http(pipeline: Pipeline) -> None:
    order = b2b_order(pipeline.order_id("own"), [("BOLT-M8-100", 700)], buyer_id="acme-director")
    pipeline.publisher.publish(ORDERS_SUBMITTED, order)
    pipeline.watch.wait_for_status(order.order_id, OrderState.AWAITING_APPROVAL)

    status, body = pipeline.decide_over_http(order.order_id, "acme-director")
    assert status == 403, body
    assert body["outcome"] == "refused_buyer"
    status, _ = pipeline.decide_over_http("no-such-order", "acme-manager")
    assert status == 404


def test_a_veto_rejects_the_order_and_releases_its_stock(pipeline: Pipeline) -> None:
    sku = f"VETO-{pipeline.run_id}"
    pipeline.publish_reference(
        PRODUCTS,
        Product.new(
            sku=sku,
            name="Scaffold tower",
            category="building/scaffold",
            unit_weight_kg=Decimal("80"),
        ),
    )
    pipeline.publish_reference(STOCK, StockLevel.new(sku=sku, warehouse_id="dc-kassel", on_hand=10))
    pipeline.add_list_price(sku, "600.00")

    order = b2b_order(pipeline.order_id("veto"), [(sku, 10)])  # all 10 units, 6000.00
    pipeline.publisher.publish(ORDERS_SUBMITTED, order)
    pipeline.watch.wait_for_status(order.order_id, OrderState.AWAITING_APPROVAL)
    pipeline.decide(order.order_id, "acme-finance", "reject")

    rejected = pipeline.watch.wait_for_status(order.order_id, OrderState.REJECTED)
    assert rejected.reason is not None and rejected.reason.code is ReasonCode.APPROVAL_REJECTED

    # Catalog reads the veto from orders.status.stock; once it has consumed that topic to the end,
    # the same 10 units can be bought again only if the veto gave them back.
    pipeline.fleet.wait_caught_up([STOCK_MOVES], services=["catalog"])
    again = b2c_order(pipeline.order_id("after-veto"), [(sku, 10)])
    pipeline.publisher.publish(ORDERS_SUBMITTED, again)
    pipeline.watch.wait_for_status(again.order_id, OrderState.APPROVED)


def test_an_unknown_sku_is_rejected(pipeline: Pipeline) -> None:
    order = b2c_order(pipeline.order_id("unknown"), [("NO-SUCH-SKU", 1)])
    pipeline.publisher.publish(ORDERS_SUBMITTED, order)

    rejected = pipeline.watch.wait_for_status(order.order_id, OrderState.REJECTED)
    assert rejected.reason is not None
    assert rejected.reason.code is ReasonCode.UNKNOWN_SKU
    assert "NO-SUCH-SKU" in rejected.reason.message
    assert pipeline.watch.history(order.order_id) == ["received", "rejected"]


def test_a_malformed_message_goes_to_the_dead_letter_topic_and_the_next_order_completes(
    pipeline: Pipeline,
) -> None:
    topic = pipeline.names.of(ORDERS_SUBMITTED)
    bad_id = pipeline.order_id("bad")
    pipeline.publisher.send_raw(topic, b"cust-anna", b"\xff this is not json")
    pipeline.publisher.send_raw(
        topic,
        b"cust-anna",
        f'{{"schema": "orders.submitted/v1", "order_id": "{bad_id}", '
        '"lines": [{"sku": "GLOVE-L", "quantity": 0}]}'.encode(),
    )
    good = b2c_order(pipeline.order_id("good"), [("SCREW-5X50", 1)])
    pipeline.publisher.publish(ORDERS_SUBMITTED, good)

    pipeline.watch.wait_for_status(good.order_id, OrderState.FULFILLMENT_PLANNED)
    rejected = pipeline.watch.wait_for_status(bad_id, OrderState.REJECTED)
    assert rejected.reason is not None and rejected.reason.code is ReasonCode.INVALID_EVENT
    assert "lines" in rejected.reason.message
    letters = pipeline.watch.wait_until(
        "two dead letters for orders.submitted",
        lambda: (
            [
                d
                for d in pipeline.watch.dead_letters["orders.submitted.dlq"]
                if d.original_text is None or bad_id in d.original_text
            ]
            if len(pipeline.watch.dead_letters["orders.submitted.dlq"]) >= 2
            else None
        ),
    )
    unreadable = next(d for d in letters if d.original_text is None)
    assert unreadable.source_topic == topic and unreadable.offset >= 0
    assert "JSON" in unreadable.error or "json" in unreadable.error
    invalid = next(d for d in letters if d.original_text and bad_id in d.original_text)
    assert "event_id" in invalid.error and "lines" in invalid.error


def test_a_duplicate_submission_is_processed_once(pipeline: Pipeline) -> None:
    order = b2c_order(pipeline.order_id("dup"), [("DRILL-18V", 1)])
    resubmitted = order.model_copy(update={"event_id": uuid.uuid4()})
    pipeline.publisher.publish(ORDERS_SUBMITTED, order)
    pipeline.publisher.publish(ORDERS_SUBMITTED, order)  # redelivery: same event id
    pipeline.publisher.publish(ORDERS_SUBMITTED, resubmitted)  # shop retry: same order id
    marker = b2c_order(pipeline.order_id("marker"), [("GLOVE-L", 1)])
    pipeline.publisher.publish(ORDERS_SUBMITTED, marker)  # same key: handled after the copies

    pipeline.watch.wait_for_status(marker.order_id, OrderState.FULFILLMENT_PLANNED)
    pipeline.watch.wait_for_status(order.order_id, OrderState.FULFILLMENT_PLANNED)
    assert pipeline.watch.history(order.order_id) == ["received", "approved", "fulfillment_planned"]


def test_a_reorder_is_priced_and_planned_like_any_order_and_foreign_ones_are_refused(
    pipeline: Pipeline,
) -> None:
    """One click buys Acme's earlier order again; Globex naming that order learns nothing."""
    earlier = b2b_order(pipeline.order_id("first"), [("BOLT-M8-100", 40), ("CEMENT-25", 200)])
    pipeline.publisher.publish(ORDERS_SUBMITTED, earlier)
    first = pipeline.watch.wait_for_status(earlier.order_id, OrderState.FULFILLMENT_PLANNED)

    reorder = b2b_order(pipeline.order_id("again"), [], reorder_of=earlier.order_id)
    pipeline.publisher.publish(ORDERS_SUBMITTED, reorder)
    planned = pipeline.watch.wait_for_status(reorder.order_id, OrderState.FULFILLMENT_PLANNED)

    assert pipeline.watch.history(reorder.order_id) == [
        "received",
        "approved",
        "fulfillment_planned",
    ]
    approved = pipeline.watch.wait_for_status(reorder.order_id, OrderState.APPROVED)
    assert [(line.sku, line.quantity) for line in approved.lines or []] == [
        ("BOLT-M8-100", 40),
        ("CEMENT-25", 200),
    ]
    assert planned.totals is not None and first.totals is not None
    # today's contract prices, as for the first order: 40 x 9.80 + 200 x 5.90
    assert planned.totals.total == first.totals.total == Decimal("1572.00")
    assert sorted(
        (line.sku, line.quantity) for shipment in planned.shipments or [] for line in shipment.lines
    ) == [("BOLT-M8-100", 40), ("CEMENT-25", 200)]

    foreign = b2b_order(
        pipeline.order_id("foreign"), [], account_id=GLOBEX, reorder_of=earlier.order_id
    )
    pipeline.publisher.publish(ORDERS_SUBMITTED, foreign)
    rejected = pipeline.watch.wait_for_status(foreign.order_id, OrderState.REJECTED)
    assert rejected.reason is not None
    assert rejected.reason.code is ReasonCode.UNKNOWN_REORDER
    assert ACME not in rejected.reason.message
    assert pipeline.watch.history(foreign.order_id) == ["received", "rejected"]


def test_a_line_outside_the_accounts_category_assortment_is_rejected(pipeline: Pipeline) -> None:
    """Globex may buy fasteners and safety gear only; a drill is a power tool."""
    order = b2b_order(
        pipeline.order_id("assortment"),
        [("GLOVE-L", 20), ("DRILL-18V", 1)],
        account_id="globex-ag",
        buyer_id="globex-buyer",
    )
    pipeline.publisher.publish(ORDERS_SUBMITTED, order)

    rejected = pipeline.watch.wait_for_status(order.order_id, OrderState.REJECTED)
    assert rejected.reason is not None
    assert rejected.reason.code is ReasonCode.NOT_IN_ASSORTMENT
    assert rejected.reason.message == (
        "line 2: SKU 'DRILL-18V' (category 'tools/power') is not in account 'globex-ag''s "
        "assortment"
    )


def test_a_quantity_off_the_pallet_is_rejected_with_the_rule_in_the_message(
    pipeline: Pipeline,
) -> None:
    """Cement goes to businesses by the pallet of 40 bags; ACME agreed at least 200 a time."""
    too_few = b2b_order(pipeline.order_id("qty-min"), [("CEMENT-25", 160)])
    off_pallet = b2b_order(pipeline.order_id("qty-inc"), [("CEMENT-25", 250)])
    fine = b2b_order(pipeline.order_id("qty-ok"), [("CEMENT-25", 240)])
    for order in (too_few, off_pallet, fine):
        pipeline.publisher.publish(ORDERS_SUBMITTED, order)

    for order, broken in (
        (too_few, "quantity 160: at least 200 must be ordered"),
        (off_pallet, "quantity 250: it must be a multiple of 40"),
    ):
        rejected = pipeline.watch.wait_for_status(order.order_id, OrderState.REJECTED)
        assert rejected.reason is not None and rejected.reason.code is ReasonCode.QUANTITY_RULE
        assert rejected.reason.message == (
            f"line 1: SKU 'CEMENT-25' {broken} (rule of account acme-gmbh: min 200, increment 40)"
        )
    pipeline.watch.wait_for_status(fine.order_id, OrderState.FULFILLMENT_PLANNED)


def test_an_adjustment_below_zero_is_dead_lettered_and_stock_stays(pipeline: Pipeline) -> None:
    def vienna_drills() -> int:
        _, body = pipeline.http("catalog", "GET", "/products/DRILL-18V")
        site = next(w for w in body["stock"]["warehouses"] if w["warehouse_id"] == "wh-vienna")
        return int(site["on_hand"])

    before = vienna_drills()
    shrink = StockAdjustment.new(
        sku="DRILL-18V", warehouse_id="wh-vienna", delta=-(before + 5), reason="count"
    )
    pipeline.publisher.publish(STOCK_ADJUSTMENTS, shrink)
    found = StockAdjustment.new(sku="DRILL-18V", warehouse_id="wh-vienna", delta=3, reason="found")
    pipeline.publisher.publish(STOCK_ADJUSTMENTS, found)  # same key: handled after the bad one

    [letter] = pipeline.watch.wait_until(
        "the adjustment's dead letter",
        lambda: pipeline.watch.dead_letters["catalog.stock_adjustments.dlq"],
    )
    assert f"would take on hand of DRILL-18V in wh-vienna from {before} to -5" in letter.error
    pipeline.fleet.wait_caught_up([STOCK_ADJUSTMENTS], services=["catalog"])
    assert vienna_drills() == before + 3
