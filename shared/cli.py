"""`tradelane`: the command line for shops, ops and developers.

tradelane topics create      create every topic of the registry (and .dlq twins)
tradelane topics list        show the registry: name, key, writer, compaction
tradelane publish FILE.jsonl validate each line against the contract, then send
tradelane seed               publish the demo reference data set
tradelane schemas [--check]  write (or check) the JSON Schemas in schemas/
tradelane demo               the whole system with a demo shop (`make run`)
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from shared.contract import Event
from shared.settings import load_settings
from shared.topics import ALL_TOPICS, TopicNames, TopicSpec, create_topics

TOPICS_BY_NAME = {spec.name: spec for spec in ALL_TOPICS}


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
    from shared.publisher import EventPublisher

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


def cmd_seed(_: argparse.Namespace) -> int:
    from shared.publisher import EventPublisher
    from shared.seed import publish_reference_data

    settings = load_settings()
    with EventPublisher(settings.kafka_bootstrap_servers, TopicNames(settings.topic_prefix)) as out:
        counts = publish_reference_data(out)
    print("seeded " + ", ".join(f"{n} {topic}" for topic, n in counts.items()))
    return 0


def cmd_schemas(args: argparse.Namespace) -> int:
    from shared.schemas import SCHEMA_DIR, drifted_schemas, write_schemas

    if args.check:
        drifted = drifted_schemas()
        for name in drifted:
            print(f"{SCHEMA_DIR / name} differs from the models", file=sys.stderr)
        return 1 if drifted else 0
    print(f"wrote {len(write_schemas())} schema(s) to {SCHEMA_DIR}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from shared.demo import run_demo

    return run_demo(orders=args.orders, interval=args.interval)


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
    commands.add_parser("seed", help="publish the demo reference data").set_defaults(run=cmd_seed)
    schemas = commands.add_parser("schemas", help="write the JSON Schemas to schemas/")
    schemas.add_argument("--check", action="store_true", help="fail if schemas/ is out of date")
    schemas.set_defaults(run=cmd_schemas)
    demo = commands.add_parser("demo", help="run Kafka, the services and a demo shop")
    demo.add_argument("--orders", type=int, default=0, help="stop after N orders (0: until Ctrl-C)")
    demo.add_argument("--interval", type=float, default=1.5, help="seconds between demo orders")
    demo.set_defaults(run=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
