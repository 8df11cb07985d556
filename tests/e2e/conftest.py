"""End-to-end fixtures: one topic prefix and four real service processes per test module.

Tests talk to the system only as a shop, an approver or ops would: by publishing
to topics, reading `orders.status` and the dead-letter topics, and over HTTP.
Every wait is a condition with a deadline, never a bare sleep.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition

from cli.publisher import EventPublisher
from shared.contract import (
    ApprovalDecision,
    ApprovalNotice,
    ApprovalProgress,
    DeadLetter,
    Event,
    OrderState,
    OrderStatusChanged,
    PriceEntry,
    PriceList,
    PriceTier,
    QuoteEvent,
)
from shared.kafka_connection import KafkaConnection, kafka_connection
from shared.tokens import issue_token
from shared.topics import (
    ALL_TOPICS,
    APPROVAL_DECISIONS,
    APPROVAL_NOTICES,
    ORDERS_STATUS,
    PRICE_LISTS,
    QUOTE_EVENTS,
    REFERENCE_TOPICS,
    TopicNames,
    create_topics,
)
from tools.fleet import SERVICES, Fleet
from tools.seed import price_lists, publish_reference_data

PARTITIONS = 2
WAIT_SECONDS = 60.0
TOKEN_SECRET = "e2e-secret-for-approver-tokens-0123456789"


def approver_token(approver_id: str) -> str:
    return issue_token(TOKEN_SECRET, approver_id)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TopicWatcher:
    """Reads `orders.status`, approval notices, quote events and every `.dlq` topic, in a
    background thread."""

    def __init__(self, kafka: KafkaConnection | str, names: TopicNames) -> None:
        self.names = names
        self.statuses: dict[str, list[OrderStatusChanged]] = defaultdict(list)
        self.dead_letters: dict[str, list[DeadLetter]] = defaultdict(list)
        self.notices: dict[str, list[ApprovalNotice]] = defaultdict(list)
        self.quote_events: dict[str, list[QuoteEvent]] = defaultdict(list)
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._consumer = KafkaConsumer(
            **kafka_connection(kafka).kafka_python(),
            group_id=None,
            enable_auto_commit=False,
            consumer_timeout_ms=200,
        )
        topics = [names.of(ORDERS_STATUS), names.of(APPROVAL_NOTICES), names.of(QUOTE_EVENTS)] + [
            names.dlq_of(spec) for spec in ALL_TOPICS
        ]
        partitions = [TopicPartition(t, p) for t in topics for p in range(PARTITIONS)]
        self._consumer.assign(partitions)
        self._consumer.seek_to_beginning(*partitions)
        self._thread = threading.Thread(target=self._run, name="topic-watcher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for message in self._consumer.poll(timeout_ms=200).values():
                for record in message:
                    self._record(record.topic, record.value)

    def _record(self, topic: str, value: bytes) -> None:
        with self._changed:
            if topic == self.names.of(ORDERS_STATUS):
                status = OrderStatusChanged.model_validate_json(value)
                self.statuses[status.order_id].append(status)
            elif topic == self.names.of(QUOTE_EVENTS):
                event = QuoteEvent.model_validate_json(value)
                self.quote_events[event.quote_id].append(event)
            elif topic == self.names.of(APPROVAL_NOTICES):
                notice = ApprovalNotice.model_validate_json(value)
                self.notices[notice.order_id].append(notice)
            else:
                letter = DeadLetter.model_validate_json(value)
                self.dead_letters[topic.removeprefix(self.names.prefix)].append(letter)
            self._changed.notify_all()

    def wait_until(
        self, what: str, condition: Callable[[], Any], timeout: float = WAIT_SECONDS
    ) -> Any:
        """Block until `condition()` returns something truthy (checked on every new event)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not (result := condition()):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
                self._changed.wait(min(remaining, 0.5))
            return result

    def wait_for_status(
        self, order_id: str, state: OrderState, timeout: float = WAIT_SECONDS
    ) -> OrderStatusChanged:
        def found() -> OrderStatusChanged | None:
            return next((s for s in self.statuses[order_id] if s.status is state), None)

        try:
            return self.wait_until(f"{order_id} to be {state.value}", found, timeout)
        except AssertionError as error:
            seen = [(s.status.value, s.reported_by) for s in self.statuses[order_id]]
            raise AssertionError(f"{error}; statuses seen: {seen}") from None

    def history(self, order_id: str) -> list[str]:
        with self._changed:
            return [s.status.value for s in self.statuses[order_id]]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._consumer.close()


