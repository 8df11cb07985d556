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
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from pydantic import ValidationError

from shared.contract import Delegation, Event
from shared.settings import load_settings
from shared.topics import ALL_TOPICS, TopicNames, TopicSpec, create_topics

TOPICS_BY_NAME = {spec.name: spec for spec in ALL_TOPICS}
E = TypeVar("E", bound=Event)


class NothingSent(Exception):
    """The broker could not be reached; the message names the setting to check."""


def publish_one(spec: TopicSpec, event: Event) -> str:
    """Send one event to the broker of the settings; returns the topic's name as sent to.

    For the commands that publish a single fact (a delegation, a stock
    adjustment, a dispatch): they either report the event id or say why nothing
    went out, so an operator never has to guess whether to send again.
    """
    from kafka.errors import KafkaError

    from cli.publisher import EventPublisher

    settings = load_settings()
    names = TopicNames(settings.topic_prefix)
    try:
        with EventPublisher(settings.kafka_bootstrap_servers, names) as out:
            out.publish(spec, event)
    except KafkaError as error:
        raise NothingSent(
            f"nothing sent: Kafka at {settings.kafka_bootstrap_servers} "
            f"(KAFKA_BOOTSTRAP_SERVERS) is not reachable: {error}"
        ) from None
    return names.of(spec)


def argument_error(error: ValidationError, arguments: dict[str, str]) -> str:
    """A contract validation error in the words of the command line: each field's argument."""
    parts = []
    for problem in error.errors(include_url=False):
        field = str(problem["loc"][0]) if problem["loc"] else ""
        message = str(problem["msg"]).removeprefix("Value error, ")
        parts.append(f"{arguments[field]}: {message}" if field in arguments else message)
    return "; ".join(parts)


def send_one(
    command: str,
    spec: TopicSpec,
    build: Callable[[], E],
    explain: Callable[[ValidationError], str],
    said: Callable[[E], str],
) -> int:
    """Build one event from a command's arguments and publish it, saying what happened.

    Exit 2 with the arguments' own names when they don't make a valid event,
    1 when the broker can't be reached, 0 with `said(event)`, the topic and the
    event id once it went out.
    """
    try:
        event = build()
    except ValidationError as error:
        print(f"tradelane {command}: {explain(error)}", file=sys.stderr)
        return 2
    try:
        topic = publish_one(spec, event)
    except NothingSent as error:
        print(f"tradelane {command}: {error}", file=sys.stderr)
        return 1
    print(f"{said(event)} (sent to {topic}, event {event.event_id})")
    return 0


@dataclass(frozen=True)
class LineError:
    line_no: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line_no}: {self.message}"


def parse_event_line(line_no: int, text: str, topic: TopicSpec | None) -> tuple[TopicSpec, Event]:
    """One JSONL line → (topic, validated event). The topic comes from `schema` unless forced."""
    try:
        body = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"not JSON ({error.msg} at column {error.colno})") from None
    if not isinstance(body, dict):
        raise ValueError("expected a JSON object")
    if topic is None:
        schema = body.get("schema")
        name = schema.rsplit("/v", 1)[0] if isinstance(schema, str) else None
        topic = TOPICS_BY_NAME.get(name or "")
        if topic is None:
            known = ", ".join(f"{n}/v1" for n in TOPICS_BY_NAME)
            raise ValueError(f"schema: expected one of {known}; got {schema!r}")
    try:
        return topic, topic.model.model_validate(body)
    except ValidationError as error:
        from shared.service import describe_validation_error

        raise ValueError(describe_validation_error(error)) from None


def read_events(
    path: Path, topic: TopicSpec | None
) -> tuple[list[tuple[TopicSpec, Event]], list[LineError]]:
    events, errors = [], []
    with path.open(encoding="utf-8") as lines:
        for line_no, text in enumerate(lines, start=1):
            if not text.strip():
                continue
            try:
                events.append(parse_event_line(line_no, text, topic))
            except ValueError as error:
                errors.append(LineError(line_no, str(error)))
    return events, errors


def cmd_publish(args: argparse.Namespace) -> int:
    from cli.publisher import EventPublisher

    topic = TOPICS_BY_NAME[args.topic] if args.topic else None
    events, errors = read_events(Path(args.file), topic)
    for error in errors:
        print(error, file=sys.stderr)
    if errors and not args.skip_invalid:
        print(
            f"{len(errors)} invalid line(s): nothing was sent (use --skip-invalid to send the "
            f"{len(events)} valid ones)",
            file=sys.stderr,
        )
        return 1
    settings = load_settings()
    with EventPublisher(settings.kafka_bootstrap_servers, TopicNames(settings.topic_prefix)) as out:
        for spec, event in events:
            out.publish(spec, event)
    print(f"sent {len(events)} event(s)" + (f", skipped {len(errors)} invalid" if errors else ""))
    return 1 if errors else 0


