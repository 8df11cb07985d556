"""The baselines: four consume→produce hops with no logic, on the broker Tradelane runs on.

Each hop is a process of its own, like each Tradelane service: hop i reads
`chain.i` and writes every message unchanged to `chain.i+1`, committing as it
goes. Written once as a Faust agent (how the services consume) and once with
aiokafka alone (`getmany` and sends awaited per batch), they show what the
broker and each client allow before any business logic, database or outbox
is involved: the ceiling Tradelane is measured against.

A third chain, `faust-reports`, carries Tradelane's traffic rather than
the bare hops: every Faust hop also reports each message it forwards on one
shared status topic, and every hop reads all the reports, as every service
reads `orders.status`. It is the ceiling of the contract's fan-out with no
logic: what Faust allows a pipeline that talks as Tradelane's does.

``python -m tools.bench.chains faust|faust-reports|aiokafka HOP BOOTSTRAP PREFIX PARTITIONS
WORK_DIR`` runs one hop (a Faust hop keeps its data dir in WORK_DIR; a reporting hop
also writes how many reports it has read to `reports_read_path(WORK_DIR, HOP)`).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

HOPS = 4
REPORTING = "faust-reports"
KINDS = ("faust", REPORTING, "aiokafka")
REPORTS_PER_MESSAGE = HOPS
"""One report per hop and message, as each Tradelane service reports each step it takes."""
PROGRESS_SECONDS = 0.1


def chain_topic(prefix: str, kind: str, position: int) -> str:
    """`<prefix>chain-<kind>.<position>`: position 0 is where the load goes in, 4 the end."""
    return f"{prefix}chain-{kind}.{position}"


def chain_topics(prefix: str, kind: str) -> list[str]:
    return [chain_topic(prefix, kind, position) for position in range(HOPS + 1)]


def reports_topic(prefix: str) -> str:
    """The reporting chain's status topic, which every one of its hops writes and reads."""
    return f"{prefix}chain-{REPORTING}.status"


def reports_read_path(work_dir: Path, position: int) -> Path:
    """Where reporting hop `position` appends `[reports read, wall time of the last]`."""
    return work_dir / f"chain-{REPORTING}-reports-read-{position}.jsonl"


def run_faust_hop(
    bootstrap: str,
    source: str,
    sink: str,
    group: str,
    partitions: int,
    datadir: str,
    reports: tuple[str, Path] | None = None,
) -> None:
    """One hop as a Faust worker, configured as the services configure theirs
    (`shared.service`: at least once, acks from all replicas, memory store).

    With `reports` (the status topic and the file to note progress in), the hop also
    reports every message it forwards and reads every hop's reports.
    """
    import faust

    from tools.local_kafka import free_port

    app = faust.App(
        group,
        broker=f"kafka://{bootstrap}",
        processing_guarantee="at_least_once",
        store="memory://",
        autodiscover=False,
        datadir=datadir,
        topic_partitions=partitions,
        topic_allow_declare=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        # The worker binds its web server even when disabled: a free port, on loopback only.
        web_port=free_port(),
        web_bind="127.0.0.1",
        web_host="127.0.0.1",
        producer_acks=-1,
        broker_commit_every=100,
        broker_commit_interval=1.0,
    )
    inbound = app.topic(source, key_serializer="raw", value_serializer="raw")
    outbound = app.topic(sink, key_serializer="raw", value_serializer="raw")

    status = None
    if reports:
        status = app.topic(reports[0], key_serializer="raw", value_serializer="raw")

    @app.agent(inbound)
    async def hop(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            await outbound.send(key=event.key, value=event.value)
            if status is not None:
                await status.send(key=event.key, value=event.value)

    if status is not None and reports is not None:
        read: list[float] = [0, 0.0]
        noted: list[float] = [0]
        progress = reports[1]

        @app.agent(status)
        async def read_reports(stream: faust.StreamT[bytes]) -> None:
            async for _ in stream.events():
                read[0] += 1
                read[1] = time.time()

        @app.timer(PROGRESS_SECONDS)
        async def note_progress() -> None:
            if read[0] != noted[0]:
                noted[0] = read[0]
                with progress.open("a") as out:
                    out.write(json.dumps(read) + "\n")

    sys.argv = [sys.argv[0], "worker", "--loglevel", "warn"]
    app.main()


async def run_aiokafka_hop(bootstrap: str, source: str, sink: str, group: str) -> None:
    """One hop with aiokafka alone: take what is there, send it all, await the sends, commit."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=2, max_batch_size=256 * 1024
    )
    await consumer.start()
    await producer.start()
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=100, max_records=1000)
            sends = [
                await producer.send(sink, record.value, key=record.key)
                for records in batches.values()
                for record in records
            ]
            if sends:
                await asyncio.gather(*sends)
                await consumer.commit()
    finally:
        await producer.stop()
        await consumer.stop()


def main(argv: Sequence[str] | None = None) -> int:
    kind, hop, bootstrap, prefix, partitions, work_dir = list(argv or sys.argv[1:])
    position = int(hop)
    source = chain_topic(prefix, kind, position)
    sink = chain_topic(prefix, kind, position + 1)
    group = f"{prefix}chain-{kind}-{position}"
    if kind in ("faust", REPORTING):
        datadir = f"{work_dir}/{kind}-hop-{position}"
        reports = (
            (reports_topic(prefix), reports_read_path(Path(work_dir), position))
            if kind == REPORTING
            else None
        )
        run_faust_hop(bootstrap, source, sink, group, int(partitions), datadir, reports)
    else:
        asyncio.run(run_aiokafka_hop(bootstrap, source, sink, group))
    return 0


if __name__ == "__main__":
    sys.exit(main())
