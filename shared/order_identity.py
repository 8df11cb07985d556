"""Who an order id belongs to, and what a second submission under it means.

An order id is global (`orders.status` is keyed by it) and belongs to the
account that first used it; no other account can submit, cancel or swallow
it. Once Tradelane has answered an order id — accepted it, or rejected it,
even as an unreadable `invalid_event` — the id is used: a corrected order is
a new order with a new id. A true retry (the same content under a new event
id) changes nothing. Pure rules, no I/O: catalog, where orders enter, applies
them.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum
from typing import Any

from shared.contract import Order


def fingerprint(order: Order) -> str:
    """SHA-256 of the order's content as the shop wrote it; the envelope does not count.

    A reorder is fingerprinted as sent (its `reorder_of`, not the lines catalog
    resolves), so its retry matches. Fields added to the contract later are left
    out while absent, so orders recorded before they existed keep their fingerprints.
    """
    absent: dict[str, Any] = {}
    if order.reorder_of is None:
        absent["reorder_of"] = True
    if order.payment.installments is None:
        absent["payment"] = {"installments"}
    return hashlib.sha256(order.model_dump_json(exclude=absent or None).encode()).hexdigest()


class Resubmission(StrEnum):
    RETRY = "retry"
    """The same order again: nothing to do, its outcome stands."""
    FOREIGN = "foreign_order"
    """Another account's order id: refused, the rightful order is not touched."""
    DUPLICATE_OF_ENDED = "duplicate_of_ended"
    """Different content under an id whose order has ended: rejected `duplicate_order_id`."""
    DUPLICATE_OF_LIVE = "duplicate_order_id"
    """Different content under an id whose order is under way: refused, the order goes on."""


def judge_resubmission(
    *,
    owner: str | None,
    known_fingerprint: str | None,
    ended: bool,
    account_id: str,
    new_fingerprint: str,
) -> Resubmission:
    """What an `orders.submitted` for an order id seen before is.

    `owner` is None when the first message under this id was unreadable: the
    id is used all the same, by whoever sent it.
    """
    if owner is not None and owner != account_id:
        return Resubmission.FOREIGN
    if known_fingerprint == new_fingerprint:
        return Resubmission.RETRY
    return Resubmission.DUPLICATE_OF_ENDED if ended else Resubmission.DUPLICATE_OF_LIVE