def cmd_topics(args: argparse.Namespace) -> int:
    settings = load_settings()
    names = TopicNames(settings.topic_prefix)
    if args.action == "create":
        created = create_topics(settings.kafka_bootstrap_servers, names, settings.topic_partitions)
        print(f"{len(created)} topic(s) created, {len(names.all_names()) - len(created)} existed")
        return 0
    print(f"{'topic':<24} {'key':<22} {'writer':<13} {'kind':<10} description")
    for spec in ALL_TOPICS:
        kind = "compacted" if spec.compacted else "stream"
        print(
            f"{names.of(spec):<24} {spec.key:<22} {spec.writer:<13} {kind:<10} {spec.description}"
        )
    return 0


def cmd_catalog_import(args: argparse.Namespace) -> int:
    """All rows valid, or nothing sent: a catalog is never left half-imported."""
    from cli.product_import import ImportFileError, read_products
    from cli.publisher import EventPublisher
    from shared.topics import PRODUCTS

    try:
        products, errors = read_products(Path(args.file))
    except (ImportFileError, OSError) as unreadable:
        print(unreadable, file=sys.stderr)
        return 1
    for row_error in errors:
        print(row_error, file=sys.stderr)
    if errors:
        print(f"{len(errors)} invalid row(s): no product was sent", file=sys.stderr)
        return 1
    settings = load_settings()
    with EventPublisher(settings.kafka_bootstrap_servers, TopicNames(settings.topic_prefix)) as out:
        for product in products:
            out.publish(PRODUCTS, product)
    print(f"imported {len(products)} product(s) to catalog.products")
    return 0


SIGNED_UNITS = re.compile(r"[+-][0-9]+")
REASON_MAX_CHARS = 200
SHIPMENT_ID_MAX_CHARS = 80

ADJUSTMENT_ARGUMENTS = {
    "sku": "SKU",
    "warehouse_id": "WAREHOUSE",
    "delta": "DELTA",
    "reason": "--reason",
}
"""Stock adjustment fields and the `catalog adjust` arguments that fill them, for errors."""

DISPATCH_ARGUMENTS = {"order_id": "ORDER_ID", "shipment_id": "SHIPMENT_ID"}
"""Dispatch fields and the `fulfillment dispatch` arguments that fill them, for errors."""


def stock_delta(text: str) -> int:
    """argparse type: a change in units with its sign, `+5` or `-3`.

    The sign is required so that a change is never mistaken for the new on-hand
    level (a level is what `catalog.stock` carries, and it replaces on hand).
    """
    if not SIGNED_UNITS.fullmatch(text):
        raise argparse.ArgumentTypeError(
            "expected a change in units with its sign, e.g. +5 or -3 (the change, not the new "
            f"on-hand level); got {text!r}"
        )
    delta = int(text)
    if delta == 0:
        raise argparse.ArgumentTypeError(
            f"expected a change other than 0, e.g. +5 or -3: an adjustment of 0 units changes "
            f"nothing; got {text!r}"
        )
    return delta


def shown(text: str) -> str:
    """A value as an error message quotes it: in full if short, else by its length."""
    return repr(text) if len(text) <= 40 else f"{len(text)} characters"


def adjustment_reason(text: str) -> str:
    """argparse type: why on-hand changed, for whoever reads the stock's history later."""
    reason = text.strip()
    if not 1 <= len(reason) <= REASON_MAX_CHARS:
        raise argparse.ArgumentTypeError(
            f"expected why the stock changed in 1-{REASON_MAX_CHARS} characters, e.g. "
            f"'breakage' or 'count correction'; got {shown(text)}"
        )
    return reason


def planned_shipment_id(text: str) -> str:
    """argparse type: a shipment id as fulfillment planned it (`shipments` on orders.status)."""
    if not 1 <= len(text) <= SHIPMENT_ID_MAX_CHARS or text != text.strip():
        raise argparse.ArgumentTypeError(
            f"expected a shipment id of 1-{SHIPMENT_ID_MAX_CHARS} characters without surrounding "
            f"spaces, as planned on orders.status, e.g. web-000123-1; got {shown(text)}"
        )
    return text


