"""Each order step reads its batch ahead (`ReadingAhead`): the same outcome as one by one.

A batch carries new orders of accounts the reference data knows and of
consumers it does not, and an order sent twice under two event ids. Every
service must hand each order on once, in the batch's one run: the read-ahead
says the repeated order is new, and the row its first event added must win.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from sqlalchemy import select

from services.catalog import store as catalog_store
from services.pricing import holds
from shared.consume import ReadingAhead
from shared.contract import Event, OrderApproved, OrderPriced, OrderState, OrderValidated
from shared.topics import (
    HOLD_MOVES,
    ORDERS_APPROVED,
    ORDERS_PRICED,
    ORDERS_SUBMITTED,
    ORDERS_VALIDATED,
    STOCK_MOVES,
    TopicSpec,
)
from tests.handlers.conftest import status_from
from tests.handlers.four_services import Benches, four_services
from tests.support.bench import ServiceBench
from tests.support.statements import reading, statements_sent
from tools.seed import GLOBEX, b2b_order, b2c_order

ORDER_STEPS = (ORDERS_SUBMITTED, ORDERS_VALIDATED, ORDERS_PRICED, ORDERS_APPROVED)


@pytest.fixture
async def benches(tmp_path: Path) -> AsyncIterator[Benches]:
    async with four_services(tmp_path) as running:
        yield running


def with_repeat(events: Sequence[Event]) -> list[Event]:
    """The batch, and its first event once more as the shop would resend it: a new event id."""
    again = events[0].model_copy(update={"event_id": uuid.uuid4()})
    return [*events, again]


async def deliver_in_one_run(
    bench: ServiceBench, spec: TopicSpec, events: Sequence[Event], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="shared.consume"):
        await bench.deliver_batch(spec, events)
    assert [r.getMessage() for r in caplog.records if r.name == "shared.consume"] == []


def test_every_order_step_reads_its_batch_ahead(benches: Benches) -> None:
    for bench, spec in zip(
        (benches.catalog, benches.pricing, benches.approvals, benches.fulfillment),
        ORDER_STEPS,
        strict=True,
    ):
        assert isinstance(bench.handlers[spec], ReadingAhead), spec.name


async def test_a_batch_with_an_order_sent_twice_is_handed_on_once_per_order_at_every_step(
    benches: Benches, caplog: pytest.LogCaptureFixture
) -> None:
    orders = [
        b2c_order("ra-1", [("GLOVE-L", 1)], account_id="consumer-unknown-1"),
        b2c_order("ra-2", [("GLOVE-L", 2)], account_id="consumer-unknown-2"),
        b2c_order("ra-3", [("GLOVE-L", 1)]),
        b2b_order("ra-4", [("BOLT-M8-100", 1)]),
    ]
    ids = [order.order_id for order in orders]

    await deliver_in_one_run(benches.catalog, ORDERS_SUBMITTED, with_repeat(orders), caplog)
    validated = await benches.catalog.published(ORDERS_VALIDATED, OrderValidated)
    assert [v.order.order_id for v in validated] == ids

    await deliver_in_one_run(benches.pricing, ORDERS_VALIDATED, with_repeat(validated), caplog)
    priced = await benches.pricing.published(ORDERS_PRICED, OrderPriced)
    assert [p.order.order_id for p in priced] == ids

    await deliver_in_one_run(benches.approvals, ORDERS_PRICED, with_repeat(priced), caplog)
    approved = await benches.approvals.published(ORDERS_APPROVED, OrderApproved)
    assert [a.order.order_id for a in approved] == ids

    await deliver_in_one_run(benches.fulfillment, ORDERS_APPROVED, with_repeat(approved), caplog)
    for order_id in ids:
        assert await benches.fulfillment.history(order_id) == ["fulfillment_planned"]


def an_orders_spend_read(statement: str) -> bool:
    """A read of an order's own spend row, not of the sums the limits add up."""
    return reading("spend")(statement) and "WHERE spend.order_id" in statement


async def test_the_gate_reads_no_spend_for_orders_it_has_not_seen(benches: Benches) -> None:
    """Spend is written only for an order approvals recorded: a new order has none to read."""
    orders = [b2b_order("sp-1", [("BOLT-M8-100", 1)]), b2b_order("sp-2", [("BOLT-M8-100", 2)])]
    await benches.catalog.deliver_batch(ORDERS_SUBMITTED, orders)
    validated = await benches.catalog.published(ORDERS_VALIDATED, OrderValidated)
    await benches.pricing.deliver_batch(ORDERS_VALIDATED, validated)
    priced = await benches.pricing.published(ORDERS_PRICED, OrderPriced)
    with statements_sent(benches.approvals.db, matching=an_orders_spend_read) as spend_reads:
        await benches.approvals.deliver_batch(ORDERS_PRICED, priced)
    approved = await benches.approvals.published(ORDERS_APPROVED, OrderApproved)
    assert [a.order.order_id for a in approved] == ["sp-1", "sp-2"]
    assert spend_reads == []


