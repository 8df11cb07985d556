"""`python -m tools.demo` (`make run`): the whole system on one screen, for a newcomer.

It brings up what the order flow needs (Kafka, the topics, the reference data,
the four services as real processes), then plays the three outside parties a
real installation has: a **shop** that keeps submitting a realistic mix of B2C
and B2B orders; the business accounts' **approvers**, who sign each open step
of an approval request over the approvals HTTP API with their own bearer
token, exactly as a person's browser would; and the **warehouse** (WMS), which
confirms each planned shipment's dispatch a little later and books a goods
receipt for what left. A live table shows what every order went through, read
from `orders.status` like a shop reads it.

Nothing here takes a shortcut into a service: the demo only publishes events,
reads the status topic and calls public HTTP endpoints, so what you see is what
a shop or an approver integrating with Tradelane would see.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import logging
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from pydantic import ValidationError
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.logging import RichHandler
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from cli.publisher import EventPublisher
from shared.contract import (
    ApprovalProgress,
    OrderState,
    OrderStatusChanged,
    OrderSubmitted,
    PaymentPlan,
    ShipmentDispatched,
    StepProgress,
    StockAdjustment,
)
from shared.contract.status import Shipment
from shared.kafka_connection import KafkaConnection, kafka_connection
from shared.settings import SERVICE_WEB_PORTS, Settings, load_settings
from shared.tokens import issue_token
from shared.topics import (
    DISPATCHES,
    ORDERS_STATUS,
    ORDERS_SUBMITTED,
    REFERENCE_TOPICS,
    STOCK_ADJUSTMENTS,
    TopicCreationError,
    TopicNames,
    create_topics,
)
from tools.fleet import SERVICES, Fleet, FleetError
from tools.local_kafka import BOOTSTRAP_ENV, BrokerError, LocalKafka, project_root
from tools.seed import ACME, ACME_QUOTE, GLOBEX, b2b_order, b2c_order, publish_reference_data

log = logging.getLogger(__name__)

RUN_DIR = project_root() / "var"
"""Service databases and logs (`var/<service>.db`, `var/<service>.log`), as `make run` documents."""

KAFKA_DIR = RUN_DIR / "kafka"
"""The same data dir `make kafka-up` uses, so a broker it started is found and reused."""

KAFKA_PORT = 9092
STOPPED_STATES = frozenset({OrderState.REJECTED, OrderState.CANCELLED})
"""Where an order's story ends early; otherwise it ends when its last planned shipment has left
(nothing reports deliveries yet)."""

VISIBLE_ORDERS = 15
REFRESH_PER_SECOND = 4
TICK_SECONDS = 0.1
VETO_EVERY = 5
"""Every fifth approval request is vetoed by its first approver, to show that one "no" is enough
(the 2nd, 7th, 12th, ... request of a run, so a short run shows one too)."""

APPROVER_THINK_SECONDS = 2.0
"""How long an approver "reads" an order before deciding: long enough to see it waiting."""

DISPATCH_AFTER_SECONDS = 3.0
"""How long the demo's warehouse takes to pick, pack and load a planned shipment."""

HTTP_TIMEOUT_SECONDS = 5.0

STATUS_STYLES: dict[str, str] = {
    "submitted": "dim",
    OrderState.RECEIVED: "cyan",
    OrderState.AWAITING_APPROVAL: "yellow",
    OrderState.APPROVED: "blue",
    OrderState.FULFILLMENT_PLANNED: "green",
    OrderState.SHIPPED: "bold bright_green",
    OrderState.REJECTED: "red",
    OrderState.CANCELLED: "magenta",
}


# --------------------------------------------------------------------------- the shop


@dataclass(frozen=True)
class ShopScenario:
    """One kind of order the demo shop places, and what it is meant to show."""

    shows: str
    build: Callable[[str], OrderSubmitted]


