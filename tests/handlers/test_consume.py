"""The consume path every handler sits behind, on SQLite with stand-in handlers.

What any message can do to a service — be too large, nested, loosely typed,
refused, or make its handler fail — and what the service does about it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import MetaData

from shared.consume import Delivery
from shared.contract import Event, OrderState, OrderStatusChanged, OrderSubmitted, ReasonCode
from shared.db import Transaction
from shared.lag import Lag
from shared.rejection import Refused
from shared.topics import ORDERS_ENDED, ORDERS_STATUS, ORDERS_SUBMITTED
from tests.support.bench import ServiceBench
from tools.seed import b2b_order

handled: list[str] = []
"""What the stand-in handlers handled, in commit order: a handler may run more than once (a
batch with a refused event runs again with savepoints), but its effects commit once."""


async def accept(event: OrderSubmitted, tx: Transaction) -> None:
    tx.on_commit(partial(handled.append, event.order_id))
    await tx.report(event, OrderState.RECEIVED)


async def fail(event: OrderSubmitted, tx: Transaction) -> None:
    await tx.report(event, OrderState.RECEIVED)  # rolled back with the failure
    raise ZeroDivisionError("a defect")


async def refuse(event: OrderSubmitted, tx: Transaction) -> None:
    raise Refused("foreign_order", f"order id {event.order_id} belongs to another account")


async def note_status(event: OrderStatusChanged, tx: Transaction) -> None:
    tx.on_commit(partial(handled.append, f"status:{event.reported_by}"))


@pytest.fixture
async def bench(tmp_path: Path) -> AsyncIterator[ServiceBench]:
    handled.clear()
    bench = await ServiceBench(
        "toy",
        MetaData(),
        {ORDERS_SUBMITTED: accept, ORDERS_ENDED: note_status},
        f"sqlite+aiosqlite:///{tmp_path / 'toy.db'}",
    ).start()
    yield bench
    await bench.dispose()


def failures() -> float:
    labels = {"service": "toy", "topic": "orders.submitted"}
    return REGISTRY.get_sample_value("tradelane_processing_failures_total", labels) or 0.0


async def test_a_handler_that_fails_dead_letters_the_event_and_rejects_its_order(
    bench: ServiceBench,
) -> None:
    bench.handlers = {ORDERS_SUBMITTED: fail}
    before = failures()
    await bench.deliver(ORDERS_SUBMITTED, b2b_order("o-1", [("BOLT-M8-100", 1)]))
    [letter] = await bench.dead_letters(ORDERS_SUBMITTED)
    assert letter.error == "processing failed: ZeroDivisionError: a defect"
    [status] = await bench.statuses("o-1")
    assert status.status is OrderState.REJECTED and status.reason is not None
    assert status.reason.code is ReasonCode.PROCESSING_FAILED
    assert failures() == before + 1


async def test_a_refused_event_is_dead_lettered_without_a_status(bench: ServiceBench) -> None:
    bench.handlers = {ORDERS_SUBMITTED: refuse}
    await bench.deliver(ORDERS_SUBMITTED, b2b_order("o-2", [("BOLT-M8-100", 1)]))
    [letter] = await bench.dead_letters(ORDERS_SUBMITTED)
    assert letter.error.startswith("foreign_order: ")
    assert await bench.statuses("o-2") == []


async def test_a_message_over_the_topic_limit_is_dead_lettered_unread(bench: ServiceBench) -> None:
    huge = b'{"order_id": "o-3", "x": "' + b"x" * 300_000 + b'"}'
    await bench.deliver(ORDERS_SUBMITTED, huge)
    [letter] = await bench.dead_letters(ORDERS_SUBMITTED)
    assert "262144-byte limit" in letter.error and letter.truncated
    assert await bench.statuses("o-3") == []  # not parsed, so no order is named
    await bench.deliver(ORDERS_SUBMITTED, b2b_order("o-4", [("BOLT-M8-100", 1)]))
    assert handled == ["o-4"]


async def test_deeply_nested_json_is_dead_lettered_and_the_next_event_handled(
    bench: ServiceBench,
) -> None:
    await bench.deliver(ORDERS_SUBMITTED, b"[" * 100_000)
    await bench.deliver(ORDERS_SUBMITTED, b'{"order_id": "o-5", "a":' * 20_000)
    await bench.deliver(ORDERS_SUBMITTED, b2b_order("o-6", [("BOLT-M8-100", 1)]))
    assert len(await bench.dead_letters(ORDERS_SUBMITTED)) == 2
    assert handled == ["o-6"]


async def test_a_quantity_sent_as_a_string_is_invalid_and_rejects_the_order(
    bench: ServiceBench,
) -> None:
    body = (
        b2b_order("o-7", [("BOLT-M8-100", 1)])
        .to_bytes()
        .replace(b'"quantity":1', b'"quantity":"1"')
    )
    await bench.deliver(ORDERS_SUBMITTED, body)
    [letter] = await bench.dead_letters(ORDERS_SUBMITTED)
    assert "lines.0.quantity" in letter.error
    [status] = await bench.statuses("o-7")
    assert status.reason is not None and status.reason.code is ReasonCode.INVALID_EVENT
    assert handled == []


async def test_a_service_does_not_handle_its_own_status_reports(bench: ServiceBench) -> None:
    own = OrderStatusChanged.new(order_id="o-8", status=OrderState.CANCELLED, reported_by="toy")
    other = OrderStatusChanged.new(
        order_id="o-8", status=OrderState.REJECTED, reported_by="pricing"
    )
    await bench.deliver(ORDERS_ENDED, own)
    await bench.deliver(ORDERS_ENDED, other)
    assert handled == ["status:pricing"]


async def test_the_consume_path_keeps_each_partitions_progress_for_the_lag(
    bench: ServiceBench,
) -> None:
    """Handled, skipped or dead-lettered, a message is done: the lag counts from after it."""
    order = b2b_order("o-9", [("BOLT-M8-100", 1)])
    await bench.consumer.consume(
        ORDERS_SUBMITTED,
        accept,
        Delivery(order.to_bytes(), b"k", partition=1, offset=41, timestamp=1_800_000_000.5),
    )
    await bench.consumer.consume(
        ORDERS_SUBMITTED, accept, Delivery(b"{not json", b"k", 1, 42, 1_800_000_001.0)
    )
    progress = bench.consumer.progress.of("orders.submitted", 1)
    assert (progress.processed_offset, progress.processed_at) == (42, 1_800_000_001.0)
    assert progress.in_hand_offset is None
    assert progress.lag(highwater=43, committed=None, now=1_800_000_100.0) == Lag(0, 0.0)
    assert bench.consumer.progress.of("orders.submitted", 0).processed_offset is None


async def accept_refuse_or_fail(event: OrderSubmitted, tx: Transaction) -> None:
    """Accepts an order, but refuses `refuse-…` ones and fails on `fail-…` ones."""
    if event.order_id.startswith("refuse-"):
        await refuse(event, tx)
    if event.order_id.startswith("fail-"):
        await fail(event, tx)
    await accept(event, tx)


def received_count() -> float:
    labels = {"service": "toy", "channel": "b2b", "outcome": "received"}
    return REGISTRY.get_sample_value("tradelane_orders_total", labels) or 0.0


POISONS: dict[str, bytes] = {
    "invalid": b2b_order("bad", [("BOLT-M8-100", 1)])
    .to_bytes()
    .replace(b'"quantity":1', b'"quantity":"1"'),
    "oversized": b'{"order_id": "bad", "x": "' + b"x" * 300_000 + b'"}',
    "refused": b2b_order("refuse-bad", [("BOLT-M8-100", 1)]).to_bytes(),
    "failing": b2b_order("fail-bad", [("BOLT-M8-100", 1)]).to_bytes(),
}


@pytest.mark.parametrize("kind", POISONS)
async def test_a_poison_message_in_a_batch_goes_to_the_dlq_alone(
    bench: ServiceBench, kind: str
) -> None:
    """Its savepoint rolls back; the neighbours before and after it commit in the same batch."""
    bench.handlers = {ORDERS_SUBMITTED: accept_refuse_or_fail}
    before = received_count()
    good = [b2b_order(f"o-good-{n}", [("BOLT-M8-100", 1)]) for n in range(4)]
    batch: list[Event | bytes] = [good[0], good[1], POISONS[kind], good[2], good[3]]

    await bench.deliver_batch(ORDERS_SUBMITTED, batch)

    assert handled == [order.order_id for order in good]
    for order in good:
        assert await bench.history(order.order_id) == ["received"]
    [letter] = await bench.dead_letters(ORDERS_SUBMITTED)
    assert letter.offset == 2
    rejected = {
        "invalid": ("bad", ["rejected"]),
        "oversized": ("bad", []),
        "refused": ("refuse-bad", []),
        "failing": ("fail-bad", ["rejected"]),  # its own `received` rolled back with it
    }[kind]
    assert await bench.history(rejected[0]) == rejected[1]
    assert received_count() == before + len(good)  # the rolled-back report is not counted


async def test_a_batch_delivered_again_after_its_commit_changes_nothing(
    bench: ServiceBench,
) -> None:
    bench.handlers = {ORDERS_SUBMITTED: accept_refuse_or_fail}
    batch = [
        b2b_order("o-once-1", [("BOLT-M8-100", 1)]),
        b2b_order("refuse-once", [("BOLT-M8-100", 1)]),
        b2b_order("o-once-2", [("BOLT-M8-100", 1)]),
    ]
    await bench.deliver_batch(ORDERS_SUBMITTED, batch)
    outbox_before = await bench.published(ORDERS_STATUS, OrderStatusChanged)

    await bench.deliver_batch(ORDERS_SUBMITTED, batch)

    assert handled == ["o-once-1", "o-once-2"]
    assert await bench.published(ORDERS_STATUS, OrderStatusChanged) == outbox_before
    assert len(await bench.dead_letters(ORDERS_SUBMITTED)) == 1


async def test_a_batch_keeps_the_order_messages_arrived_in(bench: ServiceBench) -> None:
    orders = [b2b_order(f"o-seq-{n}", [("BOLT-M8-100", 1)]) for n in range(20)]
    await bench.deliver_batch(ORDERS_SUBMITTED, orders)
    assert handled == [order.order_id for order in orders]
    statuses = await bench.published(ORDERS_STATUS, OrderStatusChanged)
    assert [status.order_id for status in statuses] == handled


async def test_an_event_twice_in_one_batch_is_handled_once(bench: ServiceBench) -> None:
    order = b2b_order("o-twice", [("BOLT-M8-100", 1)])

    await bench.deliver_batch(ORDERS_SUBMITTED, [order, order])

    assert handled == ["o-twice"]
    assert await bench.history("o-twice") == ["received"]


async def test_a_report_other_services_act_on_is_repeated_on_its_own_topic(
    bench: ServiceBench,
) -> None:
    """`received` concerns only the shop; the rejection of an unreadable order concerns every
    service, so it also goes to `orders.status.ended`, the one report topic they read."""
    good = b2b_order("o-good", [("BOLT-M8-100", 1)])
    await bench.deliver(ORDERS_SUBMITTED, good)
    await bench.deliver(ORDERS_SUBMITTED, b'{"order_id": "o-bad", "account_id": "acme"}')

    assert await bench.history("o-good") == ["received"]
    assert await bench.history("o-bad") == ["rejected"]
    [ended] = await bench.published(ORDERS_ENDED, OrderStatusChanged)
    assert ended == (await bench.statuses("o-bad"))[0]
