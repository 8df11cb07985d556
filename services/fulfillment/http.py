"""Fulfillment's read API: the shipments of one order and whether each has left.

`GET /shipments/{order_id}` is for a shop's support desk and ops, e.g. to
compare the WMS with fulfillment's plan when a dispatch was dead-lettered.
"""

from __future__ import annotations

from typing import Any

from faust.web import Request, Response, View

from services.fulfillment import store
from services.fulfillment.domain import PlannedShipment, State
from shared.service import Service


def shipment_view(planned: PlannedShipment) -> dict[str, Any]:
    return {
        **planned.shipment.model_dump(mode="json"),
        "dispatched": planned.dispatched,
        "dispatched_at": planned.dispatched_at.isoformat() if planned.dispatched_at else None,
    }


def register(service: Service) -> None:
    @service.app.page("/shipments/{order_id}")
    class OrderShipments(View):
        """A planned order with everything on backorder answers with no shipments yet
        rather than 404: the order is known, its goods are not on the shelf."""

        async def get(self, request: Request, order_id: str) -> Response:
            async with service.db.sessions() as session:
                known = await store.progress_of(session, order_id)
                shipments = await store.shipments_of(session, order_id)
            if known.state is None or (not shipments and known.state is not State.PLANNED):
                return self.json(
                    {"order_id": order_id, "error": "no shipments planned for this order"},
                    status=404,
                )
            return self.json(
                {
                    "order_id": order_id,
                    "state": known.state.value,
                    "shipments": [shipment_view(planned) for planned in shipments],
                }
            )