SHOP_MIX: tuple[ShopScenario, ...] = (
    ShopScenario(
        "B2C parcel, standard speed",
        lambda oid: b2c_order(oid, [("SCREW-5X50", 2), ("GLOVE-L", 3)]),
    ),
    ShopScenario(
        "B2B acme under 5000 EUR, 30 % deposit now and the rest on NET30: no rule applies, "
        "approved at once, freight (once acme-buyer has spent 20000 EUR this month, the "
        "buyer-limit rule asks the manager)",
        lambda oid: b2b_order(
            oid, [("BOLT-M8-100", 40), ("SCREW-5X50", 10)], terms="DEPOSIT30_NET30"
        ),
    ),
    ShopScenario(
        "B2C parcel, express, paid in 3 monthly instalments (133.99 EUR: 44.67, then 44.66 "
        "twice; the first takes the cent left over)",
        lambda oid: b2c_order(
            oid, [("DRILL-18V", 1), ("GLOVE-L", 1)], speed="express", installments=3
        ),
    ),
    ShopScenario(
        "B2B acme at or over 5000 EUR (700 x 7.95 = 5565 EUR): the manager, then finance",
        lambda oid: b2b_order(oid, [("BOLT-M8-100", 700)]),
    ),
    ShopScenario(
        "B2C with an unknown SKU: rejected by catalog",
        lambda oid: b2c_order(oid, [("LASER-X9", 1), ("GLOVE-L", 1)]),
    ),
    ShopScenario(
        "B2B globex at or over 2000 EUR (250 x 9.10 = 2275 EUR): manager and finance in "
        "parallel, by two different people",
        lambda oid: b2b_order(
            oid, [("BOLT-M8-100", 250)], account_id=GLOBEX, buyer_id="globex-buyer"
        ),
    ),
    ShopScenario(
        "B2C with promo code WELCOME10 (10 % off from 50 EUR, once per customer) and the "
        "automatic audio-week promotion (15 % off electronics): 129.00 + 59.00 - 8.85 = "
        "179.15, minus 17.92 = 161.23 EUR",
        lambda oid: b2c_order(
            oid,
            [("DRILL-18V", 1), ("HEADSET-BT", 1)],
            account_id=f"cust-{oid}",
            promo_codes=["WELCOME10"],
        ),
    ),
    ShopScenario(
        "B2C with an unknown promo code SPRING24: rejected invalid_promo_code",
        lambda oid: b2c_order(oid, [("GLOVE-L", 2)], promo_codes=["SPRING24"]),
    ),
    ShopScenario(
        "B2C parcel, economy, from the regional warehouse (audio-week: 15 % off the headset)",
        lambda oid: b2c_order(oid, [("HEADSET-BT", 1), ("GLOVE-L", 2)], speed="economy"),
    ),
    ShopScenario(
        "B2C paying by invoice: rejected by pricing",
        lambda oid: b2c_order(oid, [("DRILL-18V", 1)], method="invoice"),
    ),
    ShopScenario(
        "B2B acme cement on NET60 (1000 x 5.25 = 5250 EUR): the manager, then finance "
        "(the long-terms rule asks finance too; the steps merge)",
        lambda oid: b2b_order(oid, [("CEMENT-25", 1000)], terms="NET60"),
    ),
    ShopScenario(
        "B2B globex gloves under 2000 EUR on DOM15 (due the 15th of next month): approved at "
        "once, contract tier price",
        lambda oid: b2b_order(
            oid, [("GLOVE-L", 120)], account_id=GLOBEX, buyer_id="globex-buyer", terms="DOM15"
        ),
    ),
    ShopScenario(
        f"B2B acme against its negotiated single-use quote {ACME_QUOTE} (5 drills at the "
        "quoted 89.00 EUR, not the contract's 104.00): the first since `make clean` takes "
        "the quote; later rounds, and later runs on the same var/, are rejected "
        "quote_already_used",
        lambda oid: b2b_order(oid, [("DRILL-18V", 5)], quote_id=ACME_QUOTE),
    ),
)


def demo_orders(run_tag: str) -> Iterator[OrderSubmitted]:
    """The shop's endless, deterministic stream of orders: `demo-<run>-0001`, `-0002`, ...

    The run tag keeps ids unique across runs on the same `var/`: a re-submitted
    order id is (rightly) treated as a duplicate and changes nothing.
    """
    for number, scenario in enumerate(itertools.cycle(SHOP_MIX), start=1):
        yield scenario.build(f"demo-{run_tag}-{number:04d}")


# --------------------------------------------------------------------------- the board


@dataclass
class TrackedOrder:
    """What the live table knows of one order: the shop's side plus its latest status."""

    order_id: str
    channel: str
    account_id: str
    lines: str
    units: int
    status: OrderState | None = None
    total: str = ""
    payment: str = ""
    detail: str = "sent to orders.submitted"
    planned: frozenset[str] = frozenset()
    """Ids of the shipments planned so far; replaced, never changed, so a snapshot may share it."""
    shipped: frozenset[str] = frozenset()
    units_planned: int = 0

    @property
    def state_name(self) -> str:
        return self.status.value if self.status is not None else "submitted"

    @property
    def finished(self) -> bool:
        """Stopped, or every shipment planned so far has left the warehouse.

        Units still backordered do not hold a finished order back: in a bounded
        run nothing may bring the stock they wait for.
        """
        if self.status in STOPPED_STATES:
            return True
        return self.status is OrderState.SHIPPED and self.planned <= self.shipped

    @property
    def backordered(self) -> int:
        """Units ordered that no planned shipment carries yet: they wait for stock."""
        return self.units - self.units_planned if self.planned else 0

    def record_shipments(self, status: OrderStatusChanged) -> None:
        """Count each shipment once: a fill's plan names only its new shipments."""
        for shipment in status.shipments or []:
            if shipment.shipment_id not in self.planned:
                self.planned |= {shipment.shipment_id}
                self.units_planned += sum(line.quantity for line in shipment.lines)
            if status.status is OrderState.SHIPPED:
                self.shipped |= {shipment.shipment_id}


def describe_lines(order: OrderSubmitted) -> str:
    first = order.lines[0]
    more = f" +{len(order.lines) - 1}" if len(order.lines) > 1 else ""
    return f"{first.quantity} x {first.sku}{more}"


