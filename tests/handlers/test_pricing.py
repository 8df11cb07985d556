"""Pricing's handlers, in-process on SQLite: every incoming event and what pricing says to it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from services.pricing import store
from services.pricing.app import NAME
from services.pricing.handlers import HANDLERS
from shared.contract import OrderPriced, PriceEntry, PriceList, PriceTier, ReasonCode
from shared.topics import ACCOUNTS, ORDERS_PRICED, ORDERS_VALIDATED, PRICE_LISTS
from tests.handlers.conftest import deliver_invalid, on_sqlite, validated
from tests.support.bench import ServiceBench
from tools.seed import accounts, b2b_order, b2c_order, price_lists


@pytest.fixture
async def pricing(tmp_path: Path) -> AsyncIterator[ServiceBench]:
    async with on_sqlite(tmp_path, NAME, store.Base.metadata, HANDLERS) as bench:
        for account in accounts():
            await bench.deliver(ACCOUNTS, account)
        for price_list in price_lists():
            await bench.deliver(PRICE_LISTS, price_list)
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
