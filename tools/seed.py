"""The demo data set: what `python -m tools.seed` publishes and what the demo shop orders from.

Three warehouses (a central DC and two regional sites), a small hardware
catalog, a B2C customer and two B2B accounts with members, roles, contract
price lists, payment terms and approval policies. It goes out on the
reference-data topics exactly as an ERP/PIM/CRM would publish it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from cli.publisher import EventPublisher
from shared.contract import (
    Account,
    AccountQuantityRule,
    ApprovalPolicy,
    Channel,
    CreditPolicy,
    CreditTerms,
    Member,
    OrderSubmitted,
    PriceEntry,
    PriceList,
    PriceTier,
    Product,
    Promotion,
    PromotionKind,
    PromotionScope,
    QuantityRule,
    Quote,
    QuoteLine,
    Role,
    StockLevel,
    Warehouse,
    WarehouseKind,
)
from shared.settings import load_settings
from shared.topics import (
    ACCOUNTS,
    APPROVAL_POLICIES,
    PRICE_LISTS,
    PRODUCTS,
    PROMOTIONS,
    QUOTES,
    STOCK,
    WAREHOUSES,
)

B2C_CUSTOMER = "cust-anna"
ACME = "acme-gmbh"
GLOBEX = "globex-ag"


def warehouses() -> list[Warehouse]:
    return [
        Warehouse.new(
            warehouse_id="dc-kassel",
            name="Central DC Kassel",
            kind=WarehouseKind.CENTRAL_DC,
            country="DE",
            postal_code="34117",
        ),
        Warehouse.new(
            warehouse_id="wh-berlin",
            name="Berlin city warehouse",
            kind=WarehouseKind.REGIONAL,
            country="DE",
            postal_code="10115",
        ),
        Warehouse.new(
            warehouse_id="wh-vienna",
            name="Vienna city warehouse",
            kind=WarehouseKind.REGIONAL,
            country="AT",
            postal_code="1010",
        ),
    ]


@dataclass(frozen=True)
class DemoProduct:
    sku: str
    name: str
    category: str
    weight_kg: str
    list_price: str
    channels: tuple[Channel, ...] = (Channel.B2B, Channel.B2C)
    active: bool = True
    quantity_rule: QuantityRule | None = None
    stock: tuple[tuple[str, int], ...] = (
        ("dc-kassel", 5000),
        ("wh-berlin", 200),
        ("wh-vienna", 100),
    )


DEMO_PRODUCTS: tuple[DemoProduct, ...] = (
    DemoProduct(
        "BOLT-M8-100",
        "Hex bolt M8x100, zinc plated, box of 100",
        "fasteners/bolts",
        "1.200",
        "12.90",
    ),
    DemoProduct("SCREW-5X50", "Wood screw 5x50, box of 200", "fasteners/screws", "0.900", "8.49"),
    DemoProduct("DRILL-18V", "Cordless drill 18 V, 2 batteries", "tools/power", "1.800", "129.00"),
    DemoProduct("GLOVE-L", "Work gloves, size L, pair", "safety/gloves", "0.100", "4.99"),
    DemoProduct(
        "CEMENT-25",
        "Portland cement, 25 kg bag",
        "building/cement",
        "25.000",
        "7.80",
        channels=(Channel.B2B,),
        quantity_rule=QuantityRule(min_quantity=40, increment=40),  # by the pallet of 40 bags
        stock=(("dc-kassel", 20000),),
    ),
    DemoProduct(
        "HEADSET-BT",
        "Bluetooth work headset",
        "electronics/audio",
        "0.300",
        "59.00",
        channels=(Channel.B2C,),
        stock=(("wh-berlin", 50), ("wh-vienna", 30)),
    ),
    DemoProduct(
        "SAW-LEGACY",
        "Hand saw (discontinued)",
        "tools/hand",
        "0.700",
        "19.90",
        active=False,
        stock=(("dc-kassel", 10),),
    ),
)


def products() -> list[Product]:
    return [
        Product.new(
            sku=p.sku,
            name=p.name,
            category=p.category,
            active=p.active,
            channels=list(p.channels),
            unit_weight_kg=Decimal(p.weight_kg),
            quantity_rule=p.quantity_rule,
        )
        for p in DEMO_PRODUCTS
    ]


def stock_levels() -> list[StockLevel]:
    return [
        StockLevel.new(sku=p.sku, warehouse_id=site, on_hand=units)
        for p in DEMO_PRODUCTS
        for site, units in p.stock
    ]


def _tiers(*pairs: tuple[int, str]) -> list[PriceTier]:
    return [PriceTier(min_quantity=q, unit_price=Decimal(price)) for q, price in pairs]


def price_lists() -> list[PriceList]:
    list_prices = [PriceEntry(sku=p.sku, tiers=_tiers((1, p.list_price))) for p in DEMO_PRODUCTS]
    return [
        PriceList.new(price_list_id="list-EUR", currency="EUR", prices=list_prices),
        PriceList.new(
            price_list_id="contract-acme-2026",
            currency="EUR",
            prices=[
                PriceEntry(
                    sku="BOLT-M8-100", tiers=_tiers((1, "9.80"), (100, "8.90"), (500, "7.95"))
                ),
                PriceEntry(sku="SCREW-5X50", tiers=_tiers((1, "6.20"), (200, "5.60"))),
                PriceEntry(sku="DRILL-18V", tiers=_tiers((1, "104.00"), (10, "97.50"))),
                PriceEntry(sku="CEMENT-25", tiers=_tiers((1, "5.90"), (400, "5.25"))),
            ],
        ),
        PriceList.new(
            price_list_id="contract-globex-2026",
            currency="EUR",
            prices=[
                PriceEntry(sku="BOLT-M8-100", tiers=_tiers((1, "10.20"), (250, "9.10"))),
                PriceEntry(sku="GLOVE-L", tiers=_tiers((1, "3.60"), (100, "3.10"))),
                PriceEntry(sku="CEMENT-25", tiers=_tiers((1, "6.10"))),
            ],
        ),
    ]


def accounts() -> list[Account]:
    return [
        Account.new(
            account_id=B2C_CUSTOMER,
            name="Anna Schmidt",
            channel=Channel.B2C,
            members=[Member(member_id=B2C_CUSTOMER, name="Anna Schmidt", roles=[Role.BUYER])],
        ),
        Account.new(
            account_id=ACME,
            name="ACME Bau GmbH",
            channel=Channel.B2B,
            price_list_id="contract-acme-2026",
            payment_terms=["PREPAY", "NET30", "NET60", "DEPOSIT30_NET30"],
            default_payment_terms="NET30",
            approval_threshold=Decimal("5000.00"),
            # A credit line big enough for every demo and test order: GET /accounts/acme-gmbh/credit
            # on pricing shows it fill up; over it, finance would have to approve.
            credit=CreditTerms(limit=Decimal("250000.00"), policy=CreditPolicy.FINANCE_APPROVAL),
            allows_backorders=True,
            quantity_rules=[AccountQuantityRule(sku="CEMENT-25", min_quantity=200)],
            members=[
                Member(member_id="acme-buyer", name="Ben Buyer", roles=[Role.BUYER]),
                Member(member_id="acme-manager", name="Maria Manager", roles=[Role.MANAGER]),
                Member(member_id="acme-finance", name="Felix Finance", roles=[Role.FINANCE]),
                Member(
                    member_id="acme-director",
                    name="Dora Director",
                    roles=[Role.DIRECTOR, Role.BUYER],
                ),
            ],
        ),
        Account.new(
            account_id=GLOBEX,
            name="Globex Industrie AG",
            channel=Channel.B2B,
            price_list_id="contract-globex-2026",
            payment_terms=["NET30", "DOM15"],
            approval_threshold=Decimal("2000.00"),
            assortment_categories=["fasteners", "safety"],
            quantity_rules=[AccountQuantityRule(sku="GLOVE-L", min_quantity=20, increment=10)],
            members=[
                Member(member_id="globex-buyer", name="Gina Buyer", roles=[Role.BUYER]),
                Member(
                    member_id="globex-boss", name="Gustav Boss", roles=[Role.MANAGER, Role.DIRECTOR]
                ),
                Member(member_id="globex-cfo", name="Greta CFO", roles=[Role.FINANCE]),
            ],
        ),
    ]


def approval_policies() -> list[ApprovalPolicy]:
    """ACME: a manager→finance chain over 5000 EUR, and more for power tools, long terms and
    buyers over their monthly limit. Globex: manager and finance in parallel over 2000 EUR,
    by two different people, and the director for a plant over its budget."""
    return [
        ApprovalPolicy.new(
            account_id=ACME,
            version=1,
            expires_after="P3D",
            remind_before="P1D",
            spending_limits=[
                {"scope": "buyer", "amount": "20000", "currency": "EUR", "period": "monthly"}
            ],
            rules=[
                {
                    "rule_id": "large-order",
                    "version": 1,
                    "description": "Orders of 5000 EUR and more: the manager, then finance.",
                    "when": {"total_at_least": {"EUR": "5000"}},
                    "order": "sequential",
                    "steps": [
                        {"step_id": "manager", "role": "manager"},
                        {
                            "step_id": "finance",
                            "role": "finance",
                            "escalate_after": "P1D",
                            "escalation_role": "director",
                        },
                    ],
                },
                {
                    "rule_id": "power-tools",
                    "version": 1,
                    "description": "Power tools over 1000 EUR: finance signs the asset.",
                    "when": {"total_at_least": {"EUR": "1000"}, "categories": ["tools/power"]},
                    "steps": [{"step_id": "finance", "role": "finance"}],
                },
                {
                    "rule_id": "long-terms",
                    "version": 1,
                    "description": "Invoice terms longer than NET30: finance agrees.",
                    "when": {"payment_terms_longer_than_default": True},
                    "steps": [{"step_id": "finance", "role": "finance"}],
                },
                {
                    "rule_id": "buyer-limit",
                    "version": 1,
                    "description": "A buyer over 20000 EUR this month: the manager agrees.",
                    "when": {"buyer_over_spending_limit": True},
                    "steps": [{"step_id": "manager", "role": "manager"}],
                },
            ],
        ),
        ApprovalPolicy.new(
            account_id=GLOBEX,
            version=1,
            expires_after="P2D",
            remind_before="PT12H",
            spending_limits=[
                {
                    "scope": "cost_centre",
                    "subject": "CC-PLANT-1",
                    "amount": "10000",
                    "currency": "EUR",
                    "period": "monthly",
                }
            ],
            rules=[
                {
                    "rule_id": "over-2000",
                    "version": 1,
                    "description": "Orders of 2000 EUR and more: manager and finance, two people.",
                    "when": {"total_at_least": {"EUR": "2000"}},
                    "order": "parallel",
                    "distinct_signers": True,
                    "steps": [
                        {"step_id": "manager", "role": "manager"},
                        {"step_id": "finance", "role": "finance"},
                    ],
                },
                {
                    "rule_id": "plant-budget",
                    "version": 1,
                    "description": "A cost centre over its monthly budget: the director.",
                    "when": {"cost_centre_over_budget": True},
                    "steps": [{"step_id": "director", "role": "director"}],
                },
            ],
        ),
    ]


ACME_QUOTE = "Q-ACME-0001"
"""The demo's negotiated quote: ACME's site order of drills and bolts, single use."""


def quotes(now: datetime | None = None) -> list[Quote]:
    """A single-use quote for ACME, valid 60 days from `now` (the sales team's usual term)."""
    issued = (now or datetime.now(UTC)).replace(microsecond=0)
    return [
        Quote.new(
            quote_id=ACME_QUOTE,
            account_id=ACME,
            version=1,
            currency="EUR",
            lines=[
                QuoteLine(sku="DRILL-18V", quantity=20, unit_price=Decimal("89.00")),
                QuoteLine(sku="BOLT-M8-100", quantity=500, unit_price=Decimal("7.40")),
            ],
            issued_at=issued,
            valid_until=issued + timedelta(days=60),
            use="single",
        )
    ]


def promotions() -> list[Promotion]:
    """An automatic promotion and a promo code for consumers (docs/pricing.md)."""
    window = {
        "valid_from": datetime(2026, 1, 1, tzinfo=UTC),
        "valid_until": datetime(2030, 1, 1, tzinfo=UTC),
    }
    return [
        Promotion.new(
            promotion_id="audio-week",
            name="Audio week: 15 % off electronics",
            kind=PromotionKind.PERCENTAGE,
            percent=Decimal(15),
            scope=PromotionScope.CATEGORY,
            categories=["electronics"],
            **window,
        ),
        Promotion.new(
            promotion_id="welcome10",
            name="Welcome: 10 % off your first order from 50 EUR",
            kind=PromotionKind.PERCENTAGE,
            percent=Decimal(10),
            currency="EUR",
            scope=PromotionScope.ORDER,
            min_order_value=Decimal(50),
            code="WELCOME10",
            max_uses_per_customer=1,
            max_uses_total=1000,
            **window,
        ),
    ]


def publish_reference_data(publisher: EventPublisher) -> dict[str, int]:
    """Publish the whole data set; returns how many events went to each topic."""
    counts = {
        WAREHOUSES.name: publisher.publish_all(WAREHOUSES, warehouses()),
        PRODUCTS.name: publisher.publish_all(PRODUCTS, products()),
        STOCK.name: publisher.publish_all(STOCK, stock_levels()),
        PRICE_LISTS.name: publisher.publish_all(PRICE_LISTS, price_lists()),
        QUOTES.name: publisher.publish_all(QUOTES, quotes()),
        PROMOTIONS.name: publisher.publish_all(PROMOTIONS, promotions()),
        ACCOUNTS.name: publisher.publish_all(ACCOUNTS, accounts()),
        APPROVAL_POLICIES.name: publisher.publish_all(APPROVAL_POLICIES, approval_policies()),
    }
    publisher.flush()
    return counts


BERLIN = {"country": "DE", "postal_code": "10115", "city": "Berlin", "line1": "Invalidenstr. 1"}
HAMBURG_SITE = {"country": "DE", "postal_code": "20457", "city": "Hamburg", "line1": "Kai 7"}


def b2c_order(
    order_id: str,
    lines: Sequence[tuple[str, int]],
    *,
    speed: str = "standard",
    account_id: str = B2C_CUSTOMER,
    method: str = "card",
    installments: int | None = None,
    promo_codes: Sequence[str] = (),
) -> OrderSubmitted:
    """A consumer's web-shop order, paid by card (or in `installments`), parcel to Berlin."""
    return OrderSubmitted.new(
        order_id=order_id,
        shop_id="web",
        channel=Channel.B2C,
        account_id=account_id,
        buyer_id=account_id,
        currency="EUR",
        lines=[{"sku": s, "quantity": q} for s, q in lines],
        payment={"method": "installments", "installments": installments}
        if installments
        else {"method": method},
        delivery={"speed": speed, "address": BERLIN},
        promo_codes=list(promo_codes),
    )


def b2b_order(
    order_id: str,
    lines: Sequence[tuple[str, int]],
    *,
    account_id: str = ACME,
    buyer_id: str = "acme-buyer",
    terms: str = "NET30",
    reference: str | None = None,
    reorder_of: str | None = None,
    quote_id: str | None = None,
) -> OrderSubmitted:
    """A business's order from the EDI gateway: on invoice, freight to a building site.

    With `reorder_of` and no lines it buys that earlier order again (one-click reorder).
    """
    return OrderSubmitted.new(
        order_id=order_id,
        shop_id="edi",
        channel=Channel.B2B,
        account_id=account_id,
        buyer_id=buyer_id,
        currency="EUR",
        reference=reference or f"PO-{order_id}",
        lines=[{"sku": s, "quantity": q} for s, q in lines],
        reorder_of=reorder_of,
        quote_id=quote_id,
        payment={"method": "invoice", "terms": terms},
        delivery={"speed": "standard", "address": HAMBURG_SITE},
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tools.seed``: publish the demo reference data to the configured broker."""
    argparse.ArgumentParser(
        prog="python -m tools.seed",
        description="Publish the demo reference data set to the broker of KAFKA_BOOTSTRAP_SERVERS.",
    ).parse_args(argv)
    settings = load_settings()
    with EventPublisher.from_settings(settings) as out:
        counts = publish_reference_data(out)
    print("seeded " + ", ".join(f"{n} {topic}" for topic, n in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
