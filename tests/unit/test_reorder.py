"""One-click reorder: what a shop may send, and how catalog turns it into an ordinary order."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from services.catalog.reorder import EarlierOrder, resolve
from shared.contract import OrderLine, OrderSubmitted, ReasonCode
from shared.order_identity import fingerprint
from shared.rejection import Rejected
from tools.seed import ACME, GLOBEX, b2b_order

BOLTS = [OrderLine(sku="BOLT-M8-100", quantity=40), OrderLine(sku="GLOVE-L", quantity=20)]


def test_a_reorder_names_an_earlier_order_instead_of_listing_lines() -> None:
    order = b2b_order("o-2", [], reorder_of="o-1")
    assert (order.lines, order.reorder_of) == ([], "o-1")
    body = json.loads(order.to_bytes())
    del body["lines"]  # may be left out as well as sent empty
    assert OrderSubmitted.model_validate(body).reorder_of == "o-1"


def test_an_order_with_neither_lines_nor_reorder_of_is_refused() -> None:
    with pytest.raises(ValidationError, match="at least one line, or reorder_of"):
        b2b_order("o-2", [])


def test_lines_and_reorder_of_together_are_refused() -> None:
    with pytest.raises(ValidationError, match="either lines or reorder_of, not both"):
        b2b_order("o-2", [("BOLT-M8-100", 40)], reorder_of="o-1")


def test_reorder_of_is_an_id() -> None:
    with pytest.raises(ValidationError) as error:
        b2b_order("o-2", [], reorder_of="../o-1")
    assert error.value.errors()[0]["loc"] == ("reorder_of",)


def test_a_reorder_takes_the_earlier_orders_lines_and_keeps_its_own_header() -> None:
    order = b2b_order("o-2", [], reorder_of="o-1", reference="PO-9").order()
    resolved = resolve(order, EarlierOrder(ACME, BOLTS))
    assert resolved.lines == BOLTS
    assert resolved.model_dump(exclude={"lines"}) == order.model_dump(exclude={"lines"})
    assert resolved.reorder_of == "o-1"  # the audit trail: where the lines came from


def test_an_order_that_lists_its_lines_is_left_as_it_is() -> None:
    order = b2b_order("o-1", [("BOLT-M8-100", 40)]).order()
    assert resolve(order, None) is order


@pytest.mark.parametrize(
    "earlier",
    [None, EarlierOrder(GLOBEX, BOLTS), EarlierOrder(None, []), EarlierOrder(ACME, [])],
    ids=["unknown", "another account's", "unreadable", "without lines"],
)
def test_a_reorder_of_no_order_of_its_own_is_rejected_and_says_nothing_of_others(
    earlier: EarlierOrder | None,
) -> None:
    order = b2b_order("o-2", [], reorder_of="o-1").order()
    with pytest.raises(Rejected) as refused:
        resolve(order, earlier)
    assert refused.value.reason.code is ReasonCode.UNKNOWN_REORDER
    assert refused.value.reason.message == (
        "reorder_of o-1: account acme-gmbh has no earlier order with this id to reorder; "
        "send the lines instead"
    )


def test_an_ordinary_orders_fingerprint_is_what_it_was_before_reorder_of_existed() -> None:
    order = b2b_order("o-1", [("BOLT-M8-100", 40)]).order()
    # computed with the contract before `reorder_of`: catalog's stored fingerprints stay valid
    assert fingerprint(order) == "3ab373a7c0ab1d63e2b042f35c03cad363669bfe59914589b314f2af89a35000"


def test_a_reorder_is_fingerprinted_as_sent_so_its_retry_matches_and_another_does_not() -> None:
    reorder = b2b_order("o-2", [], reorder_of="o-1").order()
    assert fingerprint(reorder) == fingerprint(b2b_order("o-2", [], reorder_of="o-1").order())
    assert fingerprint(reorder) != fingerprint(b2b_order("o-2", [], reorder_of="o-0").order())
    assert fingerprint(reorder) != fingerprint(resolve(reorder, EarlierOrder(ACME, BOLTS)))
