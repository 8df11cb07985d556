"""The one registry of Tradelane's topics: name, key, event model, owner, compaction.

Services never spell a topic name; they name a `TopicSpec`. The registry also
creates every topic (and its `.dlq` twin) before any worker starts, because
Faust does not and the broker would otherwise auto-create them wrongly.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from shared.contract import (
    Account,
    ApprovalDecision,
    ApprovalNotice,
    ApprovalPolicy,
    BackorderFilled,
    DeadLetter,
    Delegation,
    Event,
    OrderApproved,
    OrderCancelled,
    OrderPriced,
    OrderState,
    OrderStatusChanged,
    OrderSubmitted,
    OrderValidated,
    PaymentReceived,
    PriceList,
    Product,
    Promotion,
    Quote,
    QuoteEvent,
    ShipmentDispatched,
    StockAdjustment,
    StockLevel,
    Warehouse,
)
from shared.kafka_connection import KafkaConnection, kafka_connection

log = logging.getLogger(__name__)

WEEK_MS = 7 * 24 * 3600 * 1000
KIB = 1024
MIB = 1024 * KIB


@dataclass(frozen=True)
class TopicSpec:
    """One topic of the contract. `key` is a template over the event's fields, e.g. `{order_id}`."""

    name: str
    model: type[Event]
    key: str
    writer: str
    description: str
    compacted: bool = False
    retention_ms: int | None = WEEK_MS
    invalid_rejects_order: bool = False
    """An unreadable message on this topic rejects the order it names (`invalid_event`)."""
    max_bytes: int = MIB
    """The largest message value a consumer reads; a larger one is dead-lettered unparsed.

    Kafka's own default (`max.message.bytes`) for internal and reference topics;
    less where a shop or a warehouse writes, so no sender can make a service
    parse megabytes to find one mistake.
    """

    repeats: frozenset[OrderState] = frozenset()
    """For a topic of the services' own: the `orders.status` reports it carries again.

    Every transition of every order is reported on `orders.status`, but each
    service acts on a few of them (an order ended elsewhere, its holds or its
    stock to move). Reading the whole topic costs every service every report
    of every order; each of these topics carries the reports one kind of
    work acts on, and a service reads one of them. Keyed by order id like
    `orders.status`, a service still meets an order's reports in the order
    they were written, one worker at a time. `orders.status` stays the shops'
    contract.
    """

    readers: tuple[str, ...] = ()
    """Parties outside Tradelane the contract promises this topic to (the shops, the CRM).

    The services' own reads come from their handlers; this names the others, so the
    AsyncAPI document and the outside systems' KafkaUsers (`tools.k8s`) say the same.
    """

    def parse(self, raw: bytes) -> Event:
        """The event in `raw`, validated strictly: `"7"`, `true` or `1.0` is not an integer here.

        Strict on the wire only: Python code building events may still pass
        strings for ids and times.
        """
        return self.model.model_validate_json(raw, strict=True)

    def key_of(self, event: Event) -> str:
        return self.key.format(**dict(event))


