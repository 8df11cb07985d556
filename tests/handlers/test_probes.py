"""`/livez` and `/readyz`: what restarts a pod and what keeps traffic and work away from it."""

from __future__ import annotations

import time
from pathlib import Path

from faust.types import TP

from services.pricing.app import create_service
from shared.service import Service
from shared.settings import Settings


async def test_liveness_is_the_process_and_its_agents_not_the_broker(tmp_path: Path) -> None:
    service = create_service(Settings(TRADELANE_DATA_DIR=tmp_path))
    try:
        assert service.liveness_problems() == []  # no broker here, and still alive
        agent = next(iter(service.app.agents.values()))
        agent._crash(RuntimeError("boom"))
        [problem] = service.liveness_problems()
        assert problem.startswith(f"agent {agent.name} crashed") and "boom" in problem
    finally:
        await service.db.dispose()


async def test_readiness_wants_the_database_and_assigned_partitions(tmp_path: Path) -> None:
    service = create_service(Settings(TRADELANE_DATA_DIR=tmp_path))
    try:
        assert await service.readiness_problems() == [
            "no partitions assigned: broker unreachable or group not joined yet"
        ]
        service.app.consumer.assignment = lambda: {TP("orders.validated", 0)}  # type: ignore[method-assign]
        assert await service.readiness_problems() == []
    finally:
        await service.db.dispose()


async def test_an_unreachable_database_makes_the_worker_unready_but_alive(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'gone' / 'pricing.db'}"
    service = create_service(Settings(TRADELANE_DATA_DIR=tmp_path, DATABASE_URL=url))
    (tmp_path / "gone").rmdir()
    (tmp_path / "gone").write_text("the database's directory is a file now")
    try:
        problems = await service.readiness_problems()
        assert any(p.startswith("database unreachable") for p in problems)
        assert service.liveness_problems() == []
    finally:
        await service.db.dispose()


def test_the_probes_are_distinct_endpoints_beside_health(tmp_path: Path) -> None:
    service: Service = create_service(Settings(TRADELANE_DATA_DIR=tmp_path))
    web_app = service.app.web.web_app  # type: ignore[attr-defined]  # the aiohttp driver's
    paths = {route.resource.canonical for route in web_app.router.routes()}
    assert {"/health", "/livez", "/readyz", "/metrics"} <= paths


async def test_a_relay_that_cannot_send_makes_the_worker_unready_not_dead(tmp_path: Path) -> None:
    service = create_service(Settings(TRADELANE_DATA_DIR=tmp_path))
    service.app.consumer.assignment = lambda: {TP("orders.validated", 0)}  # type: ignore[method-assign]
    service.app._started.set()  # as a running worker: its relay runs
    service.relay.state.running = True
    try:
        assert await service.readiness_problems() == []
        service.relay.state.failing_since = time.monotonic() - 120
        service.relay.state.last_error = "KafkaConnectionError: no broker"
        [problem] = await service.readiness_problems()
        assert problem.startswith("outbox relay has not sent for") and "no broker" in problem
        assert service.liveness_problems() == []
    finally:
        await service.db.dispose()
