"""Fixtures for integration tests: each database test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable

import pytest


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, new_database_url: Callable[[str], str]) -> str:
    """A new, empty database on each backend in turn."""
    return new_database_url(request.param)
