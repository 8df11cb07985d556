"""HTTP views after the database dropped their connections (`shared.http_errors`), on a real
PostgreSQL: a read runs once more on a renewed pool, a write is answered 503 with Retry-After."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import MetaData, text

from services.pricing.app import create_service
from shared.db import ServiceDatabase
from shared.http_errors import answer_database_trouble
from shared.settings import Settings
from shared.topics import TopicNames
from tests.support.postgres import drop_connections_to

Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def database(new_database_url: Callable[[str], str]) -> AsyncIterator[ServiceDatabase]:
    db = ServiceDatabase(new_database_url("postgresql"), MetaData(), TopicNames())
    try:
        yield db
    finally:
        await db.dispose()


@pytest.fixture
async def client(
    database: ServiceDatabase,
) -> AsyncIterator[Client]:
    """A web app with the middleware and views that read the database, as a service's do."""

    async def read(request: web.Request) -> web.Response:
        async with database.sessions() as session:
            return web.json_response({"answer": await session.scalar(text("SELECT 42"))})

    async def fail(request: web.Request) -> web.Response:
        raise ValueError("a bug, not the database")

    app = web.Application(middlewares=[answer_database_trouble])
    app.router.add_route("*", "/read", read)
    app.router.add_get("/bug", fail)
    async with TestClient(TestServer(app, host="127.0.0.1")) as running:
        yield running


async def test_a_read_after_the_database_dropped_the_pool_is_answered(
    client: Client,
    database: ServiceDatabase,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert (await client.get("/read")).status == 200  # the pool now holds a connection
    assert await drop_connections_to(database.url), "the pool held no connection to drop"

    answer = await client.get("/read")
    assert answer.status == 200, await answer.text()
    assert await answer.json() == {"answer": 42}
    assert "database unavailable" not in caplog.text


async def test_a_write_after_the_database_dropped_the_pool_is_told_to_retry(
    client: Client, database: ServiceDatabase
) -> None:
    assert (await client.post("/read")).status == 200
    assert await drop_connections_to(database.url), "the pool held no connection to drop"

    refused = await client.post("/read")
    assert refused.status == 503
    assert refused.headers["Retry-After"] == "1"
    assert await refused.json() == {"error": "database unavailable; try again shortly"}
    assert (await client.post("/read")).status == 200  # the pool was renewed


async def test_an_error_that_is_not_the_databases_is_still_a_server_error(
    client: Client,
) -> None:
    assert (await client.get("/bug")).status == 500


def test_every_service_answers_database_trouble_this_way(tmp_path: Path) -> None:
    service = create_service(Settings(TRADELANE_DATA_DIR=tmp_path))
    assert answer_database_trouble in service.app.web.web_app.middlewares  # type: ignore[attr-defined]
