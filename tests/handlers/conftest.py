"""Fixtures for handler tests: a service's handlers on a temp SQLite file, no broker."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import MetaData, select

from services.pricing import store as pricing_store
from services.pricing.app import NAME as PRICING
from services.pricing.handlers import HANDLERS as PRICING_HANDLERS
from services.pricing.terms import payment_plan
from shared.consume import Handler, OrderRefused, publish_every_refusal
from shared.contract import (
    ApprovalMode,
    DeadLetter,
    Event,
    Order,
    OrderApproved,
    OrderPriced,
    OrderState,
    OrderStatusChanged,
    OrderSubmitted,
    OrderValidated,
    PricedLine,
    Quote,
    ReasonCode,
    ReservedLine,
    Totals,
)
from shared.topics import ACCOUNTS, ORDERS_PRICED, ORDERS_VALIDATED, PRICE_LISTS, TopicSpec
from tests.support.bench import ServiceBench
from tools.seed import ACME, DEMO_PRODUCTS, accounts, price_lists, products

WEIGHTS = {p.sku: p.unit_weight_kg for p in products()}
CATEGORIES = {p.sku: p.category for p in products()}
LIST_PRICES = {p.sku: Decimal(p.list_price) for p in DEMO_PRODUCTS}

E = TypeVar("E", bound=Event)
PRICED_ON = date(2026, 11, 30)
"""The day `priced` plans payments from."""


@asynccontextmanager
async def on_sqlite(
    directory: Path,
    name: str,
    metadata: MetaData,
    handlers: Mapping[TopicSpec, Handler[Any]],
    order_refused: OrderRefused = publish_every_refusal,
) -> AsyncIterator[ServiceBench]:
    """A service's handlers on a fresh SQLite file in `directory`, disposed of afterwards.

    `order_refused` is the service's say on rejecting a dead-lettered order, as
    it gives it to `service.refuse_orders_with`.
    """
    url = f"sqlite+aiosqlite:///{directory / f'{name}.db'}"
    bench = await ServiceBench(name, metadata, handlers, url, order_refused).start()
    try:
        yield bench
    finally:
        await bench.dispose()


@asynccontextmanager
async def pricing_on_sqlite(directory: Path) -> AsyncIterator[ServiceBench]:
    """Pricing's handlers on a fresh SQLite file, knowing the demo accounts and price lists."""
    async with on_sqlite(
        directory, PRICING, pricing_store.Base.metadata, PRICING_HANDLERS
    ) as bench:
        await bench.deliver_all(ACCOUNTS, accounts())
        await bench.deliver_all(PRICE_LISTS, price_lists())
        yield bench


async def start_pricing(url: str) -> ServiceBench:
    """Pricing's handlers on the database at `url` (dispose of it afterwards), knowing the demo
    price lists: delivered once per database, as hypothesis examples may share one."""
    bench = await ServiceBench(PRICING, pricing_store.Base.metadata, PRICING_HANDLERS, url).start()
    async with bench.db.sessions() as session:
        known = await session.scalar(select(pricing_store.PriceListRow.price_list_id).limit(1))
    if known is None:
        await bench.deliver_all(PRICE_LISTS, price_lists())
    return bench


async def price(bench: ServiceBench, order: OrderSubmitted) -> OrderPriced | None:
    """Deliver the order to pricing as catalog validated it: its priced event, or None if
    pricing rejected it."""
    await bench.deliver(ORDERS_VALIDATED, validated(order))
    found = await bench.published(ORDERS_PRICED, OrderPriced)
    return next((p for p in found if p.order.order_id == order.order_id), None)


def quote(**changes: Any) -> Quote:
    """ACME's single-use quote `q-1` (v1, valid for 30 days): up to 20 drills at 89.00 EUR and
    500 boxes of bolts at 7.40 EUR, with `changes`."""
    now = datetime.now(UTC)
    fields: dict[str, Any] = {
        "quote_id": "q-1",
        "account_id": ACME,
        "version": 1,
        "currency": "EUR",
        "lines": [
            {"sku": "DRILL-18V", "quantity": 20, "unit_price": "89.00"},
            {"sku": "BOLT-M8-100", "quantity": 500, "unit_price": "7.40"},
        ],
        "issued_at": now - timedelta(days=1),
        "valid_until": now + timedelta(days=30),
        "use": "single",
        **changes,
    }
    return Quote.new(**fields)