def describe_shipment(shipment: Shipment) -> str:
    return (
        f"{shipment.mode.value} {shipment.carrier} {shipment.tracking_number} "
        f"from {shipment.warehouse_id} by {shipment.promised_date.isoformat()}"
    )


def describe_progress(order: TrackedOrder) -> str:
    """What is still to come for a planned order: more shipments, units waiting for stock."""
    notes = []
    if len(order.planned) > 1:
        notes.append(f"{len(order.shipped)}/{len(order.planned)} shipments dispatched")
    if order.backordered:
        notes.append(f"{order.backordered} units backordered")
    return f" ({', '.join(notes)})" if notes else ""


def describe_step(step: StepProgress) -> str:
    """`manager ✓` once satisfied, else `finance 0/1` (signatures of the quorum)."""
    if step.state == "satisfied":
        return f"{step.step_id} ✓"
    return f"{step.step_id} {len(step.signed_by)}/{step.quorum}"


def describe_steps(approval: ApprovalProgress) -> str:
    """The request's steps in policy order: `→` before a step that waits for an earlier one,
    `+` before one that runs alongside, e.g. `manager ✓ → finance 0/1`."""
    text, earlier = "", set[str]()
    for step in approval.steps:
        if text:
            text += " → " if earlier.intersection(step.after) else " + "
        text += describe_step(step)
        earlier.add(step.step_id)
    return text


def describe_approval(approval: ApprovalProgress) -> str:
    """Step progress, who signed, who may sign next."""
    done = ", ".join(approval.approved_by) or "nobody yet"
    if not approval.steps:  # an older service without steps: the plain tally
        return f"approvals {len(approval.approved_by)}/{approval.required_approvals} (ok: {done})"
    waiting = ", ".join(approval.eligible_approvers) or "nobody"
    return f"{describe_steps(approval)} (ok: {done}; next: {waiting})"


def describe_payment(plan: PaymentPlan) -> str:
    """The plan in a few words: '3x: 66.34 02 Dec, 66.33 02 Jan, …' or 'DEPOSIT30_NET30: …'."""
    amounts = ", ".join(
        f"{due.amount} {'on fulfillment' if due.due_on is None else f'{due.due_on:%d %b}'}"
        for due in plan.schedule
    )
    how = f"{plan.installments}x" if plan.installments else (plan.terms or plan.method)
    return f"{how}: {amounts}"


def describe_promotions(status: OrderStatusChanged) -> str:
    """'; promotions: audio-week -8.85, welcome10 -17.92 = 161.23 EUR', or nothing."""
    applied = [
        f"{note.promotion_id} -{note.discount}"
        for note in [n for line in status.lines or [] for n in line.promotions]
        + (status.totals.promotions if status.totals else [])
        if note.applied
    ]
    if not applied or status.totals is None:
        return ""
    return f"; promotions: {', '.join(applied)} = {status.totals.total} {status.totals.currency}"


def describe_status(status: OrderStatusChanged) -> str:
    """The one detail a person wants next to each status: why, who, or how it ships."""
    if status.reason is not None:
        return f"{status.reason.code.value}: {status.reason.message}"
    approval = status.approval
    if status.status is OrderState.AWAITING_APPROVAL and approval is not None:
        return describe_approval(approval)
    if status.status is OrderState.APPROVED:
        who = (
            "approved by " + ", ".join(approval.approved_by)
            if approval is not None and approval.approved_by
            else "no approval rule applies: approved at once"
        )
        return who + quoted_at(status) + describe_promotions(status)
    if status.status is OrderState.SHIPPED and status.shipments:
        return "left the warehouse: " + "; ".join(describe_shipment(s) for s in status.shipments)
    if status.shipments:
        return "; ".join(describe_shipment(s) for s in status.shipments)
    return f"by {status.reported_by}"


def quoted_at(status: OrderStatusChanged) -> str:
    """`; priced from quote:Q-ACME-0001 v1` when the order's lines came from a quote."""
    sources = sorted(
        {line.price_source for line in status.lines or [] if line.price_source.startswith("quote:")}
    )
    return f"; priced from {', '.join(sources)}" if sources else ""


