"""SIGTERM mid-burst: the service finishes what it holds, exits 0 within its bound, and after
a restart every order of the burst reaches its final state exactly once.

Real processes over the real broker, so this module has its own fleet and topic prefix.
"""

from __future__ import annotations

import sqlite3
import time

import pytest

from shared.contract import OrderState
from shared.shutdown import EXIT_UNFINISHED
from shared.topics import ORDERS_APPROVED, ORDERS_PRICED, ORDERS_SUBMITTED, ORDERS_VALIDATED
from tests.e2e.conftest import Pipeline
from tools.seed import b2c_order

BURST = 200
B2C_HISTORY = ["received", "approved", "fulfillment_planned"]
ORDER_TOPICS = [ORDERS_SUBMITTED, ORDERS_VALIDATED, ORDERS_PRICED, ORDERS_APPROVED]

# What shows that each service has started on the burst.
FIRST_SIGN = {"catalog": OrderState.RECEIVED, "pricing": OrderState.APPROVED}


@pytest.mark.parametrize("service", ["catalog", "pricing"])
def test_sigterm_during_a_burst_loses_and_doubles_nothing(pipeline: Pipeline, service: str) -> None:
    orders = [
        b2c_order(pipeline.order_id(f"{service}-burst{n}"), [("SCREW-5X50", 1)])
        for n in range(BURST)
    ]
    first_half, second_half = orders[: BURST // 2], orders[BURST // 2 :]
    for order in first_half:
        pipeline.publisher.publish(ORDERS_SUBMITTED, order)
    pipeline.publisher.flush()
    pipeline.watch.wait_for_status(first_half[0].order_id, FIRST_SIGN[service])
    bound = pipeline.fleet.shutdown_seconds(service)
    log = pipeline.fleet.running[service].log_path

    signalled = time.monotonic()
    pipeline.fleet.terminate(service)
    for order in second_half:  # the rest of the burst arrives while it stops
        pipeline.publisher.publish(ORDERS_SUBMITTED, order)
    pipeline.publisher.flush()
    codes = pipeline.fleet.stop([service])
    took = time.monotonic() - signalled

    assert codes == {service: 0}, log.read_text()[-3000:]
    assert took <= bound, f"{service} took {took:.1f}s to stop, more than its {bound:.0f}s"
    assert "drained in" in log.read_text()

    pipeline.fleet.start([service])
    for order in orders:
        pipeline.watch.wait_for_status(order.order_id, OrderState.FULFILLMENT_PLANNED)
    pipeline.fleet.wait_caught_up(ORDER_TOPICS)
    marker = b2c_order(pipeline.order_id(f"{service}-after"), [("GLOVE-L", 1)])
    pipeline.publisher.publish(ORDERS_SUBMITTED, marker)
    pipeline.watch.wait_for_status(marker.order_id, OrderState.FULFILLMENT_PLANNED)

    doubled_or_missing = {
        order.order_id: history
        for order in orders
        if (history := pipeline.watch.history(order.order_id)) != B2C_HISTORY
    }
    assert doubled_or_missing == {}
    assert not any(pipeline.watch.dead_letters.values()), pipeline.watch.dead_letters


def test_a_stop_that_runs_out_of_time_exits_non_zero_saying_what_was_pending(
    pipeline: Pipeline,
) -> None:
    """A message in hand that cannot finish (its database stays locked) holds the drain
    past the bound: the service says what was pending and exits 3, within the bound;
    after the restart the message is redelivered and handled once."""
    bound = pipeline.fleet.shutdown_seconds("catalog")
    log = pipeline.fleet.running["catalog"].log_path
    earlier = len(log.read_text())

    def said() -> str:  # what catalog logged during this test
        return log.read_text()[earlier:]

    lock = sqlite3.connect(pipeline.fleet.data_dir / "catalog.db", isolation_level=None)
    try:
        lock.execute("BEGIN EXCLUSIVE")  # every write transaction of catalog now waits
        order = b2c_order(pipeline.order_id("stuck"), [("SCREW-5X50", 1)])
        pipeline.publisher.publish(ORDERS_SUBMITTED, order)
        pipeline.publisher.flush()
        pipeline.watch.wait_until(
            "catalog to retry its locked database",
            lambda: "database unavailable" in said(),
        )

        signalled = time.monotonic()
        codes = pipeline.fleet.stop(["catalog"])
        took = time.monotonic() - signalled
    finally:
        lock.rollback()
        lock.close()

    assert codes == {"catalog": EXIT_UNFINISHED}, said()[-3000:]
    assert took <= bound, f"catalog took {took:.1f}s to give up, more than its {bound:.0f}s"
    assert "shutdown ran out of time" in said()
    assert "still pending: message in hand: orders." in said()  # orders.status may be first
    assert "message in hand: orders.submitted partition" in said()

    pipeline.fleet.start(["catalog"])
    pipeline.watch.wait_for_status(order.order_id, OrderState.FULFILLMENT_PLANNED)
    pipeline.fleet.wait_caught_up(ORDER_TOPICS)
    assert pipeline.watch.history(order.order_id) == B2C_HISTORY
