"""Pricing's handlers, in-process on SQLite: every incoming event and what pricing says to it."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from shared.contract import (
    OrderPriced,
    OrderSubmitted,
    PriceEntry,
    PriceList,
    PriceTier,
    ReasonCode,
)
from shared.topics import ACCOUNTS, ORDERS_PRICED, ORDERS_VALIDATED, PRICE_LISTS, PROMOTIONS
from tests.handlers.conftest import deliver_invalid, pricing_on_sqlite, validated
from tests.support.bench import ServiceBench
from tools.seed import accounts, b2b_order, b2c_order, promotions


@pytest.fixture
async def pricing(tmp_path: Path) -> AsyncIterator[ServiceBench]:
    async with pricing_on_sqlite(tmp_path) as bench:
        yield bench


async def test_a_consumer_order_is_priced_from_the_list(pricing: ServiceBench) -> None:
    await pricing.deliver(ORDERS_VALIDATED, validated(b2c_order("c-1", [("GLOVE-L", 3)])))
    [priced] = await pricing.published(ORDERS_PRICED, OrderPriced)
    assert priced.lines[0].price_source == "list:list-EUR"
    assert priced.totals.total == priced.lines[0].unit_price * 3


async def test_a_business_order_gets_its_contract_tier(pricing: ServiceBench) -> None:
    await pricing.deliver(ORDERS_VALIDATED, validated(b2b_order("b-1", [("BOLT-M8-100", 150)])))
    [priced] = await pricing.published(ORDERS_PRICED, OrderPriced)
    assert priced.lines[0].unit_price == Decimal("8.90")
    assert priced.totals.total == Decimal("1335.00")


@pytest.mark.parametrize(
    ("order", "holds"),
    [
        (b2c_order("c-1", [("GLOVE-L", 3)]), False),
        (b2b_order("b-1", [("BOLT-M8-100", 150)]), True),
        (b2c_order("c-2", [("DRILL-18V", 1), ("GLOVE-L", 1)], promo_codes=["WELCOME10"]), True),
    ],
    ids=["consumer", "business-credit", "limited-promotion"],
)
async def test_the_priced_order_says_whether_pricing_holds_anything_for_it(
    pricing: ServiceBench, order: OrderSubmitted, holds: bool
) -> None:
    """Only an order pricing set something aside for (credit, a limited promotion's use)
    needs its approval to come back to pricing; approvals reads this to decide."""
    await pricing.deliver_all(PROMOTIONS, promotions())
    await pricing.deliver(ORDERS_VALIDATED, validated(order))
    [priced] = await pricing.published(ORDERS_PRICED, OrderPriced)
    assert priced.holds is holds


async def test_terms_the_account_may_not_use_reject_the_order(pricing: ServiceBench) -> None:
    await pricing.deliver(
        ORDERS_VALIDATED, validated(b2b_order("b-2", [("BOLT-M8-100", 1)], terms="NET90"))
    )
    [rejected] = await pricing.statuses("b-2")
    assert rejected.reason is not None
    assert rejected.reason.code is ReasonCode.PAYMENT_TERMS_NOT_ALLOWED
    assert await pricing.published(ORDERS_PRICED) == []


async def test_an_order_of_an_unknown_business_account_is_rejected(pricing: ServiceBench) -> None:
    order = b2b_order("b-3", [("BOLT-M8-100", 1)], account_id="nobody-gmbh")
    await pricing.deliver(ORDERS_VALIDATED, validated(order))
    [rejected] = await pricing.statuses("b-3")
    assert rejected.reason is not None and rejected.reason.code is ReasonCode.UNKNOWN_ACCOUNT


async def test_a_redelivered_or_resent_order_is_priced_once(pricing: ServiceBench) -> None:
    event = validated(b2b_order("b-4", [("BOLT-M8-100", 10)]))
    await pricing.deliver(ORDERS_VALIDATED, event)
    await pricing.deliver(ORDERS_VALIDATED, event)
    await pricing.deliver(ORDERS_VALIDATED, event.model_copy(update={"event_id": uuid.uuid4()}))
    assert len(await pricing.published(ORDERS_PRICED)) == 1


async def test_an_ambiguous_price_list_is_dead_lettered_and_the_old_one_stays(
    pricing: ServiceBench,
) -> None:
    twice = PriceList.new(
        price_list_id="contract-acme-2026",
        currency="EUR",
        prices=[
            PriceEntry(sku="BOLT-M8-100", tiers=[PriceTier(min_quantity=1, unit_price="1.00")]),
            PriceEntry(sku="BOLT-M8-100", tiers=[PriceTier(min_quantity=1, unit_price="2.00")]),
        ],
    )
    await pricing.deliver(PRICE_LISTS, twice)
    [letter] = await pricing.dead_letters(PRICE_LISTS)
    assert "twice" in letter.error
    await pricing.deliver(ORDERS_VALIDATED, validated(b2b_order("b-5", [("BOLT-M8-100", 1)])))
    [priced] = await pricing.published(ORDERS_PRICED, OrderPriced)
    assert priced.lines[0].unit_price == Decimal("9.80")


async def test_an_invalid_validated_order_is_dead_lettered_and_rejected(
    pricing: ServiceBench,
) -> None:
    letter = await deliver_invalid(pricing, ORDERS_VALIDATED, "b-6")
    assert "schema" in letter.error


# --- how the order is paid ---------------------------------------------------------------------


async def test_a_deposit_order_carries_its_deposit_and_remainder(pricing: ServiceBench) -> None:
    order = b2b_order("b-dep", [("BOLT-M8-100", 150)], terms="DEPOSIT30_NET30")
    await pricing.deliver(ORDERS_VALIDATED, validated(order))
    [priced] = await pricing.published(ORDERS_PRICED, OrderPriced)
    plan = priced.payment
    assert plan is not None and (plan.method, plan.terms) == ("invoice", "DEPOSIT30_NET30")
    deposit, remainder = plan.schedule
    assert (deposit.kind, deposit.amount, deposit.currency) == ("deposit", Decimal("400.50"), "EUR")
    assert (remainder.kind, remainder.amount) == ("remainder", Decimal("934.50"))
    assert deposit.due_on == plan.priced_on
    assert remainder.due_on == plan.priced_on + timedelta(days=30)
    assert plan.total == priced.totals.total == Decimal("1335.00")


async def test_a_consumer_order_in_instalments_carries_its_schedule(pricing: ServiceBench) -> None:
    order = b2c_order("c-3x", [("GLOVE-L", 1)], installments=3)
    await pricing.deliver(ORDERS_VALIDATED, validated(order))
    [priced] = await pricing.published(ORDERS_PRICED, OrderPriced)
    plan = priced.payment
    assert plan is not None and (plan.method, plan.installments) == ("installments", 3)
    assert [due.kind for due in plan.schedule] == ["instalment"] * 3
    assert plan.total == priced.totals.total
    assert plan.schedule[0].due_on == plan.priced_on


async def test_a_card_order_is_due_in_full_at_once(pricing: ServiceBench) -> None:
    await pricing.deliver(ORDERS_VALIDATED, validated(b2c_order("c-card", [("GLOVE-L", 2)])))
    [priced] = await pricing.published(ORDERS_PRICED, OrderPriced)
    assert priced.payment is not None
    [full] = priced.payment.schedule
    assert (full.kind, full.amount, full.due_on) == (
        "full",
        priced.totals.total,
        priced.payment.priced_on,
    )


async def test_instalments_without_a_number_of_months_are_rejected(pricing: ServiceBench) -> None:
    order = b2c_order("c-inst", [("GLOVE-L", 1)], method="installments")
    await pricing.deliver(ORDERS_VALIDATED, validated(order))
    [rejected] = await pricing.statuses("c-inst")
    assert rejected.reason is not None
    assert rejected.reason.code is ReasonCode.PAYMENT_TERMS_NOT_ALLOWED
    assert await pricing.published(ORDERS_PRICED) == []


async def test_an_account_with_terms_outside_the_grammar_is_dead_lettered(
    pricing: ServiceBench,
) -> None:
    account = accounts()[1].model_dump(mode="json", by_alias=True)
    account["payment_terms"] = ["NET30", "NET30EOM"]
    await pricing.deliver(ACCOUNTS, json.dumps(account).encode())
    [letter] = await pricing.dead_letters(ACCOUNTS)
    assert "NET30EOM" in letter.error
    order = b2b_order("b-terms", [("BOLT-M8-100", 1)], terms="NET60")
    await pricing.deliver(ORDERS_VALIDATED, validated(order))
    [priced] = await pricing.published(ORDERS_PRICED, OrderPriced)
    assert priced.payment is not None and priced.payment.terms == "NET60"


async def test_a_price_list_whose_tiers_raise_the_price_is_dead_lettered(
    pricing: ServiceBench,
) -> None:
    rising = PriceList.new(
        price_list_id="contract-acme-2026",
        currency="EUR",
        prices=[
            PriceEntry(
                sku="BOLT-M8-100",
                tiers=[
                    PriceTier(min_quantity=1, unit_price="9.80"),
                    PriceTier(min_quantity=100, unit_price="98.00"),
                ],
            )
        ],
    )
    await pricing.deliver(PRICE_LISTS, rising)
    [letter] = await pricing.dead_letters(PRICE_LISTS)
    assert "raises the unit price" in letter.error
    await pricing.deliver(ORDERS_VALIDATED, validated(b2b_order("b-rise", [("BOLT-M8-100", 150)])))
    [priced] = await pricing.published(ORDERS_PRICED, OrderPriced)
    assert priced.lines[0].unit_price == Decimal("8.90")