class Board:
    """This run's orders and their latest status, shared by the shop, the watcher and the view.

    The watcher thread writes, the live view (its own refresh thread) reads; one
    lock keeps each update and each rendering consistent.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._orders: dict[str, TrackedOrder] = {}

    def submitted(self, order: OrderSubmitted) -> None:
        with self._lock:
            self._orders[order.order_id] = TrackedOrder(
                order.order_id,
                order.channel.value,
                order.account_id,
                describe_lines(order),
                units=sum(line.quantity for line in order.lines),
            )

    def apply(self, status: OrderStatusChanged) -> bool:
        """Record a status of one of our orders; False for anyone else's order."""
        with self._lock:
            tracked = self._orders.get(status.order_id)
            if tracked is None:
                return False
            tracked.status = status.status
            if status.totals is not None:
                tracked.total = f"{status.totals.total} {status.totals.currency}"
            if status.payment is not None:
                tracked.payment = describe_payment(status.payment)
            tracked.record_shipments(status)
            tracked.detail = describe_status(status)
            if status.shipments:
                tracked.detail += describe_progress(tracked)
            return True

    def note(self, order_id: str, detail: str) -> None:
        """Something the demo itself did or saw (e.g. a refused approver call)."""
        with self._lock:
            if order_id in self._orders:
                self._orders[order_id].detail = detail

    def snapshot(self) -> list[TrackedOrder]:
        with self._lock:
            return [TrackedOrder(**vars(o)) for o in self._orders.values()]

    def all_finished(self, expected: int) -> bool:
        """Whether `expected` orders were placed and each has reached a final state."""
        orders = self.snapshot()
        return len(orders) >= expected and all(o.finished for o in orders)


# --------------------------------------------------------------------------- the view


def status_text(name: str) -> Text:
    return Text(name, style=STATUS_STYLES.get(name, ""))


def orders_table(orders: list[TrackedOrder]) -> Table:
    table = Table(expand=True, show_edge=False, pad_edge=False)
    table.add_column("order", no_wrap=True, min_width=14)
    table.add_column("channel", no_wrap=True, overflow="crop")
    table.add_column("account", no_wrap=True)
    table.add_column("lines", no_wrap=True)
    table.add_column("total", justify="right", no_wrap=True)
    table.add_column("payment", no_wrap=True, overflow="ellipsis", ratio=1, max_width=36)
    table.add_column("status", no_wrap=True, min_width=len("fulfillment_planned"))
    table.add_column("detail", ratio=1, no_wrap=True, overflow="ellipsis", min_width=24)
    for order in orders[-VISIBLE_ORDERS:]:
        table.add_row(
            order.order_id,
            order.channel,
            order.account_id,
            order.lines,
            order.total,
            order.payment,
            status_text(order.state_name),
            order.detail,
        )
    return table


def status_counters(orders: list[TrackedOrder]) -> Text:
    counts = Counter(o.state_name for o in orders)
    text = Text(f"{len(orders)} orders   ")
    for name in STATUS_STYLES:
        text.append_text(status_text(f"{name} {counts.get(name, 0)}"))
        text.append("   ")
    return text


def render_board(board: Board, title: str) -> RenderableType:
    orders = board.snapshot()
    body = Group(orders_table(orders), Text(""), status_counters(orders))
    return Panel(body, title=title, subtitle="Ctrl-C stops everything", border_style="blue")


def shown_path(service: str) -> str:
    """A service's log, relative to where the demo runs if it can be: short enough to copy."""
    path = RUN_DIR / f"{service}.log"
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


def shown_cli() -> str:
    """How to call `tradelane` from where the demo runs: `.venv/bin/tradelane` from the repo."""
    script = Path(sys.executable).parent / "tradelane"
    if not script.exists():
        return "tradelane"
    with contextlib.suppress(ValueError):
        return str(script.relative_to(Path.cwd()))
    return str(script)


def where_things_are(bootstrap: str, broker_origin: str) -> RenderableType:
    """The addresses a newcomer needs next: health, metrics, the approvals API and inbox, logs."""
    services = Text.assemble(("Services", "bold"), "  (health and metrics, log file)\n")
    for name in SERVICES:
        base = f"http://127.0.0.1:{SERVICE_WEB_PORTS[name]}"
        services.append(f"  {name:<12} {base}/health  {base}/metrics  {shown_path(name)}\n")
    base = f"http://127.0.0.1:{SERVICE_WEB_PORTS['approvals']}"
    approvals = f"{base}/approvals"
    token = f"$({shown_cli()} approvals token acme-manager)"
    auth = f'-H "Authorization: Bearer {token}"'
    body = json.dumps({"approver_id": "acme-manager", "decision": "approve", "comment": "ok"})
    secret = (
        "  (tokens are signed with APPROVALS_TOKEN_SECRET: give the CLI the value the demo has)\n"
        if os.environ.get("APPROVALS_TOKEN_SECRET")
        else ""
    )
    api = Text.assemble(
        ("Approvals", "bold"),
        " (the demo's approvers use the same API; try it on an order in awaiting_approval)\n",
        f"  inbox page: {base}/inbox  (sign in with the output of "
        f"{shown_cli()} approvals token acme-manager)\n",
        secret,
        f"  curl -s {auth} {approvals}      # acme-manager's inbox\n",
        f"  curl -s -X POST {approvals}/<order_id>/decisions \\\n",
        f"       {auth} \\\n",
        f"       -H 'Content-Type: application/json' -d '{body}'\n",
        f"  curl -s {auth} {approvals}/<order_id>     # steps, who may sign, who did, the audit\n",
        "  policies, steps, delegation, timers: docs/approvals.md\n",
    )
    kafka = Text.assemble(("Kafka ", "bold"), f"{bootstrap} ({broker_origin})")
    return Group(kafka, Text(""), services, api, pricing_help(), warehouse_help())


