"""What a service's HTTP views answer when the database, not the request, is the problem.

Connections are not pinged before use (`shared.db`: a ping costs three round
trips per transaction), so after a database restart or failover the first
request meets a dropped connection. SQLAlchemy then renews the whole pool, so
a read simply runs once more; a write, or a read that fails again, is answered
503 with `Retry-After`, which browsers, probes and clients know to retry,
instead of a 500 that reads like a bug.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from shared.consume import database_trouble

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 1
SAFE_METHODS = frozenset({"GET", "HEAD"})
"""Requests that change nothing, so running them again is always right."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def answer_database_trouble(request: web.Request, handler: Handler) -> web.StreamResponse:
    problem: Exception | None = None
    for _ in range(2 if request.method in SAFE_METHODS else 1):
        try:
            return await handler(request)
        except Exception as error:
            if not database_trouble(error):
                raise
            problem = error
    log.warning("%s %s: database unavailable (%s)", request.method, request.path, problem)
    return web.json_response(
        {"error": "database unavailable; try again shortly"},
        status=503,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )
