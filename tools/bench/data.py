"""The benchmark's reference data: the demo catalog and accounts, sized for thousands of orders.

The demo's data set (`tools.seed`) is built for a handful of orders: a few
units of stock per warehouse and two business accounts. A benchmark drawing
thousands of orders from it would measure backorders and a two-key hot spot
instead of the order flow, so on top of it every warehouse holds plenty of
every product, and the business orders spread over copies of the demo's
Globex account (same price list, members and approval policy).
"""

from __future__ import annotations

import uuid

from cli.publisher import EventPublisher
from shared.contract import StockLevel
from shared.topics import ACCOUNTS, APPROVAL_POLICIES, STOCK
from tools.seed import (
    DEMO_PRODUCTS,
    GLOBEX,
    accounts,
    approval_policies,
    publish_reference_data,
)

PLENTY = 10_000_000
"""Units on hand per product and warehouse: no benchmark run can exhaust them."""


def publish_bench_data(publisher: EventPublisher, business_accounts: list[str]) -> None:
    """The demo data set, then plenty of stock and one Globex copy per business account."""
    publish_reference_data(publisher)
    for product in DEMO_PRODUCTS:
        for site, _ in product.stock:
            publisher.publish(
                STOCK, StockLevel.new(sku=product.sku, warehouse_id=site, on_hand=PLENTY)
            )
    globex = next(a for a in accounts() if a.account_id == GLOBEX)
    policy = next(p for p in approval_policies() if p.account_id == GLOBEX)
    for account_id in business_accounts:
        fresh = {"account_id": account_id, "event_id": uuid.uuid4()}
        publisher.publish(ACCOUNTS, globex.model_copy(update=fresh))
        publisher.publish(
            APPROVAL_POLICIES, policy.model_copy(update={**fresh, "event_id": uuid.uuid4()})
        )
    publisher.flush()
