"""Pricing's rules, straight on plain data: no broker, no database."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from services.pricing.domain import (
    AccountTerms,
    AmbiguousPriceList,
    PriceBook,
    Tier,
    check_payment_terms,
    price_lists_to_consult,
    price_order,
)
from shared.contract import (
    Channel,
    Order,
    PaymentMethod,
    PriceList,
    ReasonCode,
    ReservedLine,
)
from shared.rejection import Rejected

ACME = AccountTerms("acme-gmbh", Channel.B2B, "acme-2026", ("NET30", "NET60"))

LIST_EUR = PriceBook(
    "list-EUR",
    "EUR",
    {
        "BOLT-M8-100": (Tier(1, Decimal("0.50")), Tier(100, Decimal("0.45"))),
        "NUT-M8-100": (Tier(1, Decimal("0.20")),),
        "MUG-TL": (Tier(1, Decimal("12.90")),),
    },
)
ACME_2026 = PriceBook(
    "acme-2026",
    "EUR",
    {
        "BOLT-M8-100": (
            Tier(1, Decimal("0.40")),
            Tier(100, Decimal("0.35")),
            Tier(1000, Decimal("0.30")),
        ),
        "WASHER-M8": (Tier(50, Decimal("0.05")),),
    },
)
BOOKS = {book.price_list_id: book for book in (LIST_EUR, ACME_2026)}


def an_order(
    channel: Channel = Channel.B2B,
    lines: Mapping[str, int] | None = None,
    *,
    currency: str = "EUR",
    method: PaymentMethod = PaymentMethod.CARD,
    terms: str | None = None,
) -> Order:
    return Order.model_validate(
        {
            "order_id": "web-000123",
            "shop_id": "web",
            "channel": channel,
            "account_id": "acme-gmbh" if channel is Channel.B2B else "guest-42",
            "buyer_id": "u-17",
            "currency": currency,
            "lines": [
                {"sku": sku, "quantity": quantity}
                for sku, quantity in (lines or {"BOLT-M8-100": 40}).items()
            ],
            "payment": {"method": method, "terms": terms},
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


def reserved(order: Order) -> list[ReservedLine]:
    return [
        ReservedLine(
            sku=line.sku,
            quantity=line.quantity,
            warehouse_id="dc-central",
            category="fasteners",
            unit_weight_kg=Decimal("0.010"),
        )
        for line in order.lines
    ]


def priced(order: Order, account: AccountTerms | None = ACME, books: Any = BOOKS) -> Any:
    return price_order(order, reserved(order), account, books)


def rejection(call: Any, *args: Any) -> tuple[ReasonCode, str]:
    with pytest.raises(Rejected) as raised:
        call(*args)
    return raised.value.reason.code, raised.value.reason.message


# --- where prices come from -----------------------------------------------------------------


def test_consumer_pays_list_price_without_an_account() -> None:
    order = an_order(Channel.B2C, {"MUG-TL": 2})

    result = priced(order, account=None)

    (line,) = result.lines
    assert (line.unit_price, line.line_total) == (Decimal("12.90"), Decimal("25.80"))
    assert line.price_source == "list:list-EUR"
    assert line.warehouse_id == "dc-central"  # catalog's reservation travels on
    assert (result.totals.currency, result.totals.total) == ("EUR", Decimal("25.80"))


def test_consumer_ignores_any_contract_of_its_account() -> None:
    consumer = AccountTerms("guest-42", Channel.B2C, "acme-2026", ())

    line = priced(an_order(Channel.B2C, {"BOLT-M8-100": 10}), account=consumer).lines[0]

    assert line.price_source == "list:list-EUR"
    assert price_lists_to_consult(an_order(Channel.B2C), consumer) == {"list-EUR"}


def test_business_pays_its_contract_price() -> None:
    line = priced(an_order(Channel.B2B, {"BOLT-M8-100": 40})).lines[0]

    assert (line.unit_price, line.line_total) == (Decimal("0.40"), Decimal("16.00"))
    assert line.price_source == "contract:acme-2026"
    assert price_lists_to_consult(an_order(), ACME) == {"list-EUR", "acme-2026"}


@pytest.mark.parametrize(
    ("quantity", "unit_price", "source"),
    [
        (99, "0.40", "contract:acme-2026"),
        (100, "0.35", "contract:acme-2026 tier>=100"),
        (999, "0.35", "contract:acme-2026 tier>=100"),
        (1000, "0.30", "contract:acme-2026 tier>=1000"),
    ],
)
def test_volume_tier_applies_from_exactly_its_min_quantity(
    quantity: int, unit_price: str, source: str
) -> None:
    line = priced(an_order(Channel.B2B, {"BOLT-M8-100": quantity})).lines[0]

    assert line.unit_price == Decimal(unit_price)
    assert line.price_source == source


def test_list_prices_have_tiers_too() -> None:
    line = priced(an_order(Channel.B2C, {"BOLT-M8-100": 100}), account=None).lines[0]

    assert (line.unit_price, line.price_source) == (Decimal("0.45"), "list:list-EUR tier>=100")


def test_sku_missing_from_the_contract_falls_back_to_list_price() -> None:
    result = priced(an_order(Channel.B2B, {"BOLT-M8-100": 10, "NUT-M8-100": 10}))

    assert [line.price_source for line in result.lines] == [
        "contract:acme-2026",
        "list:list-EUR",
    ]
    assert result.totals.total == Decimal("4.00") + Decimal("2.00")


def test_quantity_below_the_contracts_smallest_tier_falls_back_to_list_price() -> None:
    books = {
        **BOOKS,
        "list-EUR": PriceBook("list-EUR", "EUR", {"WASHER-M8": (Tier(1, Decimal("0.08")),)}),
    }

    line = priced(an_order(Channel.B2B, {"WASHER-M8": 10}), books=books).lines[0]

    assert line.price_source == "list:list-EUR"


def test_business_account_without_a_contract_pays_list_prices() -> None:
    no_contract = AccountTerms("acme-gmbh", Channel.B2B, None, ())

    line = priced(an_order(Channel.B2B, {"BOLT-M8-100": 40}), account=no_contract).lines[0]

    assert line.price_source == "list:list-EUR"


# --- no price, no order -------------------------------------------------------------------------


def test_missing_price_rejects_naming_the_line_and_sku() -> None:
    order = an_order(Channel.B2B, {"BOLT-M8-100": 10, "GHOST-1": 3})

    code, message = rejection(priced, order)

    assert code is ReasonCode.PRICE_NOT_FOUND
    assert "line 2" in message
    assert "'GHOST-1'" in message
    assert "'acme-2026' or 'list-EUR'" in message


def test_below_smallest_tier_with_no_list_price_is_not_priced() -> None:
    code, message = rejection(priced, an_order(Channel.B2B, {"WASHER-M8": 49}))

    assert code is ReasonCode.PRICE_NOT_FOUND
    assert "49 units" in message


def test_contract_list_not_received_yet_rejects_instead_of_charging_list_prices() -> None:
    code, message = rejection(priced, an_order(), ACME, {"list-EUR": LIST_EUR})

    assert code is ReasonCode.PRICE_NOT_FOUND
    assert "'acme-2026'" in message


# --- rounding --------------------------------------------------------------------------------


def test_line_total_is_rounded_to_cents_with_bankers_rounding() -> None:
    books = {
        "list-EUR": PriceBook(
            "list-EUR",
            "EUR",
            {"A": (Tier(1, Decimal("0.335")),), "B": (Tier(1, Decimal("0.125")),)},
        )
    }

    result = priced(an_order(Channel.B2C, {"A": 3, "B": 1}), account=None, books=books)

    # 3 x 0.335 = 1.005 -> 1.00 (half to even), 0.125 -> 0.12
    assert [line.line_total for line in result.lines] == [Decimal("1.00"), Decimal("0.12")]
    assert result.totals.subtotal == result.totals.total == Decimal("1.12")
    assert all(isinstance(line.line_total, Decimal) for line in result.lines)


prices = st.decimals(min_value=Decimal("0"), max_value=Decimal("9999.9999"), places=4)
quantities = st.integers(min_value=1, max_value=100_000)


@given(st.lists(st.tuples(prices, quantities), min_size=1, max_size=20))
def test_total_is_the_sum_of_line_totals_in_cents(lines: list[tuple[Decimal, int]]) -> None:
    skus = {f"SKU-{i}": quantity for i, (_, quantity) in enumerate(lines)}
    book = PriceBook(
        "list-EUR",
        "EUR",
        {f"SKU-{i}": (Tier(1, price),) for i, (price, _) in enumerate(lines)},
    )

    result = priced(an_order(Channel.B2C, skus), account=None, books={"list-EUR": book})

    assert result.totals.total == result.totals.subtotal
    assert result.totals.total == sum(line.line_total for line in result.lines)
    for amount in [result.totals.total, *(line.line_total for line in result.lines)]:
        assert amount.as_tuple().exponent == -2
    for line, (price, quantity) in zip(result.lines, lines, strict=True):
        assert abs(line.line_total - price * quantity) <= Decimal("0.005")


# --- currency -----------------------------------------------------------------------------


def test_business_order_in_another_currency_than_its_contract_is_rejected() -> None:
    books = {**BOOKS, "list-USD": PriceBook("list-USD", "USD", {})}

    code, message = rejection(priced, an_order(Channel.B2B, currency="USD"), ACME, books)

    assert code is ReasonCode.CURRENCY_NOT_SUPPORTED
    assert "USD" in message
    assert "EUR" in message


def test_consumer_order_in_a_currency_without_list_prices_is_rejected() -> None:
    code, message = rejection(priced, an_order(Channel.B2C, currency="CHF"), None, BOOKS)

    assert code is ReasonCode.CURRENCY_NOT_SUPPORTED
    assert "'list-CHF'" in message


# --- the account -----------------------------------------------------------------------------


def test_unknown_business_account_is_rejected() -> None:
    code, message = rejection(priced, an_order(Channel.B2B), None)

    assert code is ReasonCode.UNKNOWN_ACCOUNT
    assert "'acme-gmbh'" in message


def test_consumer_account_cannot_place_a_business_order() -> None:
    consumer = AccountTerms("acme-gmbh", Channel.B2C, None, ())

    code, _ = rejection(priced, an_order(Channel.B2B), consumer)

    assert code is ReasonCode.UNKNOWN_ACCOUNT


def test_unknown_business_account_is_rejected_by_the_payment_check_too() -> None:
    code, _ = rejection(check_payment_terms, an_order(Channel.B2B), None)

    assert code is ReasonCode.UNKNOWN_ACCOUNT


# --- payment -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method", [PaymentMethod.CARD, PaymentMethod.PREPAID, PaymentMethod.INSTALLMENTS]
)
def test_consumer_may_pay_by_card_prepaid_or_installments(method: PaymentMethod) -> None:
    check_payment_terms(an_order(Channel.B2C, method=method), None)


def test_consumer_may_not_pay_by_invoice() -> None:
    order = an_order(Channel.B2C, method=PaymentMethod.INVOICE, terms="NET30")

    code, message = rejection(check_payment_terms, order, None)

    assert code is ReasonCode.PAYMENT_TERMS_NOT_ALLOWED
    assert "invoice" in message


@pytest.mark.parametrize("method", [PaymentMethod.CARD, PaymentMethod.PREPAID])
def test_business_may_always_pay_by_card_or_prepaid(method: PaymentMethod) -> None:
    no_terms = AccountTerms("acme-gmbh", Channel.B2B, None, ())

    check_payment_terms(an_order(Channel.B2B, method=method), no_terms)


def test_business_may_pay_by_invoice_on_agreed_terms() -> None:
    check_payment_terms(an_order(Channel.B2B, method=PaymentMethod.INVOICE, terms="NET60"), ACME)


def test_invoice_on_terms_not_agreed_is_rejected_listing_the_allowed_terms() -> None:
    order = an_order(Channel.B2B, method=PaymentMethod.INVOICE, terms="NET90")

    code, message = rejection(check_payment_terms, order, ACME)

    assert code is ReasonCode.PAYMENT_TERMS_NOT_ALLOWED
    assert "'NET90'" in message
    assert "NET30, NET60" in message


def test_invoice_without_terms_is_rejected_listing_the_allowed_terms() -> None:
    order = an_order(Channel.B2B, method=PaymentMethod.INVOICE, terms=None)

    code, message = rejection(check_payment_terms, order, ACME)

    assert code is ReasonCode.PAYMENT_TERMS_NOT_ALLOWED
    assert "NET30, NET60" in message


def test_invoice_for_an_account_without_agreed_terms_is_rejected() -> None:
    no_terms = AccountTerms("acme-gmbh", Channel.B2B, None, ())
    order = an_order(Channel.B2B, method=PaymentMethod.INVOICE, terms="NET30")

    code, message = rejection(check_payment_terms, order, no_terms)

    assert code is ReasonCode.PAYMENT_TERMS_NOT_ALLOWED
    assert "card or prepaid" in message


def test_business_may_not_pay_in_installments() -> None:
    order = an_order(Channel.B2B, method=PaymentMethod.INSTALLMENTS)

    code, message = rejection(check_payment_terms, order, ACME)

    assert code is ReasonCode.PAYMENT_TERMS_NOT_ALLOWED
    assert "installments" in message


# --- reading price lists ---------------------------------------------------------------------


def a_price_list(*entries: dict[str, Any]) -> PriceList:
    return PriceList.new(price_list_id="acme-2026", currency="EUR", prices=list(entries))


def test_price_book_reads_a_published_price_list() -> None:
    book = PriceBook.of(
        a_price_list(
            {
                "sku": "BOLT-M8-100",
                "tiers": [
                    {"min_quantity": 100, "unit_price": "0.35"},
                    {"min_quantity": 1, "unit_price": "0.40"},
                ],
            }
        )
    )

    assert book.tier_for("BOLT-M8-100", 150) == Tier(100, Decimal("0.35"))
    assert book.tier_for("BOLT-M8-100", 1) == Tier(1, Decimal("0.40"))
    assert book.tier_for("NUT-M8-100", 1) is None


def test_price_list_pricing_a_sku_twice_at_one_quantity_is_refused() -> None:
    twice = a_price_list(
        {"sku": "BOLT-M8-100", "tiers": [{"min_quantity": 1, "unit_price": "0.40"}]},
        {"sku": "BOLT-M8-100", "tiers": [{"min_quantity": 1, "unit_price": "0.39"}]},
    )

    with pytest.raises(AmbiguousPriceList, match="twice"):
        PriceBook.of(twice)


def test_price_list_with_a_negative_price_is_refused_by_the_contract() -> None:
    with pytest.raises(ValidationError, match="must not be negative"):
        a_price_list({"sku": "BOLT-M8-100", "tiers": [{"min_quantity": 1, "unit_price": "-0.40"}]})
