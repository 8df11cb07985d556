"""A worker whose web port was taken before it could bind it: the start-up race of tests.

Tests and the bench pick each worker's port free a moment before the worker
binds it; another process can bind it in between. One such run once passed
a dead worker as healthy, because the process on its port answered `/health`.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.topics import TopicNames, create_topics
from tests.e2e.conftest import PARTITIONS
from tools.fleet import Fleet, PortTaken


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port some other process is listening on."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield int(other.getsockname()[1])


def fleet_on(kafka_bootstrap: str, folder: Path, port: int, *, move: bool) -> Fleet:
    prefix = f"e2e{uuid.uuid4().hex[:8]}."
    create_topics(kafka_bootstrap, TopicNames(prefix), PARTITIONS)
    return Fleet(
        kafka_bootstrap,
        folder,
        topic_prefix=prefix,
        partitions=PARTITIONS,
        ports={"fulfillment": port},
        move_taken_ports=move,
    )


def test_a_worker_whose_picked_port_was_taken_starts_on_another(
    kafka_bootstrap: str, tmp_path: Path, taken_port: int
) -> None:
    fleet = fleet_on(kafka_bootstrap, tmp_path, taken_port, move=True)
    try:
        fleet.start(["fulfillment"])
        worker = fleet.running["fulfillment"]
        assert worker.port != taken_port
        status, body = worker.health()
        assert (status, body["service"]) == (200, "fulfillment")
    finally:
        fleet.stop()


def test_a_fixed_port_that_is_taken_fails_the_start_naming_it(
    kafka_bootstrap: str, tmp_path: Path, taken_port: int
) -> None:
    fleet = fleet_on(kafka_bootstrap, tmp_path, taken_port, move=False)
    try:
        with pytest.raises(PortTaken, match=f"web port {taken_port} was taken"):
            fleet.start(["fulfillment"])
    finally:
        fleet.stop()
