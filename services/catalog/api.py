"""Catalog's read API for shops: a product's details, and how many units are free where.

`GET /products/{sku}` gives what PIM sent (specifications, pack size, unit of
measure…) and the units free to order now; `GET /availability?sku=…` gives the
stock per warehouse. With `account_id`, SKUs outside the account's assortment
show no stock: a shop must not offer what the account may not buy.
"""

from __future__ import annotations

from typing import Any

from faust.web import Request, Response, View

from services.catalog import domain, store
from shared.service import Service

MAX_SKUS = 100
ENVELOPE = {"schema_", "event_id", "occurred_at"}


def stock_view(levels: list[tuple[str, int, int]]) -> dict[str, Any]:
    warehouses = [
        {
            "warehouse_id": warehouse_id,
            "on_hand": on_hand,
            "reserved": reserved,
            "available": max(on_hand - reserved, 0),
        }
        for warehouse_id, on_hand, reserved in levels
    ]
    return {"available": sum(w["available"] for w in warehouses), "warehouses": warehouses}


def availability_of(
    sku: str,
    item: domain.CatalogItem | None,
    levels: list[tuple[str, int, int]],
    terms: domain.BuyerTerms | None,
) -> dict[str, Any]:
    """One SKU as a shop shows it; for an account, only if its assortment allows it.

    With an account, the answer also says in which quantities the account may
    order the SKU, so a B2B shop can offer only quantities catalog will accept.
    """
    if item is None:
        return {"sku": sku, "known": False}
    if terms is not None and terms.assortment is not None and not terms.assortment.allows(item):
        return {"sku": sku, "known": True, "in_assortment": False}
    answer: dict[str, Any] = {"sku": sku, "known": True, "in_assortment": True}
    answer.update(stock_view(levels))
    if terms is not None:
        limits = domain.quantity_limits(item, terms)
        answer["order_quantity"] = {
            "min": limits.min_quantity,
            "increment": limits.increment,
            "max": limits.max_quantity,
            "rule": limits.source,
        }
        answer["backorders"] = terms.allows_backorders
    return answer


def register(service: Service) -> None:
    app = service.app

    @app.page("/products/{sku}")
    class ProductDetails(View):
        async def get(self, request: Request, sku: str) -> Response:
            async with service.db.sessions() as session:
                product = await store.find_product(session, sku)
                if product is None:
                    return self.json({"error": f"no product with sku {sku}"}, status=404)
                levels = await store.stock_by_warehouse(session, {sku})
            details = product.model_dump(mode="json", exclude=ENVELOPE)
            return self.json({**details, "stock": stock_view(levels.get(sku, []))})

    @app.page("/availability")
    class Availability(View):
        async def get(self, request: Request) -> Response:
            """`?sku=A&sku=B[&account_id=X]`: free units per warehouse for each SKU."""
            repeated = request.query.getall("sku", [])  # type: ignore[attr-defined]  # aiohttp
            skus = list(dict.fromkeys(repeated))
            if not skus or len(skus) > MAX_SKUS:
                return self.json(
                    {"error": f"sku: give 1 to {MAX_SKUS} sku parameters, e.g. ?sku=BOLT-M8-100"},
                    status=400,
                )
            account_id = request.query.get("account_id")
            async with service.db.sessions() as session:
                items = await store.catalog_items(session, set(skus))
                levels = await store.stock_by_warehouse(session, set(skus))
                terms = await store.buyer_terms(session, account_id) if account_id else None
            answer = [
                availability_of(sku, items.get(sku), levels.get(sku, []), terms) for sku in skus
            ]
            return self.json({"account_id": account_id, "items": answer})