def cmd_catalog_adjust(args: argparse.Namespace) -> int:
    """One relative change to on-hand stock, as a WMS reports breakage or a recount."""
    from shared.contract import StockAdjustment
    from shared.topics import STOCK_ADJUSTMENTS

    return send_one(
        "catalog adjust",
        STOCK_ADJUSTMENTS,
        lambda: StockAdjustment.new(
            sku=args.sku, warehouse_id=args.warehouse, delta=args.delta, reason=args.reason
        ),
        lambda error: argument_error(error, ADJUSTMENT_ARGUMENTS),
        lambda a: f"{a.sku} in {a.warehouse_id}: {a.delta:+d} on hand ({a.reason})",
    )


def cmd_fulfillment_dispatch(args: argparse.Namespace) -> int:
    """What a WMS sends when a shipment leaves the dock; for ops and demos without one."""
    from shared.contract import ShipmentDispatched
    from shared.topics import DISPATCHES

    return send_one(
        "fulfillment dispatch",
        DISPATCHES,
        lambda: ShipmentDispatched.new(order_id=args.order_id, shipment_id=args.shipment_id),
        lambda error: argument_error(error, DISPATCH_ARGUMENTS),
        lambda d: f"shipment {d.shipment_id} of order {d.order_id} left the warehouse",
    )


DELEGATION_OPTIONS = {
    "account_id": "--account",
    "delegator_id": "--from",
    "delegate_id": "--to",
    "starts_at": "--starts",
    "ends_at": "--until",
    "reason": "--reason",
}
"""Delegation fields and the `approvals delegate` options that fill them, for error messages."""


def contract_id(example: str) -> Callable[[str], str]:
    """An argparse type for an id as the contract spells it (`shared.contract.Id`); argparse
    names the argument when a value is not one, and the message shows `example`."""
    from pydantic import TypeAdapter

    from shared.contract import Id

    ids = TypeAdapter(Id)

    def parse(text: str) -> str:
        try:
            return ids.validate_python(text)
        except ValidationError:
            raise argparse.ArgumentTypeError(
                f"expected an id of 1-64 letters, digits, '.', '_', ':' or '-' that starts with "
                f"a letter or digit, e.g. {example}; got {text!r}"
            ) from None

    return parse


member_id = contract_id("acme-manager")
"""argparse type: a member id, e.g. acme-manager."""


def positive_hours(text: str) -> timedelta:
    """argparse type: `--ttl 8` or `--ttl 0.5` hours, at most a year."""
    try:
        hours = float(text)
    except ValueError:
        hours = float("nan")
    if not 0 < hours <= 24 * 366:
        raise argparse.ArgumentTypeError(
            f"expected a number of hours greater than 0 (at most 8784), e.g. 8 or 0.5; got {text!r}"
        )
    return timedelta(hours=hours)


