"""Shared pytest fixtures.

Only fixtures that several test packages need live here. Nothing is autouse: unit tests
must never start a broker, so a broker exists only for tests that ask for one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from shared.broker import BOOTSTRAP_ENV, LocalKafka


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap address of a real Kafka broker for the whole test session.

    Uses the cluster in ``KAFKA_BOOTSTRAP_SERVERS`` when set (CI or a dev broker from
    ``make kafka-up``); otherwise starts a throwaway single-node KRaft broker on free
    ports in a temp dir (a few seconds) and stops it when the session ends.
    """
    external = os.environ.get(BOOTSTRAP_ENV)
    if external:
        yield external
        return
    with LocalKafka(tmp_path_factory.mktemp("kafka")) as kafka:
        yield kafka.bootstrap
