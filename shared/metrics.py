"""Prometheus metrics in base units, with bounded labels.

Faust's own Prometheus sensor reports milliseconds under misspelled names, so
every Tradelane service emits these instead. Labels are topics (a fixed set),
channels and outcomes (closed enums): never order ids or SKUs.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

EVENTS_CONSUMED = Counter(
    "tradelane_events_consumed_total",
    "Events taken from a topic, including duplicates and dead letters.",
    ["service", "topic"],
)
EVENTS_PRODUCED = Counter(
    "tradelane_events_produced_total",
    "Events published to a topic by the outbox relay.",
    ["service", "topic"],
)
DUPLICATES_SKIPPED = Counter(
    "tradelane_duplicate_events_total",
    "Redelivered or re-sent events the inbox dropped.",
    ["service", "topic"],
)
DEAD_LETTERS = Counter(
    "tradelane_dead_letters_total",
    "Messages sent to a dead-letter topic, by source topic.",
    ["service", "topic"],
)
PROCESSING_SECONDS = Histogram(
    "tradelane_event_processing_seconds",
    "Time from taking an event to committing its transaction.",
    ["service", "topic"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
BATCH_EVENTS = Histogram(
    "tradelane_batch_events",
    "Events taken from a topic into one transaction (a batch).",
    ["service", "topic"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
)
BATCH_SECONDS = Histogram(
    "tradelane_batch_processing_seconds",
    "Time from taking a batch to committing its transaction, retries included.",
    ["service", "topic"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
ORDERS = Counter(
    "tradelane_orders_total",
    "Orders leaving a service's step, by channel and outcome (the status it published).",
    ["service", "channel", "outcome"],
)
ORDER_REJECTIONS = Counter(
    "tradelane_order_rejections_total",
    "Orders a service rejected, by channel and reason code (the contract's closed list).",
    ["service", "channel", "reason"],
)
PROCESSING_FAILURES = Counter(
    "tradelane_processing_failures_total",
    "Valid events whose handling failed (a bug or bad data the contract let through); "
    "each is dead-lettered and its order rejected `processing_failed`.",
    ["service", "topic"],
)
REFUSED_EVENTS = Counter(
    "tradelane_refused_events_total",
    "Valid events refused because they name another account's order or reuse an order id.",
    ["service", "topic", "reason"],
)
OUTBOX_PARKED = Gauge(
    "tradelane_outbox_parked_rows",
    "Outbox rows the broker refused for good, waiting for ops (`tradelane outbox`).",
    ["service"],
)
OUTBOX_PARKED_TOTAL = Counter(
    "tradelane_outbox_parked_total",
    "Outbox rows parked because the broker refused them for good.",
    ["service", "topic"],
)
FORGOTTEN_ROWS = Counter(
    "tradelane_retention_deleted_rows_total",
    "Inbox entries and sent outbox rows deleted after the retention period.",
    ["service"],
)
OUTBOX_RELAY_SECONDS = Histogram(
    "tradelane_outbox_relay_seconds",
    "Time to publish one batch of outbox rows to Kafka.",
    ["service"],
)
CONSUMER_LAG_MESSAGES = Gauge(
    "tradelane_consumer_lag_messages",
    "Messages on the topic this worker has not processed yet: high watermark minus the next "
    "offset to process, summed over the partitions it owns (computed on scrape).",
    ["service", "topic"],
)
CONSUMER_LAG_SECONDS = Gauge(
    "tradelane_consumer_lag_seconds",
    "Age of the oldest message on the topic this worker has not processed yet, by its record "
    "timestamp; 0 when nothing is behind, however long the topic has been idle.",
    ["service", "topic"],
)


class OrderStage(StrEnum):
    """Where an order got to: the statuses shops see, and the hand-overs between services."""

    RECEIVED = "received"
    VALIDATED = "validated"
    PRICED = "priced"
    AWAITING_APPROVAL = "awaiting_approval"
    APPROVED = "approved"
    FULFILLMENT_PLANNED = "fulfillment_planned"
    SHIPPED = "shipped"
    REJECTED = "rejected"


STAGE_LATENCY_BUCKETS = (
    # seconds for the automatic steps ...
    *(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    # ... minutes to hours while a backlog drains or people approve ...
    *(60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 8 * 3600.0),
    # ... and days for B2B approval chains and backorders
    *(86400.0, 2 * 86400.0, 7 * 86400.0, 30 * 86400.0),
)
ORDER_STAGE_LATENCY = Histogram(
    "tradelane_order_stage_latency_seconds",
    "From the shop's submission (the `occurred_at` of `orders.submitted`) to the order "
    "reaching a stage, observed when the service's transaction commits.",
    ["service", "stage"],
    buckets=STAGE_LATENCY_BUCKETS,
)


def topic_consumed(service: str, topic: str) -> None:
    """`service` reads `topic`: its per-topic counters show on `/metrics` from the start, at 0.

    A counter that appears only with its first increment hides that increment
    from `increase()` and `rate()`, so the dead-letter and failure alerts would
    miss the first dead letter or failure of a topic.
    """
    for counter in (EVENTS_CONSUMED, DUPLICATES_SKIPPED, DEAD_LETTERS, PROCESSING_FAILURES):
        counter.labels(service, topic)


def stages_timed(service: str, *stages: OrderStage) -> None:
    """The stages `service` times show on `/metrics` from the start, at 0."""
    for stage in stages:
        ORDER_STAGE_LATENCY.labels(service, stage.value)


def observe_stage(service: str, stage: OrderStage, submitted_at: datetime) -> None:
    """The order reached `stage` now; a shop clock ahead of ours counts as 0, not negative."""
    waited = (datetime.now(UTC) - submitted_at).total_seconds()
    ORDER_STAGE_LATENCY.labels(service, stage.value).observe(max(0.0, waited))


def exposition() -> tuple[bytes, str]:
    """The text format for `/metrics`, and its content type."""
    return generate_latest(), CONTENT_TYPE_LATEST