def pricing_help() -> Text:
    """Where the demo's promotions, quote and credit line show (docs/pricing.md)."""
    base = f"http://127.0.0.1:{SERVICE_WEB_PORTS['pricing']}"
    return Text.assemble(
        ("Pricing", "bold"),
        " (promotions audio-week and code WELCOME10, ACME's quote Q-ACME-0001, payment plans)\n",
        f"  curl -s {base}/accounts/{ACME}/credit   # ACME's credit line: limit, exposure, "
        "open items\n",
    )


def warehouse_help() -> Text:
    """What the demo's warehouse does by itself, and the same by hand."""
    return Text.assemble(
        ("Warehouse", "bold"),
        f" (the demo's WMS dispatches each planned shipment {DISPATCH_AFTER_SECONDS:g}s later "
        "and restocks what left)\n",
        f"  {shown_cli()} catalog adjust BOLT-M8-100 dc-kassel -5 --reason breakage\n",
        f"  {shown_cli()} fulfillment dispatch <order_id> <shipment_id>   # what a WMS sends\n",
        "  stock, reservations, backorders: docs/inventory.md\n",
    )


# --------------------------------------------------------------------------- approvers


def post_decision(
    approvals_url: str, token: str, order_id: str, approver_id: str, decision: str, comment: str
) -> tuple[int, str]:
    """`POST /approvals/{order_id}/decisions` with the approver's bearer token, as their
    browser would; (status, body)."""
    body = json.dumps({"approver_id": approver_id, "decision": decision, "comment": comment})
    request = urllib.request.Request(
        f"{approvals_url}/approvals/{order_id}/decisions",
        data=body.encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_SECONDS) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")
    except (urllib.error.URLError, OSError) as error:
        return 0, str(error)


@dataclass(frozen=True)
class PlannedDecision:
    """One approver's call on one step of one order."""

    order_id: str
    step_id: str
    approver_id: str
    decision: str
    comment: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.order_id, self.step_id, self.approver_id)


def next_decisions(
    order_id: str, approval: ApprovalProgress, sent: set[tuple[str, str, str]], veto: bool
) -> list[PlannedDecision]:
    """Who should decide now, from one `awaiting_approval` status: for each open step, as many
    eligible members as its quorum still lacks, never one already asked for that step.

    A decision names no step: it counts towards the first open step (in policy order) its
    approver may sign. So a person is asked for a step only if no earlier open step would
    take their signature; they are asked for the later one once the earlier is satisfied.
    Those asked and not yet counted are subtracted from what a step still needs. A veto is
    one "no" by the first eligible approver of the first open step, and the last call on
    that order.
    """
    open_steps = [step for step in approval.steps if step.state == "open"]
    if veto:
        first = next((step for step in open_steps if step.eligible), None)
        if first is None or any(key[0] == order_id for key in sent):
            return []
        return [
            PlannedDecision(
                order_id, first.step_id, first.eligible[0], "reject", "over budget this quarter"
            )
        ]
    planned: list[PlannedDecision] = []
    taken_earlier: set[str] = set()
    for step in open_steps:
        signed = {sig.approver_id for sig in step.signed_by}
        asked = {p for oid, sid, p in sent if oid == order_id and sid == step.step_id}
        needed = step.quorum - len(step.signed_by) - len(asked - signed)
        for person in step.eligible:
            if needed <= 0:
                break
            if person in taken_earlier or person in asked:
                continue
            planned.append(PlannedDecision(order_id, step.step_id, person, "approve", "ok"))
            needed -= 1
        taken_earlier.update(step.eligible)
    return planned


class Approvers:
    """The accounts' decision makers: they sign each open step of every approval request.

    On every `awaiting_approval` status they look at the steps that are open and
    ask as many eligible members as each still needs; a sequential step's
    approvers are asked when the status shows it open, after the step before it
    is satisfied. What was asked is remembered per (order, step, approver), so a
    status seen again never causes a second call. Each approver "reads" the
    order for a moment, then posts with their own bearer token; calls run on a
    small pool so a slow one never holds up the status watcher.
    """

    def __init__(
        self, approvals_url: str, token_secret: str, board: Board, stopping: threading.Event
    ) -> None:
        self.approvals_url = approvals_url
        self.token_secret = token_secret
        self.board = board
        self.stopping = stopping
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="approver")
        self._sent: set[tuple[str, str, str]] = set()
        self._veto: dict[str, bool] = {}
        """Requests still open, and whether each is the one in VETO_EVERY that is vetoed."""
        self._requests = 0

    def consider(self, status: OrderStatusChanged) -> None:
        """Called by the status watcher (one thread), so its bookkeeping needs no lock."""
        approval = status.approval
        if status.status is not OrderState.AWAITING_APPROVAL or approval is None:
            if status.order_id in self._veto:  # the request ended: forget what was asked
                del self._veto[status.order_id]
                self._sent = {key for key in self._sent if key[0] != status.order_id}
            return
        if status.order_id not in self._veto:
            self._requests += 1
            self._veto[status.order_id] = self._requests % VETO_EVERY == 2
        for planned in next_decisions(
            status.order_id, approval, self._sent, self._veto[status.order_id]
        ):
            self._sent.add(planned.key)
            self._pool.submit(self._decide, planned)

    def _decide(self, planned: PlannedDecision) -> None:
        if self.stopping.wait(APPROVER_THINK_SECONDS):
            return
        token = issue_token(self.token_secret, planned.approver_id)  # fresh: never expires here
        code, body = post_decision(
            self.approvals_url,
            token,
            planned.order_id,
            planned.approver_id,
            planned.decision,
            planned.comment,
        )
        if code != 202:
            self.board.note(
                planned.order_id,
                f"{planned.approver_id}'s {planned.decision} on step {planned.step_id} refused: "
                f"HTTP {code} {body}",
            )

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


