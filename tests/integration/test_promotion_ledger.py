"""Promotion uses on SQLite and PostgreSQL: two workers and the last use, and the usage ledger.

Pricing's handlers run through `ServiceBench` (the real consume path) against a
real database; on PostgreSQL two benches on one database are two pricing
workers, as during a rebalance.
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

from services.pricing import promotion_ledger
from services.pricing.holds import HoldKind, HoldRow
from shared.contract import (
    Event,
    OrderState,
    OrderSubmitted,
    Promotion,
    PromotionKind,
    PromotionScope,
    ReasonCode,
)
from shared.topics import (
    HOLD_MOVES,
    ORDERS_VALIDATED,
    PROMOTIONS,
    TopicSpec,
)
from tests.handlers.conftest import price_at_once, start_pricing, status_from, validated
from tests.support.bench import ServiceBench
from tools.seed import b2c_order

TOTAL, PER_CUSTOMER = 3, 2


def limited(promotion_id: str, total: int = TOTAL, per_customer: int = PER_CUSTOMER) -> Promotion:
    return Promotion.new(
        promotion_id=promotion_id,
        name=promotion_id,
        kind=PromotionKind.FIXED,
        amount=Decimal(5),
        currency="EUR",
        scope=PromotionScope.ORDER,
        code=promotion_id.upper(),
        valid_from=datetime(2026, 1, 1, tzinfo=UTC),
        valid_until=datetime(2030, 1, 1, tzinfo=UTC),
        max_uses_total=total,
        max_uses_per_customer=per_customer,
    )


def coded(order_id: str, customer: str, code: str) -> OrderSubmitted:
    return b2c_order(order_id, [("DRILL-18V", 1)], account_id=customer, promo_codes=[code])


async def test_two_workers_and_the_last_use_let_exactly_one_order_have_it(
    database_url: str,
) -> None:
    first, second = await start_pricing(database_url), await start_pricing(database_url)
    try:
        await first.deliver(PROMOTIONS, limited("last", total=1))
        one, two = coded("race-1", "c-1", "LAST"), coded("race-2", "c-2", "LAST")
        priced, rejected = await price_at_once(first, second, one, two)
        assert len(priced) == 1 and len(rejected) == 1
        assert rejected[0].reason is not None
        assert rejected[0].reason.code is ReasonCode.INVALID_PROMO_CODE
        assert "exhausted" in rejected[0].reason.message
        async with first.db.sessions() as session:
            usage = await promotion_ledger.usage(session, "last", "")
        assert usage.total == 1
    finally:
        await first.dispose()
        await second.dispose()


# --- the property: the usage ledger always balances ----------------------------------------


@dataclass
class Books:
    """What the test itself knows: each priced order's customer and fate."""

    customer: dict[str, str] = field(default_factory=dict)
    fate: dict[str, str] = field(default_factory=dict)

    def live(self, customer: str | None = None) -> int:
        return sum(
            1
            for order_id, fate in self.fate.items()
            if fate != "released" and customer in (None, self.customer[order_id])
        )


Step = tuple[str, int]
STEPS = st.lists(
    st.tuples(
        st.sampled_from(["price", "price", "approve", "reject", "cancel", "expire"]),
        st.integers(0, 20),
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
MOVES = {("held", "committed"), ("held", "released"), ("committed", "released")}


async def run_steps(bench: ServiceBench, steps: list[Step]) -> None:
    promotion_id = f"p{uuid.uuid4().hex[:10]}"
    await bench.deliver(PROMOTIONS, limited(promotion_id))
    books = Books()
    for number, (kind, a) in enumerate(steps):
        event = step_event(books, promotion_id, number, kind, a)
        if event is not None:
            for _ in range(2):  # every event delivered twice: redelivery changes nothing
                await bench.deliver(*event)
        await check_the_books(bench, books, promotion_id)


def step_event(
    books: Books, promotion_id: str, number: int, kind: str, a: int
) -> tuple[TopicSpec, Event] | None:
    if kind == "price":
        customer = f"{promotion_id}-c{a % 3}"
        order = coded(f"{promotion_id}-o{number}", customer, promotion_id.upper())
        if books.live() < TOTAL and books.live(customer) < PER_CUSTOMER:
            books.customer[order.order_id] = customer
            books.fate[order.order_id] = "held"
        return ORDERS_VALIDATED, validated(order)
    if not books.fate:
        return None
    order_id = sorted(books.fate)[a % len(books.fate)]
    state, code = FATES[kind]
    wanted = "committed" if state is OrderState.APPROVED else "released"
    if (books.fate[order_id], wanted) in MOVES:
        books.fate[order_id] = wanted
    reason = None if code is None else {"code": code, "message": kind}
    fated = coded(order_id, books.customer[order_id], promotion_id.upper()).order()
    return HOLD_MOVES, status_from("approvals", fated, state, reason=reason)


async def check_the_books(bench: ServiceBench, books: Books, promotion_id: str) -> None:
    async with bench.db.sessions() as session:
        holds = list(
            await session.scalars(
                select(HoldRow).where(
                    HoldRow.kind == HoldKind.PROMOTION.value, HoldRow.subject == promotion_id
                )
            )
        )
        usage = {
            customer: await promotion_ledger.usage(session, promotion_id, customer)
            for customer in set(books.customer.values())
        }
    assert {h.order_id: h.state for h in holds} == books.fate, "a use in the wrong state"
    assert all(h.amount == Decimal(5) for h in holds)
    for customer, found in usage.items():
        assert (found.total, found.by_customer) == (books.live(), books.live(customer))
    assert books.live() <= TOTAL


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=STEPS)
def test_the_usage_ledger_balances_after_any_interleaving(
    database_url: str, steps: list[Step]
) -> None:
    """Any interleaving of price / approve / reject / cancel / expire (each event delivered
    twice) leaves exactly the uses the test booked: held on pricing, committed on approval,
    given back on rejection, cancellation or expiry, never over the limits."""
    asyncio.run(run_example(database_url, steps))


async def run_example(url: str, steps: list[Step]) -> None:
    bench = await start_pricing(url)
    try:
        await run_steps(bench, steps)
    finally:
        await bench.dispose()