def rfc3339(text: str) -> datetime:
    """argparse type: an RFC 3339 time with its zone, e.g. 2026-12-24T17:00:00Z."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise argparse.ArgumentTypeError(
            "expected an RFC 3339 time with a zone, e.g. 2026-12-24T17:00:00Z or "
            f"2026-12-24T18:00:00+01:00; got {text!r}"
        )
    return moment.astimezone(UTC)


def cmd_approvals_token(args: argparse.Namespace) -> int:
    from shared.tokens import DEFAULT_TTL, issue_token

    settings = load_settings()
    print(issue_token(settings.approval_token_secret, args.approver_id, args.ttl or DEFAULT_TTL))
    return 0


def delegation_error(error: ValidationError) -> str:
    """A `Delegation` validation error in the words of the command line (its options)."""
    parts = []
    for problem in error.errors(include_url=False):
        field = str(problem["loc"][0]) if problem["loc"] else ""
        message = str(problem["msg"]).removeprefix("Value error, ")
        if field in DELEGATION_OPTIONS:
            parts.append(f"{DELEGATION_OPTIONS[field]}: {message}")
        elif "ends_at must be after starts_at" in message:
            parts.append(
                "--until must be after --starts (default: now); to end a delegation early, "
                "send one whose --starts and --until are both in the past"
            )
        elif "delegate_id" in message:
            parts.append("--to: an approver cannot delegate to themselves")
        else:
            parts.append(message)
    return "; ".join(parts)


def cmd_approvals_delegate(args: argparse.Namespace) -> int:
    from shared.topics import DELEGATIONS

    starts = args.starts if args.starts is not None else datetime.now(UTC)
    return send_one(
        "approvals delegate",
        DELEGATIONS,
        lambda: Delegation.new(
            account_id=args.account,
            delegator_id=args.delegator,
            delegate_id=args.delegate,
            starts_at=starts,
            ends_at=args.until,
            reason=args.reason,
        ),
        delegation_error,
        delegation_said,
    )


def delegation_said(delegation: Delegation) -> str:
    who = f"{delegation.delegate_id} for {delegation.delegator_id} in {delegation.account_id}"
    if delegation.ends_at <= datetime.now(UTC):
        return f"delegation ended: {who} no longer decides"
    return (
        f"{who}: decides from {delegation.starts_at.isoformat()} "
        f"until {delegation.ends_at.isoformat()}"
    )


def add_catalog_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    catalog = commands.add_parser("catalog", help="product master data and stock")
    actions = catalog.add_subparsers(dest="action", required=True)
    importer = actions.add_parser(
        "import", help="validate a product export (.csv or .jsonl) and publish every row"
    )
    importer.add_argument("file")
    importer.set_defaults(run=cmd_catalog_import)
    adjust = actions.add_parser(
        "adjust",
        help="change a SKU's on-hand stock in one warehouse by DELTA units",
        description="Publish a stock adjustment on catalog.stock_adjustments, as a WMS reports "
        "a count correction, breakage or a return: catalog adds DELTA to on hand once. An "
        "adjustment that would take on hand below 0 is dead-lettered with the reason. To set "
        "on hand to a level instead, the WMS publishes catalog.stock.",
    )
    adjust.add_argument("sku", type=contract_id("BOLT-M8-100"), metavar="SKU")
    adjust.add_argument("warehouse", type=contract_id("dc-kassel"), metavar="WAREHOUSE")
    adjust.add_argument(
        "delta", type=stock_delta, metavar="DELTA", help="units with their sign, e.g. +5 or -3"
    )
    adjust.add_argument(
        "--reason",
        required=True,
        type=adjustment_reason,
        metavar="TEXT",
        help=f"why, e.g. 'breakage' or 'count correction' (at most {REASON_MAX_CHARS} characters)",
    )
    adjust.set_defaults(run=cmd_catalog_adjust)


def add_fulfillment_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    fulfillment = commands.add_parser("fulfillment", help="what the warehouse reports")
    actions = fulfillment.add_subparsers(dest="action", required=True)
    dispatch = actions.add_parser(
        "dispatch",
        help="confirm that a planned shipment left the warehouse (what a WMS sends)",
        description="Publish a dispatch confirmation on fulfillment.dispatches, as the WMS does "
        "when a shipment leaves the dock: fulfillment reports the order shipped (once per "
        "shipment) and catalog commits the shipment's stock. For ops and demos without a WMS.",
    )
    dispatch.add_argument("order_id", type=contract_id("web-000123"), metavar="ORDER_ID")
    dispatch.add_argument(
        "shipment_id",
        type=planned_shipment_id,
        metavar="SHIPMENT_ID",
        help="as planned on orders.status, e.g. web-000123-1",
    )
    dispatch.set_defaults(run=cmd_fulfillment_dispatch)


def add_approvals_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    approvals = commands.add_parser(
        "approvals", help="approver tokens and delegations (docs/approvals.md)"
    )
    actions = approvals.add_subparsers(dest="action", required=True)
    token = actions.add_parser(
        "token",
        help="print a bearer token for the approvals API and inbox page",
        description="Print a token whose subject is APPROVER, signed with APPROVALS_TOKEN_SECRET "
        "(use the same environment as the approvals service). Use it as "
        "'Authorization: Bearer <token>' or paste it into the inbox page.",
    )
    token.add_argument("approver_id", type=member_id, help="the approver's member id")
    token.add_argument(
        "--ttl",
        type=positive_hours,
        default=None,
        metavar="HOURS",
        help="how long the token is valid, in hours (default: 8)",
    )
    token.set_defaults(run=cmd_approvals_token)
    delegate = actions.add_parser(
        "delegate",
        help="let one member decide in another's name for a while (out of office)",
        description="Publish a delegation on approvals.delegations: while STARTS <= now < UNTIL, "
        "DELEGATE may decide in DELEGATOR's name. A delegator's latest delegation replaces "
        "the previous one.",
    )
    delegate.add_argument("--account", required=True, type=member_id, metavar="ACCOUNT")
    delegate.add_argument(
        "--from", dest="delegator", required=True, type=member_id, metavar="DELEGATOR"
    )
    delegate.add_argument(
        "--to", dest="delegate", required=True, type=member_id, metavar="DELEGATE"
    )
    delegate.add_argument(
        "--until", required=True, type=rfc3339, metavar="TIME", help="RFC 3339 end (exclusive)"
    )
    delegate.add_argument(
        "--starts", type=rfc3339, default=None, metavar="TIME", help="RFC 3339 start (default: now)"
    )
    delegate.add_argument("--reason", default=None, help="e.g. 'holiday' (at most 200 characters)")
    delegate.set_defaults(run=cmd_approvals_delegate)


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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