def reserved(
    order: OrderSubmitted,
    warehouse_id: str = "wh-central",
    backordered: Mapping[str, int] | None = None,
) -> list[ReservedLine]:
    """Catalog's lines for `order`: every line held in `warehouse_id`, `backordered` by SKU."""
    return [
        ReservedLine(
            sku=line.sku,
            quantity=line.quantity,
            warehouse_id=warehouse_id,
            category=CATEGORIES.get(line.sku, "misc"),
            unit_weight_kg=WEIGHTS.get(line.sku, Decimal("1")),
            line_no=number,
            backordered=(backordered or {}).get(line.sku, 0),
        )
        for number, line in enumerate(order.lines, start=1)
    ]


def validated(order: OrderSubmitted, warehouse_id: str = "wh-central") -> OrderValidated:
    """What catalog hands on for `order`: every line held in `warehouse_id`."""
    return OrderValidated.new(
        order=order.order(), lines=reserved(order, warehouse_id), submitted_at=order.occurred_at
    )


def priced(
    order: OrderSubmitted,
    warehouse_id: str = "dc-kassel",
    backordered: Mapping[str, int] | None = None,
    *,
    credit_limit_override: bool = False,
) -> OrderPriced:
    """What pricing hands on for `order`: held in `warehouse_id`, every line at its list price
    (e.g. 400 x BOLT-M8-100 at 12.90 make 5160.00 EUR), its payment planned on `PRICED_ON`."""
    lines = [
        PricedLine(
            **line.model_dump(),
            unit_price=LIST_PRICES.get(line.sku, Decimal("1.00")),
            currency=order.currency,
            line_total=LIST_PRICES.get(line.sku, Decimal("1.00")) * line.quantity,
            price_source=f"list:list-{order.currency}",
        )
        for line in reserved(order, warehouse_id, backordered)
    ]
    total = sum((line.line_total for line in lines), Decimal(0))
    return OrderPriced.new(
        order=order.order(),
        lines=lines,
        totals=Totals(currency=order.currency, subtotal=total, total=total),
        payment=payment_plan(order.order(), total, PRICED_ON),
        credit_limit_override=credit_limit_override,
        submitted_at=order.occurred_at,
    )


def approved(
    order: OrderSubmitted,
    warehouse_id: str = "dc-kassel",
    backordered: Mapping[str, int] | None = None,
    occurred_at: datetime | None = None,
) -> OrderApproved:
    """What approvals hands on for `order`: held in `warehouse_id`, at list prices, approved at
    once (at `occurred_at`, or now)."""
    at_list_prices = priced(order, warehouse_id, backordered)
    envelope: dict[str, Any] = {} if occurred_at is None else {"occurred_at": occurred_at}
    return OrderApproved.new(
        order=at_list_prices.order,
        lines=at_list_prices.lines,
        totals=at_list_prices.totals,
        payment=at_list_prices.payment,
        approval_mode=ApprovalMode.AUTOMATIC,
        submitted_at=order.occurred_at,
        **envelope,
    )


async def deliver_invalid(
    bench: ServiceBench, spec: TopicSpec, order_id: str, account_id: str = ACME
) -> DeadLetter:
    """Deliver a message of an order topic that names an order but is no valid event.

    Checks the service rejected that order `invalid_event` (once, for its
    account) and returns the message's one dead letter.
    """
    body = {"order": {"order_id": order_id, "account_id": account_id}}
    await bench.deliver(spec, json.dumps(body).encode())
    [rejected] = await bench.statuses(order_id)
    assert rejected.status is OrderState.REJECTED and rejected.account_id == account_id
    assert rejected.reason is not None and rejected.reason.code is ReasonCode.INVALID_EVENT
    [letter] = await bench.dead_letters(spec)
    return letter


def resent(event: E, **changes: Any) -> E:
    """`event` sent again under a new event id (a retry, not a redelivery), with `changes`."""
    return event.model_copy(update={"event_id": uuid.uuid4(), **changes})


def status_from(
    service: str, order: Order, state: OrderState, **details: Any
) -> OrderStatusChanged:
    """What `service` reports on `orders.status` about `order`: a reason, shipments, …"""
    return OrderStatusChanged.new(
        order_id=order.order_id,
        account_id=order.account_id,
        channel=order.channel,
        status=state,
        reported_by=service,
        **details,
    )


async def price_at_once(
    first: ServiceBench, second: ServiceBench, one: OrderSubmitted, two: OrderSubmitted
) -> tuple[list[OrderPriced], list[OrderStatusChanged]]:
    """Two pricing workers on one database price an order each, at the same moment: what was
    priced, and the statuses of both orders (a rejection is the loser's)."""
    await asyncio.gather(
        first.deliver(ORDERS_VALIDATED, validated(one)),
        second.deliver(ORDERS_VALIDATED, validated(two)),
    )
    priced = await first.published(ORDERS_PRICED, OrderPriced)
    statuses = [s for order in (one, two) for s in await first.statuses(order.order_id)]
    return priced, statuses