@dataclass
class Pipeline:
    """The running system as a test sees it."""

    fleet: Fleet
    publisher: EventPublisher
    watch: TopicWatcher
    names: TopicNames
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    added_prices: dict[str, PriceEntry] = field(default_factory=dict)

    def order_id(self, label: str) -> str:
        return f"{label}-{self.run_id}-{uuid.uuid4().hex[:6]}"

    def http(
        self,
        service: str,
        method: str,
        path: str,
        body: object | None = None,
        *,
        as_approver: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        """Call a service's API; `as_approver` sends a bearer token issued to that member."""
        import urllib.error
        import urllib.request

        data = json.dumps(body).encode() if body is not None else None
        sent = {"Content-Type": "application/json", **(headers or {})}
        if as_approver is not None:
            sent["Authorization"] = f"Bearer {approver_token(as_approver)}"
        request = urllib.request.Request(
            self.fleet.running[service].url(path), data=data, method=method, headers=sent
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def metrics(self, service: str) -> str:
        """The service's `/metrics` text."""
        import urllib.request

        with urllib.request.urlopen(self.fleet.running[service].url("/metrics"), timeout=10) as r:
            return str(r.read().decode())

    def decide(
        self, order_id: str, approver_id: str, decision: str = "approve", comment: str = ""
    ) -> None:
        """An approver decides through the `approvals.decisions` topic."""
        self.publisher.publish(
            APPROVAL_DECISIONS,
            ApprovalDecision.new(
                order_id=order_id,
                approver_id=approver_id,
                decision=decision,
                comment=comment or f"{decision} by {approver_id}",
            ),
        )
        self.publisher.flush()

    def decide_over_http(
        self, order_id: str, approver_id: str, decision: str = "approve", comment: str = ""
    ) -> tuple[int, Any]:
        """An approver decides through the approvals API, with their own token."""
        return self.http(
            "approvals",
            "POST",
            f"/approvals/{order_id}/decisions",
            {"approver_id": approver_id, "decision": decision, "comment": comment or None},
            as_approver=approver_id,
        )

    def approval(self, order_id: str, as_member: str) -> dict[str, Any]:
        """`GET /approvals/{order_id}`: the request with its steps and audit trail, as read by
        `as_member`, a member of the order's account (nobody else may read it)."""
        status, body = self.http(
            "approvals", "GET", f"/approvals/{order_id}", as_approver=as_member
        )
        assert status == 200, body
        return dict(body)

    def wait_for_progress(
        self, order_id: str, what: str, condition: Callable[[ApprovalProgress], bool]
    ) -> ApprovalProgress:
        """Wait for an `awaiting_approval` or final status whose approval details satisfy
        `condition`, e.g. a step being satisfied."""

        def found() -> ApprovalProgress | None:
            for status in reversed(self.watch.statuses[order_id]):
                if status.approval is not None and condition(status.approval):
                    return status.approval
            return None

        return self.watch.wait_until(f"{order_id}: {what}", found)

    def add_list_price(self, sku: str, unit_price: str) -> None:
        """Put a test's own SKU on the B2C list price list (B2B falls back to it too).

        The list is republished whole with every SKU added so far in this module,
        so a later test's product does not take an earlier one's price away.
        """
        self.added_prices[sku] = PriceEntry(
            sku=sku, tiers=[PriceTier(min_quantity=1, unit_price=Decimal(unit_price))]
        )
        seeded = next(p for p in price_lists() if p.price_list_id == "list-EUR")
        self.publish_reference(
            PRICE_LISTS,
            PriceList.new(
                price_list_id="list-EUR",
                currency="EUR",
                prices=[*seeded.prices, *self.added_prices.values()],
            ),
        )

    def publish_reference(self, spec: Any, *events: Any) -> None:
        """Publish reference data and wait until every service that reads it has consumed it."""
        for event in events:
            self.publisher.publish(spec, event)
        self.publisher.flush()
        self.fleet.wait_caught_up([spec], timeout=WAIT_SECONDS)


def publish_with_cli(
    events: Sequence[Event], folder: Path, env: Mapping[str, str]
) -> subprocess.CompletedProcess[str]:
    """`tradelane publish FILE` as a shop runs it: a JSONL file of `events`, in a process of its
    own with `env` (this process's environment and the given variables)."""
    path = folder / "events.jsonl"
    path.write_text("".join(event.to_bytes().decode() + "\n" for event in events))
    return subprocess.run(
        [sys.executable, "-m", "cli", "publish", str(path)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def new_topic_prefix() -> str:
    return f"e2e{uuid.uuid4().hex[:8]}."


@contextmanager
def running_pipeline(
    kafka: KafkaConnection | str,
    data_dir: Path,
    instances: Sequence[str] = SERVICES,
    service_env: Mapping[str, Mapping[str, str]] | None = None,
    *,
    prefix: str | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[Pipeline]:
    """Fresh topics under a prefix of their own, the seed data, and the services running.

    `instances` may add workers (`"catalog@2"`); `service_env` sets one service's
    variables, e.g. its DATABASE_URL or its Kafka login; `extra_env` sets every
    service's. `kafka` is how the test itself connects (topics, seed data, watching):
    on a secured broker, as its admin.
    """
    kafka = kafka_connection(kafka)
    names = TopicNames(prefix if prefix is not None else new_topic_prefix())
    create_topics(kafka, names, PARTITIONS)
    fleet = Fleet(
        kafka.bootstrap,
        data_dir,
        kafka=kafka,
        topic_prefix=names.prefix,
        partitions=PARTITIONS,
        ports={name: free_port() for name in instances},
        move_taken_ports=True,
        extra_env={
            "TRADELANE_OUTBOX_POLL_SECONDS": "0.2",
            "TRADELANE_SESSION_TIMEOUT_SECONDS": "6",
            "APPROVALS_TOKEN_SECRET": TOKEN_SECRET,
            "APPROVALS_TIMER_SECONDS": "0.2",
            **(extra_env or {}),
        },
        service_env=service_env or {},
    )
    publisher = EventPublisher(kafka, names)
    publish_reference_data(publisher)
    watch = TopicWatcher(kafka, names)
    try:
        fleet.start(instances)
        fleet.wait_caught_up(REFERENCE_TOPICS)
        yield Pipeline(fleet, publisher, watch, names)
    finally:
        fleet.stop()
        watch.close()
        publisher.close()


@pytest.fixture(scope="module")
def pipeline(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    with running_pipeline(kafka_bootstrap, Path(tmp_path_factory.mktemp("services"))) as running:
        yield running