async def test_hostile_messages_in_a_read_ahead_batch_go_alone_and_the_good_ones_pass(
    benches: Benches,
) -> None:
    """The read-ahead sees only events that validated; a foreign id is read ahead like any
    other, and the handler still refuses it. Nothing stops the batch or the next one."""
    catalog = benches.catalog
    await catalog.deliver(ORDERS_SUBMITTED, b2b_order("h-mine", [("BOLT-M8-100", 1)]))
    string_quantity = (
        b2b_order("h-typed", [("BOLT-M8-100", 1)])
        .to_bytes()
        .replace(b'"quantity":1', b'"quantity":"1"')
    )
    batch: list[Event | bytes] = [
        b2c_order("h-good-1", [("GLOVE-L", 1)], account_id="consumer-h-1"),
        b"[" * 100_000,
        b'{"order_id": "h-big", "x": "' + b"x" * 300_000 + b'"}',
        string_quantity,
        b2b_order("h-mine", [("GLOVE-L", 2)], account_id=GLOBEX),
        b2c_order("h-good-2", [("GLOVE-L", 1)], account_id="consumer-h-2"),
    ]

    await catalog.deliver_batch(ORDERS_SUBMITTED, batch)
    await catalog.deliver_batch(
        ORDERS_SUBMITTED, [b2c_order("h-next", [("GLOVE-L", 1)], account_id="consumer-h-3")]
    )

    letters = await catalog.dead_letters(ORDERS_SUBMITTED)
    assert len(letters) == 4
    assert "foreign_order: order id h-mine belongs to another account" in [
        letter.error for letter in letters
    ]
    assert await catalog.history("h-typed") == ["rejected"]
    assert await catalog.history("h-mine") == ["received"]
    handed_on = await catalog.published(ORDERS_VALIDATED, OrderValidated)
    assert [v.order.order_id for v in handed_on] == ["h-mine", "h-good-1", "h-good-2", "h-next"]


async def test_a_batch_of_reports_moves_each_orders_holds_and_stock_as_one_by_one_would(
    benches: Benches, caplog: pytest.LogCaptureFixture
) -> None:
    """Pricing reads the holds of a batch's orders once, catalog its orders once, and the
    moves stay in the session until the batch commits: an order approved and then
    cancelled in the same batch must end released, its stock given back."""
    orders = [b2b_order(f"rr-{n}", [("BOLT-M8-100", 10)]) for n in range(3)]
    await benches.catalog.deliver_batch(ORDERS_SUBMITTED, orders)
    validated = await benches.catalog.published(ORDERS_VALIDATED, OrderValidated)
    await benches.pricing.deliver_batch(ORDERS_VALIDATED, validated)
    kept, ended, refused = (order.order() for order in orders)
    reports = [
        status_from("approvals", kept, OrderState.APPROVED),
        status_from("approvals", ended, OrderState.APPROVED),
        status_from("shops", ended, OrderState.CANCELLED),
        status_from("approvals", refused, OrderState.REJECTED),
        status_from("fulfillment", kept, OrderState.FULFILLMENT_PLANNED),
    ]

    pricing_reads = [r for r in reports if r.status in HOLD_MOVES.repeats]
    await deliver_in_one_run(benches.pricing, HOLD_MOVES, pricing_reads, caplog)
    catalog_reads = [r for r in reports if r.status in STOCK_MOVES.repeats]
    await deliver_in_one_run(benches.catalog, STOCK_MOVES, catalog_reads, caplog)

    async with benches.pricing.db.sessions() as session:
        for order, state in ((kept, "committed"), (ended, "released"), (refused, "released")):
            held = await holds.all_holds_of_order(session, order.order_id)
            assert held and {row.state for row in held} == {state}, order.order_id
    async with benches.catalog.db.sessions() as session:
        reserved = await session.scalar(
            select(catalog_store.StockRow.reserved).where(
                catalog_store.StockRow.sku == "BOLT-M8-100"
            )
        )
    assert reserved == 10  # the planned order's units stay held; the others' came back
