"""The approver's inbox page (server-rendered HTML): being written."""

from __future__ import annotations

from shared.service import Service


def register(service: Service) -> None:
    """Add the inbox page's views to the service's web server."""
