"""`tradelane outbox`: what ops do with events the broker refused for good.

A service parks an outbox row the broker will never take (too large, an
invalid topic) so the rows behind it go on; `/health` and
`tradelane_outbox_parked_rows` say so. Here ops list the parked rows, put
them back in line once the cause is fixed (a raised broker limit), or drop
them. Run it where the service's settings are (its DATABASE_URL, or the
SQLite files in TRADELANE_DATA_DIR).
"""

from __future__ import annotations

import argparse
import asyncio

from sqlalchemy import MetaData

from shared.db import ServiceDatabase
from shared.settings import SERVICE_WEB_PORTS, load_settings
from shared.topics import TopicNames


def service_database(service: str) -> ServiceDatabase:
    settings = load_settings()
    return ServiceDatabase(
        settings.database_url_for(service), MetaData(), TopicNames(settings.topic_prefix)
    )


async def run_outbox(args: argparse.Namespace) -> int:
    db = service_database(args.service)
    try:
        if args.action == "list":
            rows = await db.parked(limit=args.limit)
            for row in rows:
                parked = f"{row.parked_at:%Y-%m-%d %H:%M:%S}Z"
                print(f"{row.id}\t{row.topic}\t{row.size} bytes\tparked {parked}\t{row.reason}")
            print(f"{len(rows)} parked row(s) in {args.service}'s outbox")
            return 0
        ids = [row.id for row in await db.parked(limit=100_000)] if args.all else args.ids
        if not ids:
            print("name the rows to act on (their ids from `list`) or give --all")
            return 2
        done = await (db.retry_parked(ids) if args.action == "retry" else db.drop_parked(ids))
        verb = "put back in line" if args.action == "retry" else "dropped"
        print(f"{done} parked row(s) {verb} in {args.service}'s outbox")
        return 0
    finally:
        await db.dispose()


def cmd_outbox(args: argparse.Namespace) -> int:
    return asyncio.run(run_outbox(args))


def add_outbox_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    outbox = commands.add_parser(
        "outbox", help="list, retry or drop outbox rows the broker refused"
    )
    outbox.add_argument("action", choices=["list", "retry", "drop"])
    outbox.add_argument("ids", nargs="*", type=int, help="row ids (from `list`)")
    outbox.add_argument("--service", required=True, choices=sorted(SERVICE_WEB_PORTS))
    outbox.add_argument("--all", action="store_true", help="every parked row")
    outbox.add_argument("--limit", type=int, default=100, help="rows to list (default 100)")
    outbox.set_defaults(run=cmd_outbox)
