"""Each service reads the order reports it acts on, and only those.

Services no longer read `orders.status` (every report of every order); the
topics that repeat some of its reports (`TopicSpec.repeats`) carry them. If a
service's rules start acting on another state, or a topic stops carrying one,
the report would silently never arrive: these tests say which. A report may be
repeated on several topics, one per kind of work it moves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest

from services.approvals import domain as approvals_domain
from services.approvals import handlers as approvals
from services.catalog import domain as catalog_domain
from services.catalog import handlers as catalog
from services.fulfillment import domain as fulfillment_domain
from services.fulfillment import handlers as fulfillment
from services.pricing import handlers as pricing
from services.pricing import holds
from shared.consume import Handler
from shared.contract import OrderState
from shared.topics import ORDERS_STATUS, REPEATING_TOPICS, TopicSpec, repeating

ACTS_ON: dict[str, tuple[Mapping[TopicSpec, Handler[Any]], Callable[[OrderState], bool]]] = {
    "catalog": (catalog.HANDLERS, lambda state: catalog_domain.cause_of(state) is not None),
    "pricing": (pricing.HANDLERS, lambda state: holds.fate_of(state) is not None),
    "approvals": (approvals.HANDLERS, lambda state: state in approvals_domain.ENDED),
    "fulfillment": (
        fulfillment.HANDLERS,
        lambda state: fulfillment_domain.stopped_by(state) is not None,
    ),
}


@pytest.mark.parametrize("service", sorted(ACTS_ON))
def test_a_service_reads_exactly_the_reports_its_rules_act_on(service: str) -> None:
    handlers, acts_on = ACTS_ON[service]
    reaching = {state for spec in handlers for state in spec.repeats}
    assert reaching == {state for state in OrderState if acts_on(state)}


@pytest.mark.parametrize("service", sorted(ACTS_ON))
def test_no_service_reads_every_report(service: str) -> None:
    handlers, _ = ACTS_ON[service]
    assert ORDERS_STATUS not in handlers


@pytest.mark.parametrize("service", sorted(ACTS_ON))
def test_a_service_reads_one_report_topic(service: str) -> None:
    """Keyed by order id, one topic brings a service an order's reports in the order they
    were written, all to the worker that holds the order's partition; two topics would let
    two workers move one order at once (an approval and a cancellation, say)."""
    handlers, _ = ACTS_ON[service]
    assert len([spec for spec in handlers if spec.repeats]) == 1


def test_report_topics_carry_reports_as_orders_status_does() -> None:
    assert all(spec.model is ORDERS_STATUS.model for spec in REPEATING_TOPICS)
    assert all(spec.key == ORDERS_STATUS.key for spec in REPEATING_TOPICS)
    assert repeating(OrderState.RECEIVED) == ()  # for the shops alone
