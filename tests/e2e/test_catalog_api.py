"""What shops read from catalog: product details and free stock per warehouse, over HTTP."""

from __future__ import annotations

from shared.contract import Account, Channel, OrderState
from shared.topics import ACCOUNTS, ORDERS_SUBMITTED
from tests.e2e.conftest import Pipeline
from tools.seed import b2c_order


def test_a_product_shows_its_details_and_free_stock(pipeline: Pipeline) -> None:
    status, body = pipeline.http("catalog", "GET", "/products/DRILL-18V")
    assert status == 200, body
    assert body["name"] == "Cordless drill 18 V, 2 batteries"
    assert body["category"] == "tools/power" and body["unit_weight_kg"] == "1.800"
    assert "event_id" not in body and "schema" not in body
    warehouses = {w["warehouse_id"]: w for w in body["stock"]["warehouses"]}
    assert set(warehouses) == {"dc-kassel", "wh-berlin", "wh-vienna"}
    assert body["stock"]["available"] == sum(w["available"] for w in warehouses.values())

    assert pipeline.http("catalog", "GET", "/products/NO-SUCH-SKU")[0] == 404


def test_availability_drops_by_what_an_order_reserves(pipeline: Pipeline) -> None:
    def berlin() -> int:
        _, body = pipeline.http("catalog", "GET", "/availability?sku=HEADSET-BT")
        [item] = body["items"]
        return int(
            next(w for w in item["warehouses"] if w["warehouse_id"] == "wh-berlin")["available"]
        )

    before = berlin()
    order = b2c_order(pipeline.order_id("avail"), [("HEADSET-BT", 2)])
    pipeline.publisher.publish(ORDERS_SUBMITTED, order)
    pipeline.watch.wait_for_status(order.order_id, OrderState.APPROVED)
    assert berlin() == before - 2


def test_availability_for_an_account_shows_only_its_assortment(pipeline: Pipeline) -> None:
    account_id = f"narrow-{pipeline.run_id}"
    pipeline.publish_reference(
        ACCOUNTS,
        Account.new(
            account_id=account_id, name="Narrow", channel=Channel.B2B, assortment=["GLOVE-L"]
        ),
    )
    status, body = pipeline.http(
        "catalog",
        "GET",
        f"/availability?sku=GLOVE-L&sku=DRILL-18V&sku=NOPE&account_id={account_id}",
    )
    assert status == 200, body
    gloves, drill, nope = body["items"]
    assert gloves["in_assortment"] is True and gloves["available"] > 0
    assert drill == {"sku": "DRILL-18V", "known": True, "in_assortment": False}
    assert nope == {"sku": "NOPE", "known": False}
    status, body = pipeline.http("catalog", "GET", "/availability")
    assert status == 400 and "sku: give 1 to 100 sku parameters" in body["error"]


def test_availability_for_an_account_says_in_which_quantities_it_may_order(
    pipeline: Pipeline,
) -> None:
    """Globex's assortment is fasteners and safety gear, with its own rule for gloves."""
    status, body = pipeline.http(
        "catalog",
        "GET",
        "/availability?sku=GLOVE-L&sku=BOLT-M8-100&sku=DRILL-18V&account_id=globex-ag",
    )
    assert status == 200, body
    gloves, bolts, drill = body["items"]
    assert gloves["order_quantity"] == {
        "min": 20,
        "increment": 10,
        "max": None,
        "rule": "account globex-ag",
    }
    assert bolts["order_quantity"] == {
        "min": None,
        "increment": 1,
        "max": None,
        "rule": "product BOLT-M8-100",
    }
    assert gloves["backorders"] is False
    assert drill == {"sku": "DRILL-18V", "known": True, "in_assortment": False}
