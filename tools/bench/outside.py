"""The benchmark's outside world, each in a process of its own: shop, approvers, status reader.

They reach Tradelane only as the real parties do, over the public topics, so
what they measure is what a shop sees. Each runs its own event loop in a
separate process (`multiprocessing`, spawn), so the load it generates and the
statuses it reads never compete with the harness for one interpreter's time.
They hand their observations back through files of JSON lines, which the
harness reads while they run.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.synchronize import Event as ProcessEvent
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder

from shared.contract import ApprovalDecision, OrderState, OrderStatusChanged, OrderSubmitted
from tools.demo import next_decisions
from tools.seed import b2b_order, b2c_order

FINAL_STATES = frozenset({OrderState.FULFILLMENT_PLANNED.value, OrderState.REJECTED.value})
"""Where an order's benchmarked journey ends: planned for fulfillment, or rejected."""

B2C_SHARE = 0.7
APPROVAL_SHARE_OF_B2B = 1 / 3
B2C_CUSTOMERS = 500
"""Consumers the shop's B2C orders spread over: the key of `orders.submitted` is the account,
so a realistic number of distinct keys lets more partitions (and workers) share the load."""

PRODUCER_BATCH_BYTES = 256 * 1024
SEND_SLICE_SECONDS = 0.002
"""The shop sends everything due, then sleeps at most this long: the arrival clock's grain."""


def b2b_accounts(count: int) -> list[str]:
    """The benchmark's business accounts (copies of the demo's Globex, see `tools.bench.data`)."""
    return [f"bench-b2b-{number:02d}" for number in range(count)]


def shop_order(order_id: str, number: int, b2b_accounts: Sequence[str]) -> OrderSubmitted:
    """The `number`th order of the mix: 70 % consumers, 30 % businesses, a third of those
    large enough (2275 EUR) that the account's manager and finance must approve it.

    Deterministic in `number` (no random draw), so two runs offer the same orders.
    """
    slot = number % 30
    if slot < 21:
        customer = f"cust-bench-{number % B2C_CUSTOMERS:03d}"
        if slot % 3 == 0:
            return b2c_order(
                order_id,
                [("DRILL-18V", 1), ("GLOVE-L", 1)],
                account_id=customer,
                speed="express",
                installments=3,
            )
        if slot % 3 == 1:
            return b2c_order(
                order_id, [("HEADSET-BT", 1), ("GLOVE-L", 2)], account_id=customer, speed="economy"
            )
        return b2c_order(order_id, [("SCREW-5X50", 2), ("GLOVE-L", 3)], account_id=customer)
    account = b2b_accounts[number % len(b2b_accounts)]
    buyer = "globex-buyer"
    if slot >= 27:
        return b2b_order(order_id, [("BOLT-M8-100", 250)], account_id=account, buyer_id=buyer)
    return b2b_order(order_id, [("GLOVE-L", 120)], account_id=account, buyer_id=buyer)


@dataclass(frozen=True)
class Offer:
    """One open-loop load level: `count` orders at `rate` per second (0: all at once)."""

    topic: str
    prefix: str
    count: int
    rate: float
    b2b_accounts: tuple[str, ...]


def run_shop(bootstrap: str, offer: Offer, out: Path) -> None:
    """Process entry: place `offer`'s orders on the arrival clock, then write what was sent."""
    asyncio.run(_shop(bootstrap, offer, out))


async def _shop(bootstrap: str, offer: Offer, out: Path) -> None:
    """Open loop: order i is due at start + i / rate, whether or not earlier ones are done.

    Every record carries its due time as its timestamp, and latency is measured
    from it, so a shop that fell behind its clock would still be charged to the
    system (no coordinated omission); how far behind it ever fell is reported.
    """
    orders = [
        (o.order_id, o.account_id.encode(), o.to_bytes())
        for o in (
            shop_order(f"{offer.prefix}-{n:06d}", n, offer.b2b_accounts) for n in range(offer.count)
        )
    ]
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=2, max_batch_size=PRODUCER_BATCH_BYTES
    )
    await producer.start()
    worst_behind = 0.0
    try:
        start = time.time()
        if offer.rate > 0:
            worst_behind = await _send_on_clock(producer, offer.topic, orders, start, offer.rate)
        else:
            await _send_at_once(producer, offer.topic, orders, int(start * 1000))
        finished = time.time()
    finally:
        await producer.stop()
    sent = [
        (order_id, int(1000 * (start + number / offer.rate if offer.rate > 0 else start)))
        for number, (order_id, _, _) in enumerate(orders)
    ]
    out.write_text(
        json.dumps(
            {
                "orders": sent,
                "started": start,
                "finished": finished,
                "achieved_rate": len(sent) / max(finished - start, 1e-9),
                "worst_behind_seconds": worst_behind,
            }
        )
    )


async def _send_on_clock(
    producer: AIOKafkaProducer,
    topic: str,
    orders: Sequence[tuple[str, bytes, bytes]],
    start: float,
    rate: float,
) -> float:
    """Each order when it is due, stamped with its due time; returns how late the worst was."""
    worst_behind = 0.0
    pending = []
    for number, (_, key, value) in enumerate(orders):
        due = start + number / rate
        ahead = due - time.time()
        if ahead > SEND_SLICE_SECONDS:
            await asyncio.sleep(ahead)
        worst_behind = max(worst_behind, time.time() - due)
        stamp = int(due * 1000)
        pending.append(await producer.send(topic, value, key=key, timestamp_ms=stamp))
    await asyncio.gather(*pending)
    return worst_behind


