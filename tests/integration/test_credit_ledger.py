"""Credit exposure on SQLite and PostgreSQL: two workers at the limit, and the ledger's balance.

Pricing's handlers run through `ServiceBench` (the real consume path: inbox,
transaction, dead letters) against a real database; on PostgreSQL two benches
on one database are two pricing workers, as during a rebalance.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from services.pricing import credit_ledger
from services.pricing.credit_ledger import CreditAccountRow, PaymentRow
from services.pricing.holds import LIVE, HoldRow
from shared.contract import (
    Account,
    Channel,
    CreditTerms,
    Event,
    OrderState,
    OrderSubmitted,
    PaymentReceived,
    ReasonCode,
)
from shared.topics import (
    ACCOUNTS,
    HOLD_MOVES,
    ORDERS_VALIDATED,
    PAYMENTS_RECEIVED,
    TopicSpec,
)
from tests.handlers.conftest import price_at_once, start_pricing, status_from, validated
from tests.support.bench import ServiceBench
from tools.seed import b2b_order

UNIT = Decimal("9.80")
"""BOLT-M8-100 below 100 units on ACME's contract list, which these accounts buy from."""


def account(account_id: str, limit: Decimal) -> Account:
    return Account.new(
        account_id=account_id,
        name=account_id,
        channel=Channel.B2B,
        price_list_id="contract-acme-2026",
        payment_terms=["NET30"],
        credit=CreditTerms(limit=limit),
    )


def bolts(order_id: str, account_id: str, units: int) -> OrderSubmitted:
    return b2b_order(order_id, [("BOLT-M8-100", units)], account_id=account_id)


async def test_two_workers_pricing_two_orders_at_the_limit_let_exactly_one_through(
    database_url: str,
) -> None:
    first, second = await start_pricing(database_url), await start_pricing(database_url)
    try:
        await first.deliver(ACCOUNTS, account("racer", UNIT * 10))
        one, two = bolts("race-1", "racer", 10), bolts("race-2", "racer", 10)
        priced, rejected = await price_at_once(first, second, one, two)
        assert len(priced) == 1 and len(rejected) == 1
        assert rejected[0].reason is not None
        assert rejected[0].reason.code is ReasonCode.CREDIT_LIMIT_EXCEEDED
        async with first.db.sessions() as session:
            position = await credit_ledger.position_of(session, "racer")
        assert position is not None and position.exposure == UNIT * 10
    finally:
        await first.dispose()
        await second.dispose()


# --- the property: the ledger always balances ---------------------------------------------------


@dataclass
class Books:
    """What the test itself knows: each order's amount, fate and payments."""

    limit: Decimal
    amounts: dict[str, Decimal] = field(default_factory=dict)
    paid: dict[str, Decimal] = field(default_factory=dict)
    fate: dict[str, str] = field(default_factory=dict)
    payments: Decimal = Decimal(0)


Step = tuple[str, int, int]
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("price"), st.integers(1, 8), st.just(0)),
        st.tuples(
            st.sampled_from(["approve", "reject", "cancel", "expire"]),
            st.integers(0, 20),
            st.just(0),
        ),
        st.tuples(st.just("pay"), st.integers(0, 20), st.integers(1, 9000)),
    ),
    min_size=1,
    max_size=20,
)
FATES: dict[str, tuple[OrderState, ReasonCode | None]] = {
    "approve": (OrderState.APPROVED, None),
    "reject": (OrderState.REJECTED, ReasonCode.APPROVAL_REJECTED),
    "cancel": (OrderState.CANCELLED, ReasonCode.CANCELLED_BY_SHOP),
    "expire": (OrderState.REJECTED, ReasonCode.APPROVAL_EXPIRED),
}


async def run_steps(bench: ServiceBench, steps: list[Step]) -> None:
    account_id = f"acct-{uuid.uuid4().hex[:10]}"
    books = Books(limit=UNIT * 12)
    await bench.deliver(ACCOUNTS, account(account_id, books.limit))
    for number, (kind, a, b) in enumerate(steps):
        event = await step_event(bench, books, account_id, number, kind, a, b)
        if event is not None:
            for _ in range(2):  # every event delivered twice: redelivery changes nothing
                await deliver(bench, event)
        await check_the_books(bench, books, account_id)