ORDERS_SUBMITTED = TopicSpec(
    "orders.submitted",
    OrderSubmitted,
    "{account_id}",
    "shops",
    "Orders placed by upstream shops.",
    invalid_rejects_order=True,
    max_bytes=256 * KIB,
)
ORDERS_CANCELLED = TopicSpec(
    "orders.cancelled",
    OrderCancelled,
    "{account_id}",
    "shops",
    "A shop withdraws an order.",
    max_bytes=16 * KIB,
)
ORDERS_VALIDATED = TopicSpec(
    "orders.validated",
    OrderValidated,
    "{order.account_id}",
    "catalog",
    "Lines checked, stock reserved.",
    invalid_rejects_order=True,
)
ORDERS_PRICED = TopicSpec(
    "orders.priced",
    OrderPriced,
    "{order.account_id}",
    "pricing",
    "Lines priced, totals, terms checked.",
    invalid_rejects_order=True,
)
ORDERS_APPROVED = TopicSpec(
    "orders.approved",
    OrderApproved,
    "{order.account_id}",
    "approvals",
    "Cleared for fulfillment.",
    invalid_rejects_order=True,
)
BACKORDERS_FILLED = TopicSpec(
    "orders.backorder_filled",
    BackorderFilled,
    "{account_id}",
    "catalog",
    "Stock arrived for backordered lines and is now held; fulfillment ships it.",
    invalid_rejects_order=True,
)
DISPATCHES = TopicSpec(
    "fulfillment.dispatches",
    ShipmentDispatched,
    "{order_id}",
    "WMS",
    "A planned shipment left the warehouse.",
    max_bytes=64 * KIB,
)
PAYMENTS_RECEIVED = TopicSpec(
    "payments.received",
    PaymentReceived,
    "{account_id}",
    "ERP",
    "Payments booked against invoiced orders; they reduce the account's credit exposure.",
    max_bytes=16 * KIB,
)
ORDERS_STATUS = TopicSpec(
    "orders.status",
    OrderStatusChanged,
    "{order_id}",
    "all services",
    "Every order transition.",
    readers=("shops",),
)
ENDINGS = frozenset({OrderState.REJECTED, OrderState.CANCELLED})
ORDERS_ENDED = TopicSpec(
    "orders.status.ended",
    OrderStatusChanged,
    "{order_id}",
    "all services",
    "The `rejected` and `cancelled` reports again: approvals and fulfillment drop the order.",
    repeats=ENDINGS,
)
HOLD_MOVES = TopicSpec(
    "orders.status.holds",
    OrderStatusChanged,
    "{order_id}",
    "all services",
    "The reports that move pricing's holds again: `approved` commits them, an ending releases.",
    repeats=ENDINGS | {OrderState.APPROVED},
)
STOCK_MOVES = TopicSpec(
    "orders.status.stock",
    OrderStatusChanged,
    "{order_id}",
    "all services",
    "The reports that move catalog's stock again: a plan keeps it, a shipment takes it off "
    "the shelf, an ending gives it back.",
    repeats=ENDINGS | {OrderState.FULFILLMENT_PLANNED, OrderState.SHIPPED},
)
APPROVAL_DECISIONS = TopicSpec(
    "approvals.decisions",
    ApprovalDecision,
    "{order_id}",
    "approvers",
    "Approve/reject decisions by B2B decision makers.",
    max_bytes=16 * KIB,
)
APPROVAL_POLICIES = TopicSpec(
    "approvals.policies",
    ApprovalPolicy,
    "{account_id}",
    "CRM",
    "Each B2B account's approval policy: rules, steps, time limits, spending limits.",
    compacted=True,
    retention_ms=None,
)
DELEGATIONS = TopicSpec(
    "approvals.delegations",
    Delegation,
    "{account_id}:{delegator_id}",
    "approvers",
    "Out-of-office delegations: who decides in an approver's name, and until when.",
    compacted=True,
    retention_ms=None,
    max_bytes=16 * KIB,
)
APPROVAL_NOTICES = TopicSpec(
    "approvals.notifications",
    ApprovalNotice,
    "{order_id}",
    "approvals",
    "Reminders and escalations for approvers (for mail or chat).",
)
PRODUCTS = TopicSpec(
    "catalog.products",
    Product,
    "{sku}",
    "PIM",
    "Product master data.",
    compacted=True,
    retention_ms=None,
)
STOCK = TopicSpec(
    "catalog.stock",
    StockLevel,
    "{sku}@{warehouse_id}",
    "WMS",
    "On-hand stock per warehouse.",
    compacted=True,
    retention_ms=None,
    max_bytes=16 * KIB,
)
STOCK_ADJUSTMENTS = TopicSpec(
    "catalog.stock_adjustments",
    StockAdjustment,
    "{sku}@{warehouse_id}",
    "WMS",
    "Changes to on-hand stock: count corrections, breakage, returns.",
    max_bytes=16 * KIB,
)
ACCOUNTS = TopicSpec(
    "accounts",
    Account,
    "{account_id}",
    "CRM",
    "Customers and business accounts with members.",
    compacted=True,
    retention_ms=None,
)
PRICE_LISTS = TopicSpec(
    "pricing.price_lists",
    PriceList,
    "{price_list_id}",
    "ERP",
    "List and contract price lists.",
    compacted=True,
    retention_ms=None,
)
QUOTES = TopicSpec(
    "pricing.quotes",
    Quote,
    "{quote_id}",
    "CRM",
    "Negotiated quotes: an account's agreed unit prices, until a time, single or multiple use.",
    compacted=True,
    retention_ms=None,
)
QUOTE_EVENTS = TopicSpec(
    "pricing.quote_events",
    QuoteEvent,
    "{quote_id}",
    "pricing",
    "A quote's lifecycle for the CRM: used, released, expired, with the quote's version.",
    readers=("CRM",),
    max_bytes=16 * KIB,
)
PROMOTIONS = TopicSpec(
    "pricing.promotions",
    Promotion,
    "{promotion_id}",
    "ERP",
    "Promotions and promo codes; `active: false` retires one.",
    compacted=True,
    retention_ms=None,
)
WAREHOUSES = TopicSpec(
    "warehouses",
    Warehouse,
    "{warehouse_id}",
    "ERP",
    "Warehouses, DCs and 3PL sites.",
    compacted=True,
    retention_ms=None,
)

