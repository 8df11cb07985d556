"""`tradelane`: the command line for shops and ops.

tradelane topics create      create every topic of the registry (and .dlq twins)
tradelane topics list        show the registry: name, key, writer, compaction
tradelane publish FILE.jsonl validate each line against the contract, then send
tradelane catalog import FILE.csv|FILE.jsonl
                             validate a PIM/ERP product export, then publish all of it
tradelane catalog adjust SKU WAREHOUSE DELTA --reason TEXT
                             publish a stock adjustment, e.g. -3 --reason breakage
tradelane fulfillment dispatch ORDER_ID SHIPMENT_ID
                             publish that a shipment left the warehouse (what a WMS sends)
tradelane approvals token APPROVER [--ttl HOURS]
                             print a bearer token for the approvals API and inbox page
tradelane approvals delegate --account A --from DELEGATOR --to DELEGATE --until TIME
                             publish an out-of-office delegation (approvals.delegations)
tradelane outbox list|retry|drop [ID…] --service S [--all]
                             outbox rows the broker refused for good: see, put back, drop
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from cli.approvals import add_approvals_commands
from cli.catalog import add_catalog_commands
from cli.fulfillment import add_fulfillment_commands
from cli.outbox import add_outbox_commands
from cli.publish import TOPICS_BY_NAME, cmd_publish
from cli.topics import cmd_topics


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tradelane", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    topics = commands.add_parser("topics", help="create or list the topics of the registry")
    topics.add_argument("action", choices=["create", "list"])
    topics.set_defaults(run=cmd_topics)
    publish = commands.add_parser("publish", help="validate and publish events from a JSONL file")
    publish.add_argument("file")
    publish.add_argument(
        "--topic",
        choices=sorted(TOPICS_BY_NAME),
        help="publish every line to this topic (default: from each `schema`)",
    )
    publish.add_argument(
        "--skip-invalid", action="store_true", help="send the valid lines even if some are invalid"
    )
    publish.set_defaults(run=cmd_publish)
    add_catalog_commands(commands)
    add_fulfillment_commands(commands)
    add_approvals_commands(commands)
    add_outbox_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
