"""Fulfillment's own metrics: shipments planned and dispatched, by mode and carrier.

Labels stay bounded: the mode is the contract's `ShipmentMode` and the carrier
one of the few in `domain.SHIPPING` (two freight, one parcel product per
delivery speed); order, shipment and tracking ids never become labels.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter

from services.fulfillment.domain import SHIPPING, ShippingRules
from shared.contract import Shipment, ShipmentMode

PLANNED = Counter(
    "tradelane_shipments_planned_total",
    "Shipments planned (reported `fulfillment_planned`), by mode and carrier.",
    ["mode", "carrier"],
)
DISPATCHED = Counter(
    "tradelane_shipments_dispatched_total",
    "Shipments the warehouse confirmed left the dock (reported `shipped`), by mode and carrier.",
    ["mode", "carrier"],
)


def carriers(rules: ShippingRules = SHIPPING) -> list[tuple[ShipmentMode, str]]:
    """Every (mode, carrier) fulfillment can choose: the closed set the labels come from."""
    freight = [rules.freight_carrier_ltl, rules.freight_carrier_ftl]
    parcel = [service.carrier for service in rules.parcel_services.values()]
    return [(ShipmentMode.FREIGHT, c) for c in freight] + [(ShipmentMode.PARCEL, c) for c in parcel]


def count_shipments(counter: Counter, shipments: Iterable[Shipment]) -> None:
    for shipment in shipments:
        counter.labels(shipment.mode.value, shipment.carrier).inc()


for _mode, _carrier in carriers():  # every carrier shows on /metrics from the start, at 0
    PLANNED.labels(_mode.value, _carrier)
    DISPATCHED.labels(_mode.value, _carrier)
