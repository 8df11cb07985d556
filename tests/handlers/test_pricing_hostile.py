"""Hostile input on the reference and payment topics pricing reads, in-process on SQLite.

For `pricing.quotes`, `pricing.promotions`, `payments.received` and `accounts`: an oversized
message, 100,000 nested brackets and a wrongly typed field each end in the topic's DLQ with
the reason, change nothing, and the next valid message on the topic is handled. A message
naming another account's order or quote is refused (DLQ) or rejects the order that tries it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from services.pricing import credit_ledger
from shared.contract import (
    Account,
    Channel,
    OrderState,
    PaymentReceived,
    ReasonCode,
)
from shared.topics import ACCOUNTS, PAYMENTS_RECEIVED, PROMOTIONS, QUOTES, TopicSpec
from tests.handlers.conftest import price, pricing_on_sqlite, quote, resent
from tests.support.bench import ServiceBench
from tools.seed import ACME, GLOBEX, accounts, b2b_order, b2c_order, promotions


@pytest.fixture
async def pricing(tmp_path: Path) -> AsyncIterator[ServiceBench]:
    async with pricing_on_sqlite(tmp_path) as bench:
        await bench.deliver_all(PROMOTIONS, promotions())
        await bench.deliver(QUOTES, quote())
        yield bench


def payment(order_id: str, amount: str = "100.00", account_id: str = ACME) -> PaymentReceived:
    return PaymentReceived.new(
        payment_id=f"pay-{order_id}-{account_id}-{amount}",
        account_id=account_id,
        order_id=order_id,
        amount=Decimal(amount),
        currency="EUR",
        received_at=datetime(2026, 12, 1, tzinfo=UTC),
    )


async def exposure(bench: ServiceBench, account_id: str = ACME) -> Decimal:
    async with bench.db.sessions() as session:
        found = await credit_ledger.position_of(session, account_id)
    assert found is not None
    return found.exposure


async def acme_order_on_credit(bench: ServiceBench, order_id: str = "h-1") -> None:
    """Ten boxes of bolts for ACME at its contract price: 98.00 EUR more on its credit line."""
    before = await exposure(bench)
    assert await price(bench, b2b_order(order_id, [("BOLT-M8-100", 10)])) is not None
    assert await exposure(bench) == before + Decimal("98.00")


# What "the next valid message is handled" means on each topic: deliver it, see its effect.


async def a_new_quote_prices_an_order(bench: ServiceBench) -> None:
    await bench.deliver(QUOTES, quote(quote_id="q-next"))
    priced = await price(bench, b2b_order("h-q", [("DRILL-18V", 2)], quote_id="q-next"))
    assert priced is not None and priced.lines[0].price_source == "quote:q-next v1"


async def a_new_promotion_discounts_an_order(bench: ServiceBench) -> None:
    [_, welcome10] = promotions()
    await bench.deliver(PROMOTIONS, resent(welcome10, promotion_id="spring", code="SPRING"))
    order = b2c_order("h-p", [("DRILL-18V", 1)], account_id="cust-h", promo_codes=["SPRING"])
    priced = await price(bench, order)
    assert priced is not None and priced.totals.discount == Decimal("12.90")


async def a_payment_lowers_the_exposure(bench: ServiceBench) -> None:
    await acme_order_on_credit(bench, "h-pay")
    before = await exposure(bench)
    await bench.deliver(PAYMENTS_RECEIVED, payment("h-pay", "98.00"))
    assert await exposure(bench) == before - Decimal("98.00")


async def a_new_account_may_order(bench: ServiceBench) -> None:
    await bench.deliver(
        ACCOUNTS,
        Account.new(
            account_id="new-gmbh",
            name="New GmbH",
            channel=Channel.B2B,
            payment_terms=["NET30"],
            members=[],
        ),
    )
    assert await price(bench, b2b_order("h-a", [("GLOVE-L", 20)], account_id="new-gmbh"))


@dataclass(frozen=True)
class Topic:
    """A topic pricing reads: a valid message's bytes, where to spoil its types, and how to see
    that the next valid message is handled."""

    spec: TopicSpec
    valid: Callable[[], bytes]
    typed_right: bytes
    typed_wrong: bytes
    field: str
    next_is_handled: Callable[[ServiceBench], Awaitable[None]]

    def __str__(self) -> str:
        return self.spec.name

    def wrongly_typed(self) -> bytes:
        body = self.valid()
        assert self.typed_right in body
        return body.replace(self.typed_right, self.typed_wrong, 1)


def acme() -> Account:
    return next(a for a in accounts() if a.account_id == ACME)


TOPICS = [
    Topic(
        QUOTES,
        lambda: quote().to_bytes(),
        b'"version":1',
        b'"version":"1"',
        "version",
        a_new_quote_prices_an_order,
    ),
    Topic(
        PROMOTIONS,
        lambda: promotions()[1].to_bytes(),
        b'"percent":"10"',
        b'"percent":10.0',
        "percent",
        a_new_promotion_discounts_an_order,
    ),
    Topic(
        PAYMENTS_RECEIVED,
        lambda: payment("h-1").to_bytes(),
        b'"amount":"100.00"',
        b'"amount":100',
        "amount",
        a_payment_lowers_the_exposure,
    ),
    Topic(
        ACCOUNTS,
        lambda: acme().to_bytes(),
        b'"limit":"250000.00"',
        b'"limit":250000',
        "limit",
        a_new_account_may_order,
    ),
]


def oversized(topic: Topic) -> tuple[bytes, str]:
    """A valid message padded one limit's worth past the topic's limit; it is not parsed."""
    body = topic.valid()[:-1] + b',"padding":"' + b"x" * topic.spec.max_bytes + b'"}'
    return body, f"exceeds the {topic.spec.max_bytes}-byte limit"


def nested(topic: Topic) -> tuple[bytes, str]:
    """100,000 open brackets: the parser stops at its depth limit (on `payments.received` the
    16 KiB size limit stops it first)."""
    body = b"[" * 100_000
    if len(body) > topic.spec.max_bytes:
        return body, f"exceeds the {topic.spec.max_bytes}-byte limit"
    return body, "recursion limit exceeded"


@pytest.mark.parametrize("unreadable", [oversized, nested], ids=lambda f: f.__name__)
@pytest.mark.parametrize("topic", TOPICS, ids=str)
async def test_an_unreadable_message_is_dead_lettered_and_the_next_is_handled(
    pricing: ServiceBench, topic: Topic, unreadable: Callable[[Topic], tuple[bytes, str]]
) -> None:
    body, why = unreadable(topic)
    await pricing.deliver(topic.spec, body)
    [letter] = await pricing.dead_letters(topic.spec)
    assert why in letter.error and letter.original_size == len(body)
    await topic.next_is_handled(pricing)
    assert len(await pricing.dead_letters(topic.spec)) == 1


@pytest.mark.parametrize("topic", TOPICS, ids=str)
async def test_a_wrongly_typed_field_is_dead_lettered_naming_it_and_the_next_is_handled(
    pricing: ServiceBench, topic: Topic
) -> None:
    if topic.spec is PAYMENTS_RECEIVED:
        await acme_order_on_credit(pricing)
    await pricing.deliver(topic.spec, topic.wrongly_typed())
    [letter] = await pricing.dead_letters(topic.spec)
    assert topic.field in letter.error
    if topic.spec is PAYMENTS_RECEIVED:
        assert await exposure(pricing) == Decimal("98.00")  # nothing was paid
    await topic.next_is_handled(pricing)
    assert len(await pricing.dead_letters(topic.spec)) == 1


# --- another account's order or quote -----------------------------------------------------------


async def test_a_payment_naming_another_accounts_order_is_refused_and_the_next_applied(
    pricing: ServiceBench,
) -> None:
    await acme_order_on_credit(pricing)
    await pricing.deliver(PAYMENTS_RECEIVED, payment("h-1", "98.00", account_id=GLOBEX))
    [letter] = await pricing.dead_letters(PAYMENTS_RECEIVED)
    assert letter.error.startswith("another_account: ")
    assert await exposure(pricing) == Decimal("98.00")
    assert await pricing.statuses("h-1") == []
    await pricing.deliver(PAYMENTS_RECEIVED, payment("h-1", "98.00"))
    assert await exposure(pricing) == Decimal("0.00")


async def test_an_order_naming_another_accounts_quote_is_rejected_as_unknown(
    pricing: ServiceBench,
) -> None:
    """Globex names ACME's quote: rejected exactly like a quote that does not exist, and ACME
    may still use it."""
    assert (
        await price(
            pricing, b2b_order("h-g", [("DRILL-18V", 2)], account_id=GLOBEX, quote_id="q-1")
        )
        is None
    )
    [rejected] = await pricing.statuses("h-g")
    assert rejected.status is OrderState.REJECTED and rejected.reason is not None
    assert rejected.reason.code is ReasonCode.UNKNOWN_QUOTE
    assert ACME not in rejected.reason.message
    priced = await price(pricing, b2b_order("h-acme", [("DRILL-18V", 2)], quote_id="q-1"))
    assert priced is not None and priced.lines[0].price_source == "quote:q-1 v1"


async def test_a_quote_version_naming_another_account_is_refused_and_the_quote_stays(
    pricing: ServiceBench,
) -> None:
    """A quote belongs to the account it was negotiated with: a later version under the same
    id naming another account is a data error (it would hand ACME's quote, and the lifecycle
    of ACME's orders, to Globex), refused to the DLQ; the kept version still prices ACME's."""
    await pricing.deliver(QUOTES, quote(version=2, account_id=GLOBEX))
    [letter] = await pricing.dead_letters(QUOTES)
    assert letter.error.startswith("another_account: ")
    assert (
        await price(
            pricing, b2b_order("h-g2", [("DRILL-18V", 2)], account_id=GLOBEX, quote_id="q-1")
        )
        is None
    )
    priced = await price(pricing, b2b_order("h-a2", [("DRILL-18V", 2)], quote_id="q-1"))
    assert priced is not None and priced.lines[0].price_source == "quote:q-1 v1"
