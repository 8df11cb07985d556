"""One-click reorder: an order that names an earlier order of its account takes its lines.

Catalog remembers the lines every readable order asked for (the shop's SKUs
and quantities, not what was reserved, which may have been released or
backordered since) for as long as it keeps the order itself. A reorder is
turned into an ordinary order here, before any check: it then meets today's
catalog, prices, credit and approvals like any other, and the stages after
catalog never need to know it was a reorder (`reorder_of` stays on the order
for the audit trail).

An earlier order is a template, whatever became of it: a rejected or
cancelled order can be bought again, and so can a reorder (its lines were
resolved when it arrived). An order id that is unknown, another account's, or
whose lines were never readable is refused with one and the same message, so
a shop cannot probe which order ids other accounts use. Pure rules, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shared.contract import Order, OrderLine, ReasonCode
from shared.rejection import Rejected


@dataclass(frozen=True)
class EarlierOrder:
    """What catalog kept of an order a reorder may name: whose it is and the lines it asked for."""

    account_id: str | None
    lines: Sequence[OrderLine]


def resolve(order: Order, earlier: EarlierOrder | None) -> Order:
    """`order` with the lines it asks for: its own, or those of the order it reorders.

    Raises `Rejected(unknown_reorder)` when `earlier` (looked up by
    `order.reorder_of`) is missing, another account's, or has no lines.
    """
    if order.reorder_of is None:
        return order
    if earlier is None or earlier.account_id != order.account_id or not earlier.lines:
        raise Rejected(
            ReasonCode.UNKNOWN_REORDER,
            f"reorder_of {order.reorder_of}: account {order.account_id} has no earlier order "
            "with this id to reorder; send the lines instead",
        )
    return order.model_copy(update={"lines": list(earlier.lines)})
