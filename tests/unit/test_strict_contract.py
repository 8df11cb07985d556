"""The contract is strict and bounded: what a careless or hostile shop sends is refused, named."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from shared.contract import Amount, AuditEntry, OrderStatusChanged, PriceTier
from shared.contract.money import Currency
from shared.topics import DISPATCHES, ORDERS_STATUS, ORDERS_SUBMITTED
from tools.seed import b2b_order

AMOUNTS = TypeAdapter(Amount)
CURRENCIES = TypeAdapter(Currency)


@pytest.mark.parametrize(
    "text",
    [
        "1e309",
        "1E+999999",
        " 12.5 ",
        "1_000",
        "+5",
        "\u0661\u0662",  # Arabic-Indic digits
        "1e25",
        "NaN",
        "Infinity",
        "",
        "007",
        "1.",
        ".5",
        "1.1234567",
        "1000000000000",
        "-0.40",
    ],
)
def test_an_amount_outside_the_strict_decimal_pattern_is_refused(text: str) -> None:
    with pytest.raises(ValidationError):
        AMOUNTS.validate_json(json.dumps(text))


@pytest.mark.parametrize("text", ["0", "12.50", "0.000001", "999999999999.999999"])
def test_amounts_within_the_bounds_are_exact(text: str) -> None:
    assert str(AMOUNTS.validate_json(json.dumps(text))) == text


@pytest.mark.parametrize("code", ["", "eur", "€", "X" * 10_000, "EURO", "XAU", "XTS", "ZZZ"])
def test_a_currency_that_is_not_an_iso_4217_code_of_money_is_refused(code: str) -> None:
    with pytest.raises(ValidationError):
        CURRENCIES.validate_json(json.dumps(code))


def test_iso_4217_currencies_with_any_minor_unit_are_accepted() -> None:
    assert [CURRENCIES.validate_json(f'"{c}"') for c in ("EUR", "JPY", "BHD")] == [
        "EUR",
        "JPY",
        "BHD",
    ]


def test_a_unit_price_of_1e25_cannot_reach_pricing() -> None:
    with pytest.raises(ValidationError, match="unit_price"):
        PriceTier.model_validate_json('{"min_quantity": 1, "unit_price": "1' + "0" * 25 + '"}')


def order_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(b2b_order("o-1", [("BOLT-M8-100", 40)]).to_bytes())
    body.update(changes)
    return body


def parse_order(body: dict[str, Any]) -> object:
    return ORDERS_SUBMITTED.parse(json.dumps(body).encode())


@pytest.mark.parametrize("quantity", ["7", True, 1.0, 7.5, -100000, 0, 1_000_001])
def test_a_quantity_that_is_not_a_whole_number_in_bounds_is_refused(quantity: object) -> None:
    with pytest.raises(ValidationError, match=r"lines\.0\.quantity"):
        parse_order(order_body(lines=[{"sku": "BOLT-M8-100", "quantity": quantity}]))


def test_the_same_sku_on_two_lines_is_refused_so_maxima_cannot_be_split() -> None:
    lines = [{"sku": "BOLT-M8-100", "quantity": 600_000}] * 2
    with pytest.raises(ValidationError, match="SKU BOLT-M8-100 is on line 1 and line 2"):
        parse_order(order_body(lines=lines))


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"payment": {"method": "invoice", "terms": "NET30" * 1000}}, "payment.terms"),
        ({"payment": {"method": "invoice", "terms": "net 30"}}, "payment.terms"),
        ({"promo_codes": [f"CODE{n}" for n in range(11)]}, "promo_codes"),
        ({"promo_codes": ["x" * 41]}, "promo_codes.0"),
        ({"reference": "r" * 101}, "reference"),
        ({"lines": [{"sku": f"S-{n}", "quantity": 1} for n in range(501)]}, "lines"),
        ({"order_id": "o" * 65}, "order_id"),
        ({"currency": "eur"}, "currency"),
    ],
)
def test_unbounded_or_malformed_order_fields_are_refused_by_name(
    changes: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as error:
        parse_order(order_body(**changes))
    assert field in [".".join(str(p) for p in e["loc"]) for e in error.value.errors()]


def test_a_dispatch_with_an_oversized_shipment_id_is_refused() -> None:
    body = {
        "schema": "fulfillment.dispatches/v1",
        "event_id": "6f1b7c1e-3d4a-4f5e-9a8b-0c1d2e3f4a5b",
        "occurred_at": "2026-11-23T10:15:00Z",
        "order_id": "o-1",
        "shipment_id": "s" * 81,
    }
    with pytest.raises(ValidationError, match="shipment_id"):
        DISPATCHES.parse(json.dumps(body).encode())


def test_a_shipment_line_of_negative_quantity_is_refused() -> None:
    status = json.loads(
        OrderStatusChanged.new(order_id="o-1", status="received", reported_by="t").to_bytes()
    )
    status["shipments"] = [
        {
            "shipment_id": "o-1-1",
            "mode": "parcel",
            "warehouse_id": "wh",
            "carrier": "DHL",
            "service_level": "standard",
            "tracking_number": "T1",
            "promised_date": "2026-12-01",
            "weight_kg": "1.0",
            "lines": [{"sku": "BOLT", "quantity": -100000}],
        }
    ]
    with pytest.raises(ValidationError, match=r"shipments\.0\.lines\.0\.quantity"):
        ORDERS_STATUS.parse(json.dumps(status).encode())


def test_no_text_of_the_contract_is_unbounded() -> None:
    with pytest.raises(ValidationError, match="at most 4000 characters"):
        AuditEntry.model_validate(
            {"at": "2026-11-23T10:15:00Z", "kind": "opened", "why": "w" * 4001}
        )