# --------------------------------------------------------------------------- the warehouse


@dataclass(frozen=True)
class PlannedShipment:
    """A shipment the warehouse has been asked to send, and when it will leave the dock."""

    order_id: str
    shipment: Shipment
    leaves_at: float
    """On the `time.monotonic()` clock."""


class Warehouse:
    """The WMS: each planned shipment leaves the dock a little later, and what left is restocked.

    On every `fulfillment_planned` status it queues the shipments it has not seen
    yet (a backorder fill's plan names only its new shipment), and
    DISPATCH_AFTER_SECONDS later confirms each one on `fulfillment.dispatches`:
    fulfillment reports the order `shipped`, catalog commits the stock. It then
    books a goods receipt of the same units as a stock adjustment, so a long demo
    never runs dry, and stock goes first to lines waiting on a backorder there.
    The status watcher queues, the demo's main loop dispatches; a lock between.
    """

    def __init__(self, publisher: EventPublisher) -> None:
        self.publisher = publisher
        self._lock = threading.Lock()
        self._queue: list[PlannedShipment] = []
        self._seen: set[str] = set()
        self.dispatched = 0

    def consider(self, status: OrderStatusChanged) -> None:
        """Queue each newly planned shipment once, however often its plan is seen."""
        if status.status is not OrderState.FULFILLMENT_PLANNED:
            return
        leaves_at = time.monotonic() + DISPATCH_AFTER_SECONDS
        with self._lock:
            for shipment in status.shipments or []:
                if shipment.shipment_id not in self._seen:
                    self._seen.add(shipment.shipment_id)
                    self._queue.append(PlannedShipment(status.order_id, shipment, leaves_at))

    def tick(self) -> None:
        """Dispatch what is due by now."""
        self._dispatch(self._take(until=time.monotonic()))

    def dispatch_everything(self) -> int:
        """When the demo stops: what was planned leaves now, so no stock stays held for a
        shipment nobody will dispatch (the next run's warehouse does not know it)."""
        due = self._take(until=float("inf"))
        self._dispatch(due)
        return len(due)

    def _take(self, until: float) -> list[PlannedShipment]:
        with self._lock:
            due = [planned for planned in self._queue if planned.leaves_at <= until]
            self._queue = [planned for planned in self._queue if planned.leaves_at > until]
        return due

    def _dispatch(self, due: list[PlannedShipment]) -> None:
        for planned in due:
            dispatch = ShipmentDispatched.new(
                order_id=planned.order_id, shipment_id=planned.shipment.shipment_id
            )
            self.publisher.publish(DISPATCHES, dispatch)
            self._restock(planned.shipment)
            self.dispatched += 1
        if due:
            self.publisher.flush()

    def _restock(self, shipment: Shipment) -> None:
        """A goods receipt of what just left, as relative adjustments: they add up with the
        units catalog deducts when it commits the shipment, whichever comes first."""
        for line in shipment.lines:
            if line.quantity > 0:
                receipt = StockAdjustment.new(
                    sku=line.sku,
                    warehouse_id=shipment.warehouse_id,
                    delta=line.quantity,
                    reason=f"demo goods receipt: replaces shipment {shipment.shipment_id}",
                )
                self.publisher.publish(STOCK_ADJUSTMENTS, receipt)


# --------------------------------------------------------------------------- status watcher