async def step_event(
    bench: ServiceBench, books: Books, account_id: str, number: int, kind: str, a: int, b: int
) -> tuple[TopicSpec, Event] | None:
    if kind == "price":
        order = bolts(f"{account_id}-o{number}", account_id, a)
        amount = UNIT * a
        if exposure(books) + amount <= books.limit:
            books.amounts[order.order_id] = amount
            books.paid[order.order_id] = Decimal(0)
            books.fate[order.order_id] = "held"
        return ORDERS_VALIDATED, validated(order)
    if not books.amounts:
        return None
    order_id = sorted(books.amounts)[a % len(books.amounts)]
    if kind == "pay":
        return PAYMENTS_RECEIVED, pay(books, account_id, order_id, Decimal(b) / 100)
    state, code = FATES[kind]
    move(books, order_id, "committed" if state is OrderState.APPROVED else "released")
    reason = None if code is None else {"code": code, "message": kind}
    fate = status_from("approvals", bolts(order_id, account_id, 1).order(), state, reason=reason)
    return HOLD_MOVES, fate


def move(books: Books, order_id: str, wanted: str) -> None:
    now = books.fate[order_id]
    if (now, wanted) in {("held", "committed"), ("held", "released"), ("committed", "released")}:
        books.fate[order_id] = wanted


def pay(books: Books, account_id: str, order_id: str, amount: Decimal) -> PaymentReceived:
    books.payments += amount
    if books.fate[order_id] != "released":
        open_amount = books.amounts[order_id] - books.paid[order_id]
        books.paid[order_id] += min(open_amount, amount)
    return PaymentReceived.new(
        payment_id=f"pay-{uuid.uuid4().hex[:10]}",
        account_id=account_id,
        order_id=order_id,
        amount=amount,
        currency="EUR",
        received_at=datetime(2026, 12, 1, tzinfo=UTC),
    )


def exposure(books: Books) -> Decimal:
    """What the account owes on live orders, less every cent that paid no live order."""
    live = [o for o, fate in books.fate.items() if fate != "released"]
    owed = sum((books.amounts[o] - books.paid[o] for o in live), Decimal(0))
    paid_on_live = sum((books.paid[o] for o in live), Decimal(0))
    return owed - (books.payments - paid_on_live)


async def deliver(bench: ServiceBench, event: tuple[TopicSpec, Event]) -> None:
    await bench.deliver(*event)


async def check_the_books(bench: ServiceBench, books: Books, account_id: str) -> None:
    async with bench.db.sessions() as session:
        row = await session.get(CreditAccountRow, account_id)
        holds = list(await session.scalars(select(HoldRow).where(HoldRow.subject == account_id)))
        payments = list(
            await session.scalars(select(PaymentRow).where(PaymentRow.account_id == account_id))
        )
        position = await credit_ledger.position_of(session, account_id)
    assert row is not None and position is not None
    assert {h.order_id: h.state for h in holds} == books.fate, "a hold in the wrong state"
    for hold in holds:
        assert hold.amount == books.amounts[hold.order_id] and 0 <= hold.settled <= hold.amount
    paid = sum((p.amount for p in payments), Decimal(0))
    on_live = sum((h.settled for h in holds if h.state in LIVE), Decimal(0))
    assert paid == books.payments == on_live + row.credit_on_account, "a cent lost or invented"
    assert position.exposure == exposure(books)
    assert position.exposure <= books.limit, "exposure over the limit under the reject policy"


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=STEPS)
def test_the_exposure_ledger_balances_after_any_interleaving(
    database_url: str, steps: list[Step]
) -> None:
    """Any interleaving of price / approve / reject / cancel / expire / pay (each event
    delivered twice) keeps holds, payments and credit on account in agreement with
    what the test booked. Every example uses an account of its own in one database."""
    asyncio.run(run_example(database_url, steps))


async def run_example(url: str, steps: list[Step]) -> None:
    bench = await start_pricing(url)
    try:
        await run_steps(bench, steps)
    finally:
        await bench.dispose()