ALL_TOPICS: tuple[TopicSpec, ...] = (
    ORDERS_SUBMITTED,
    ORDERS_CANCELLED,
    ORDERS_VALIDATED,
    ORDERS_PRICED,
    ORDERS_APPROVED,
    BACKORDERS_FILLED,
    ORDERS_STATUS,
    ORDERS_ENDED,
    HOLD_MOVES,
    STOCK_MOVES,
    DISPATCHES,
    PAYMENTS_RECEIVED,
    APPROVAL_DECISIONS,
    APPROVAL_NOTICES,
    APPROVAL_POLICIES,
    DELEGATIONS,
    PRODUCTS,
    STOCK,
    STOCK_ADJUSTMENTS,
    ACCOUNTS,
    PRICE_LISTS,
    QUOTES,
    QUOTE_EVENTS,
    PROMOTIONS,
    WAREHOUSES,
)
REFERENCE_TOPICS = tuple(t for t in ALL_TOPICS if t.compacted)
REPEATING_TOPICS = tuple(t for t in ALL_TOPICS if t.repeats)


def repeating(state: OrderState) -> tuple[TopicSpec, ...]:
    """The topics that carry a report of `state` besides `orders.status` (a service reads one)."""
    return tuple(t for t in REPEATING_TOPICS if state in t.repeats)


DEAD_LETTER_MODEL = DeadLetter


@dataclass(frozen=True)
class TopicNames:
    """Resolves specs to real names under a prefix (tests use one prefix per module)."""

    prefix: str = ""

    def of(self, spec: TopicSpec) -> str:
        return f"{self.prefix}{spec.name}"

    def dlq_of(self, spec: TopicSpec) -> str:
        return f"{self.prefix}{spec.name}.dlq"

    def all_names(self, specs: Iterable[TopicSpec] = ALL_TOPICS) -> list[str]:
        return [name for spec in specs for name in (self.of(spec), self.dlq_of(spec))]


DLQ_CONFIGS = {"cleanup.policy": "delete", "retention.ms": str(4 * WEEK_MS)}
"""Dead letters are kept four weeks: long enough for a fix and a replay."""


def topic_configs(spec: TopicSpec) -> dict[str, str]:
    if spec.compacted:
        return {"cleanup.policy": "compact", "min.compaction.lag.ms": "0"}
    return {"cleanup.policy": "delete", "retention.ms": str(spec.retention_ms or WEEK_MS)}


TOPIC_ALREADY_EXISTS = 36


class TopicCreationError(RuntimeError):
    pass


def create_topics(
    kafka: KafkaConnection | str,
    names: TopicNames,
    partitions: int,
    *,
    replication_factor: int = 1,
    min_insync_replicas: int = 1,
) -> list[str]:
    """Create every registry topic and its `.dlq` twin; existing topics are left as they are.

    Safe to run from several processes at once (each service does at start-up).
    On a cluster where topics are managed elsewhere (Strimzi's KafkaTopics), all
    exist and nothing is created: the service's user needs Describe only.
    Returns the names created by this call.
    """
    from kafka.admin import KafkaAdminClient

    durability = {"min.insync.replicas": str(min_insync_replicas)}
    wanted: dict[str, dict[str, object]] = {}
    for spec in ALL_TOPICS:
        wanted[names.of(spec)] = {"configs": {**topic_configs(spec), **durability}}
        wanted[names.dlq_of(spec)] = {"configs": {**DLQ_CONFIGS, **durability}}
    for options in wanted.values():
        options.update(num_partitions=partitions, replication_factor=replication_factor)
    admin = KafkaAdminClient(**kafka_connection(kafka).kafka_python(), client_id="tradelane-topics")
    try:
        missing = {n: o for n, o in wanted.items() if n not in set(admin.list_topics())}
        if not missing:
            return []
        result = admin.create_topics(missing, raise_errors=False, wait_for_metadata=True)
    finally:
        admin.close()
    created, failed = [], []
    for topic in result["topics"]:
        if topic["error_code"] == 0:
            created.append(topic["name"])
        elif topic["error_code"] != TOPIC_ALREADY_EXISTS:
            failed.append(f"{topic['name']}: {topic['error_message']}")
    if failed:
        raise TopicCreationError("could not create topics: " + "; ".join(failed))
    log.info("created %d topics", len(created))
    return created