class StatusWatcher:
    """Reads `orders.status` in a background thread, from this run's start on, like a shop does.

    No consumer group (nothing to commit, nothing to rebalance): the watcher
    assigns every partition and starts at the end, resolved before the first
    order is sent, so it sees exactly this run's transitions.
    """

    def __init__(
        self,
        kafka: KafkaConnection | str,
        topic: str,
        on_status: Callable[[OrderStatusChanged], None],
    ) -> None:
        self.on_status = on_status
        self._stop = threading.Event()
        self._consumer = KafkaConsumer(
            **kafka_connection(kafka).kafka_python(), group_id=None, enable_auto_commit=False
        )
        partitions = [TopicPartition(topic, p) for p in self._consumer.partitions_for_topic(topic)]
        self._consumer.assign(partitions)
        self._consumer.seek_to_end(*partitions)
        for partition in partitions:  # seek_to_end is lazy: resolve it now, before we publish
            self._consumer.position(partition)
        self._thread = threading.Thread(target=self._run, name="status-watcher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for records in self._consumer.poll(timeout_ms=200).values():
                for record in records:
                    self._handle(record.value)

    def _handle(self, value: bytes | None) -> None:
        """One status event; a bad one is logged and skipped, so the view keeps going."""
        try:
            status = OrderStatusChanged.model_validate_json(value or b"")
            self.on_status(status)
        except ValidationError as error:
            log.warning("unreadable orders.status event skipped: %s", error)
        except Exception:
            log.exception("could not handle an orders.status event")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._consumer.close()


# --------------------------------------------------------------------------- broker and fleet


def external_bootstrap() -> str | None:
    """`KAFKA_BOOTSTRAP_SERVERS` if it names a cluster; empty counts as unset (as in `make`).

    An empty variable is removed from the environment, so that settings fall back
    to their default instead of failing validation on "".
    """
    value = os.environ.get(BOOTSTRAP_ENV, "").strip()
    if not value:
        os.environ.pop(BOOTSTRAP_ENV, None)
    return value or None


def provide_kafka(
    stack: contextlib.ExitStack, console: Console, external: str | None
) -> tuple[str, str]:
    """The broker to use and where it comes from; one we start is stopped when `stack` closes.

    Precedence: an external cluster, then a broker `make kafka-up` left running in
    `var/kafka`, then a fresh broker on 9092 that lives only as long as the demo.
    """
    if external is not None:
        return external, f"{BOOTSTRAP_ENV}, not started by the demo"
    kafka = LocalKafka(KAFKA_DIR, port=KAFKA_PORT)
    running = kafka.running_bootstrap()
    if running is not None:
        return running, f"from `make kafka-up` in {KAFKA_DIR}, left running"
    stack.callback(stop_step, console, "Kafka", kafka.stop)  # registered first: stopped last
    with console.status(f"starting Kafka on 127.0.0.1:{KAFKA_PORT} (data in {KAFKA_DIR}) ..."):
        bootstrap = kafka.start()
    return bootstrap, "started by the demo, stops with it"


def start_fleet(
    stack: contextlib.ExitStack, console: Console, settings: Settings, kafka: KafkaConnection
) -> Fleet:
    """The four services as processes; registered for stopping before they start, so an
    interrupted start-up still stops the ones already running."""
    fleet = Fleet(
        kafka.bootstrap,
        RUN_DIR,
        kafka=kafka,
        topic_prefix=settings.topic_prefix,
        partitions=settings.topic_partitions,
        # the secret the demo's approvers sign their tokens with, whether set or the default
        extra_env={"APPROVALS_TOKEN_SECRET": settings.token_secret()},
    )
    stack.callback(stop_step, console, "services", fleet.stop)
    with console.status("starting catalog, pricing, approvals, fulfillment ..."):
        fleet.start()
    with console.status("services reading the reference data ..."):
        fleet.wait_caught_up(REFERENCE_TOPICS)
    return fleet


def stop_step(console: Console, what: str, stop: Callable[[], object]) -> None:
    with console.status(f"stopping {what} ..."):
        stop()
    console.print(f"[dim]{what} stopped[/dim]")


def check_fleet(fleet: Fleet) -> None:
    """A service that died mid-demo ends the demo with its log tail, not a frozen table."""
    for service in fleet.running.values():
        if service.process.poll() is not None:
            raise FleetError(
                f"{service.name} exited with code {service.process.returncode}:\n"
                f"{service.log_tail()}"
            )


def patient_shutdown(console: Console, stack: contextlib.ExitStack) -> Callable[[], None]:
    """Returns the switch to flip when cleanup begins: from then on a second Ctrl-C is
    acknowledged but does not cut the cleanup short (which would leave a JVM or a
    service behind). The previous SIGINT handler comes back once `stack` is unwound."""
    stack.callback(signal.signal, signal.SIGINT, signal.getsignal(signal.SIGINT))

    def acknowledge(signum: int, frame: FrameType | None) -> None:
        console.print("[yellow]still stopping, one moment ...[/yellow]")

    def begin_cleanup() -> None:
        signal.signal(signal.SIGINT, acknowledge)

    return begin_cleanup


# --------------------------------------------------------------------------- the demo


class Shop:
    """Places the next order every `interval` seconds, and tells the board about it."""

    def __init__(
        self, publisher: EventPublisher, board: Board, interval: float, limit: int
    ) -> None:
        self.publisher = publisher
        self.board = board
        self.interval = interval
        self.limit = limit
        self.run_tag = uuid.uuid4().hex[:4]
        self.placed = 0
        self._orders = demo_orders(self.run_tag)
        self._next_at = time.monotonic()

    def tick(self) -> None:
        if (self.limit and self.placed >= self.limit) or time.monotonic() < self._next_at:
            return
        order = next(self._orders)
        self.board.submitted(order)  # before publishing: its first status may come back fast
        self.publisher.publish(ORDERS_SUBMITTED, order)
        self.publisher.flush()
        self.placed += 1
        self._next_at += self.interval


def run_shop(
    console: Console, shop: Shop, warehouse: Warehouse, board: Board, fleet: Fleet, title: str
) -> None:
    """The live part: place orders, dispatch shipments, show the board, until Ctrl-C or the
    smoke test's count."""
    with Live(
        console=console,
        get_renderable=lambda: render_board(board, title),
        refresh_per_second=REFRESH_PER_SECOND,
    ):
        while not (shop.limit and board.all_finished(shop.limit)):
            shop.tick()
            warehouse.tick()
            check_fleet(fleet)
            time.sleep(TICK_SECONDS)
    if not console.is_terminal:
        console.line()  # a piped Live leaves its last frame without a line end


def summary(board: Board) -> str:
    counts = Counter(o.state_name for o in board.snapshot())
    return ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "no orders"


def run_system(console: Console, stack: contextlib.ExitStack, orders: int, interval: float) -> None:
    """Broker, topics, data, services, then the shop, its approvers and the warehouse; `stack`
    undoes it all."""
    external = external_bootstrap()  # first: it clears an empty variable settings would refuse
    settings = load_settings()
    bootstrap, origin = provide_kafka(stack, console, external)
    # An external cluster is reached with the login the settings give (the services read
    # the same variables); a broker the demo runs itself is a PLAINTEXT one on loopback.
    kafka = (
        replace(KafkaConnection.from_settings(settings), bootstrap=bootstrap)
        if external is not None
        else KafkaConnection(bootstrap)
    )
    names = TopicNames(settings.topic_prefix)
    create_topics(
        kafka,
        names,
        settings.topic_partitions,
        replication_factor=settings.topic_replication_factor,
        min_insync_replicas=settings.topic_min_insync_replicas,
    )
    publisher = stack.enter_context(EventPublisher(kafka, names))
    publish_reference_data(publisher)  # its stock levels reset on hand: a fresh warehouse
    fleet = start_fleet(stack, console, settings, kafka)
    console.print(where_things_are(bootstrap, origin))

    board, stopping = Board(), threading.Event()
    approvers = Approvers(
        fleet.running["approvals"].url(""), settings.token_secret(), board, stopping
    )
    stack.callback(approvers.close)
    stack.callback(stopping.set)  # runs before close(): approvers stop thinking at once

    warehouse = Warehouse(publisher)

    def on_status(status: OrderStatusChanged) -> None:
        if not board.apply(status):
            return
        approvers.consider(status)
        warehouse.consider(status)

    watcher = StatusWatcher(kafka, names.of(ORDERS_STATUS), on_status)
    stack.callback(watcher.close)
    shop = Shop(publisher, board, interval, orders)
    title = f"Tradelane demo shop: run {shop.run_tag}, an order every {interval:g}s"
    try:
        run_shop(console, shop, warehouse, board, fleet, title)
    except KeyboardInterrupt:
        console.print("[yellow]Ctrl-C: stopping the demo[/yellow]")
    if left := warehouse.dispatch_everything():
        console.print(
            f"[dim]warehouse: {left} planned shipment(s) dispatched before stopping[/dim]"
        )
    console.print(
        f"[bold]{shop.placed} orders placed, {warehouse.dispatched} shipments dispatched:[/bold] "
        f"{summary(board)}"
    )


def run_demo(orders: int = 0, interval: float = 1.5) -> int:
    """Run everything until Ctrl-C (or, with `orders`, until that many orders have ended).

    Every process the demo starts is stopped on the way out, whatever the way out
    is: the end of a smoke run, Ctrl-C, or an error.
    """
    console = Console()
    logging.basicConfig(
        level=logging.WARNING, handlers=[RichHandler(console=console, show_path=False)]
    )
    logging.getLogger("kafka").setLevel(logging.CRITICAL)  # reconnect chatter at shutdown
    try:
        with contextlib.ExitStack() as stack:
            begin_cleanup = patient_shutdown(console, stack)
            try:
                run_system(console, stack, orders, max(interval, 0.05))
            except KeyboardInterrupt:
                console.print("[yellow]Ctrl-C: stopping the demo[/yellow]")
            finally:
                begin_cleanup()
    except (BrokerError, FleetError, TopicCreationError, TimeoutError, KafkaError) as error:
        console.print(f"[red]demo failed:[/red] {error}")
        if isinstance(error, FleetError):
            console.print(f"[dim]service logs: {RUN_DIR}/<service>.log[/dim]")
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tools.demo [--orders N] [--interval SECONDS]`` (``make run``)."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.demo",
        description="Run Kafka, the services and a demo shop (`make run`); Ctrl-C stops all.",
    )
    parser.add_argument(
        "--orders", type=int, default=0, help="stop after N orders (0: until Ctrl-C)"
    )
    parser.add_argument("--interval", type=float, default=1.5, help="seconds between demo orders")
    args = parser.parse_args(argv)
    return run_demo(orders=args.orders, interval=args.interval)


if __name__ == "__main__":
    sys.exit(main())
