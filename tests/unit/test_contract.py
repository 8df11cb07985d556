"""The public contract: what shops may send, and what they get told when it is wrong."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from pydantic import ValidationError

from shared.contract import OrderStatusChanged, OrderSubmitted, Totals
from shared.topics import ALL_TOPICS, STOCK, TopicNames
from tools.schemas import drifted_schemas
from tools.seed import b2b_order


def test_committed_json_schemas_match_the_models() -> None:
    assert drifted_schemas() == [], "run `make schemas` and commit schemas/"


def test_money_travels_as_a_decimal_string() -> None:
    totals = Totals(currency="EUR", subtotal=Decimal("10.10"), total=Decimal("10.10"))
    assert json.loads(totals.model_dump_json())["total"] == "10.10"


def test_money_as_a_json_number_is_refused_with_the_field_named() -> None:
    with pytest.raises(ValidationError) as error:
        Totals.model_validate_json('{"currency": "EUR", "subtotal": "1.00", "total": 10.1}')
    assert error.value.errors()[0]["loc"] == ("total",)
    assert "decimal string" in str(error.value)


def test_an_order_without_event_id_is_refused() -> None:
    body = json.loads(b2b_order("o-1", [("BOLT-M8-100", 1)]).to_bytes())
    del body["event_id"]
    with pytest.raises(ValidationError) as error:
        OrderSubmitted.model_validate(body)
    assert ("event_id",) in [e["loc"] for e in error.value.errors()]


def test_a_local_time_without_zone_is_refused() -> None:
    body = json.loads(b2b_order("o-1", [("BOLT-M8-100", 1)]).to_bytes())
    body["occurred_at"] = "2026-11-23T10:15:00"
    with pytest.raises(ValidationError, match="time zone"):
        OrderSubmitted.model_validate(body)


def test_unknown_fields_are_refused_so_typos_are_not_silently_dropped() -> None:
    body = json.loads(b2b_order("o-1", [("BOLT-M8-100", 1)]).to_bytes())
    body["refrence"] = "PO-1"
    with pytest.raises(ValidationError, match="refrence"):
        OrderSubmitted.model_validate(body)


def test_a_zero_quantity_names_the_line() -> None:
    body = json.loads(b2b_order("o-1", [("BOLT-M8-100", 1)]).to_bytes())
    body["lines"][0]["quantity"] = 0
    with pytest.raises(ValidationError) as error:
        OrderSubmitted.model_validate(body)
    assert error.value.errors()[0]["loc"] == ("lines", 0, "quantity")


def test_an_event_round_trips_through_bytes() -> None:
    order = b2b_order("o-1", [("BOLT-M8-100", 3)])
    assert OrderSubmitted.model_validate_json(order.to_bytes()) == order


def test_every_topic_has_a_key_its_model_can_fill() -> None:
    for spec in ALL_TOPICS:
        assert spec.key.startswith("{"), spec.name
    stock = STOCK.model.model_validate(
        {
            "schema": "catalog.stock/v1",
            "event_id": "9f2c3b53-08d8-4c45-b6c8-3d5e1d0b0e11",
            "occurred_at": "2026-11-23T10:15:00Z",
            "sku": "A",
            "warehouse_id": "w",
            "on_hand": 1,
        }
    )
    assert STOCK.key_of(stock) == "A@w"


def test_topic_prefix_and_dead_letter_names() -> None:
    names = TopicNames("t1.")
    spec = ALL_TOPICS[0]
    assert names.of(spec) == "t1.orders.submitted"
    assert names.dlq_of(spec) == "t1.orders.submitted.dlq"


def test_status_carries_the_reporting_service() -> None:
    status = OrderStatusChanged.new(order_id="o-1", status="received", reported_by="catalog")
    assert json.loads(status.to_bytes())["schema"] == "orders.status/v1"