async def _send_at_once(
    producer: AIOKafkaProducer,
    topic: str,
    orders: Sequence[tuple[str, bytes, bytes]],
    stamp: int,
) -> None:
    """A burst: the orders in full batches per partition (the one a keyed send picks), so
    one producer goes as fast as aiokafka can, without a call per message."""
    partitions = sorted(await producer.partitions_for(topic))
    choose = DefaultPartitioner()
    batches: dict[int, BatchBuilder] = {}
    pending = []
    for _, key, value in orders:
        partition = choose(key, partitions, partitions)
        batch = batches.setdefault(partition, producer.create_batch())
        if batch.append(key=key, value=value, timestamp=stamp) is None:
            pending.append(await producer.send_batch(batch, topic, partition=partition))
            batch = batches[partition] = producer.create_batch()
            batch.append(key=key, value=value, timestamp=stamp)
    for partition, batch in batches.items():
        if batch.record_count():
            pending.append(await producer.send_batch(batch, topic, partition=partition))
    await asyncio.gather(*pending)


def run_status_reader(bootstrap: str, topic: str, out: Path, ready: ProcessEvent) -> None:
    """Process entry: append `[order_id, state, record_ms]` for every final status to `out`."""
    asyncio.run(_note(bootstrap, topic, out, ready, final_statuses))


async def _latest_only(consumer: AIOKafkaConsumer, topic: str) -> None:
    """Read `topic` from its current end, every partition, without a consumer group."""
    partitions = [TopicPartition(topic, p) for p in sorted(await _partitions(consumer, topic))]
    consumer.assign(partitions)
    await consumer.seek_to_end(*partitions)
    for partition in partitions:
        await consumer.position(partition)  # resolve the end now, before `ready` is set


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    while not (found := consumer.partitions_for_topic(topic)):
        await consumer._client.force_metadata_update()
    return set(found)


def final_statuses(records: list[ConsumerRecord[bytes, bytes]]) -> list[object]:
    """`[order_id, state, record_ms]` of each final status; a plain JSON read (no model)
    keeps the reader cheap."""
    rows: list[object] = []
    for record in records:
        status = json.loads(record.value or b"{}")
        if status.get("status") in FINAL_STATES:
            rows.append([status["order_id"], status["status"], record.timestamp])
    return rows


def arrivals(records: list[ConsumerRecord[bytes, bytes]]) -> list[object]:
    """`[messages, wall_time]` for a batch: when how many reached the end of a chain."""
    return [[len(records), time.time()]] if records else []


async def _note(
    bootstrap: str,
    topic: str,
    out: Path,
    ready: ProcessEvent,
    rows: Callable[[list[ConsumerRecord[bytes, bytes]]], list[object]],
) -> None:
    """Read `topic` from its end and append `rows(batch)` to `out` as JSON lines."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        await _latest_only(consumer, topic)
        ready.set()
        with out.open("a") as sink:
            while True:
                batches = await consumer.getmany(timeout_ms=200, max_records=5000)
                found = rows([record for records in batches.values() for record in records])
                if found:
                    sink.write("".join(json.dumps(row) + "\n" for row in found))
                    sink.flush()
    finally:
        await consumer.stop()


def run_approvers(
    bootstrap: str, status_topic: str, decisions_topic: str, ready: ProcessEvent
) -> None:
    """Process entry: the business accounts' approvers, deciding at once over the topic."""
    asyncio.run(_approve(bootstrap, status_topic, decisions_topic, ready))


async def _approve(
    bootstrap: str, status_topic: str, decisions_topic: str, ready: ProcessEvent
) -> None:
    """Sign every open step of every approval request as soon as its status shows it.

    Who signs what is the demo's own rule (`tools.demo.next_decisions`); here
    nobody thinks it over and nobody vetoes, so an approval costs the round
    trips through the topics and nothing else.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2)
    await consumer.start()
    await producer.start()
    sent: set[tuple[str, str, str]] = set()
    marker = f'"{OrderState.AWAITING_APPROVAL.value}"'.encode()
    try:
        await _latest_only(consumer, status_topic)
        ready.set()
        while True:
            batches = await consumer.getmany(timeout_ms=200, max_records=2000)
            pending = []
            for records in batches.values():
                for record in records:
                    if marker not in record.value:
                        continue
                    status = OrderStatusChanged.model_validate_json(record.value)
                    if status.status is not OrderState.AWAITING_APPROVAL or not status.approval:
                        continue
                    for planned in next_decisions(status.order_id, status.approval, sent, False):
                        sent.add(planned.key)
                        decision = ApprovalDecision.new(
                            order_id=planned.order_id,
                            approver_id=planned.approver_id,
                            decision=planned.decision,
                            comment="benchmark approver",
                        )
                        pending.append(
                            await producer.send(
                                decisions_topic,
                                decision.to_bytes(),
                                key=planned.order_id.encode(),
                            )
                        )
            if pending:
                await asyncio.gather(*pending)
    finally:
        await producer.stop()
        await consumer.stop()


def run_arrival_counter(bootstrap: str, topic: str, out: Path, ready: ProcessEvent) -> None:
    """Process entry: append `[messages, wall_time]` for every batch read from `topic`'s end."""
    asyncio.run(_note(bootstrap, topic, out, ready, arrivals))
