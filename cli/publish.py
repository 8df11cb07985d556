"""`tradelane publish FILE.jsonl`, and `send_one` for the commands that publish one event."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from pydantic import ValidationError

from shared.contract import Event
from shared.kafka_connection import KafkaConnection
from shared.settings import Settings, load_settings
from shared.topics import ALL_TOPICS, TopicNames, TopicSpec

if TYPE_CHECKING:
    from cli.publisher import EventPublisher

TOPICS_BY_NAME = {spec.name: spec for spec in ALL_TOPICS}
E = TypeVar("E", bound=Event)


class NothingSent(Exception):
    """The broker could not be reached; the message names the setting to check."""


@contextmanager
def publishing(settings: Settings) -> Iterator[EventPublisher]:
    """A publisher to the broker of the settings, flushed at the end of the block; a broker
    that refuses (a login, a record) or does not answer raises `NothingSent` naming the
    settings to check, never a traceback."""
    from kafka.errors import KafkaError

    from cli.publisher import EventPublisher

    try:
        with EventPublisher.from_settings(settings) as out:
            yield out
    except KafkaError as error:
        raise NothingSent(
            f"Kafka at {KafkaConnection.from_settings(settings).describe()} "
            f"(KAFKA_BOOTSTRAP_SERVERS, KAFKA_SECURITY_PROTOCOL) refused or did not answer: "
            f"{error}"
        ) from None


def publish_one(spec: TopicSpec, event: Event) -> str:
    """Send one event to the broker of the settings; returns the topic's name as sent to.

    For the commands that publish a single fact (a delegation, a stock
    adjustment, a dispatch): they either report the event id or say why nothing
    went out, so an operator never has to guess whether to send again.
    """
    settings = load_settings()
    try:
        with publishing(settings) as out:
            out.publish(spec, event)
    except NothingSent as error:
        raise NothingSent(f"nothing sent: {error}") from None
    return TopicNames(settings.topic_prefix).of(spec)


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
        return topic, topic.parse(text.encode())
    except ValidationError as error:
        from shared.consume import describe_validation_error

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
    try:
        with publishing(load_settings()) as out:
            for spec, event in events:
                out.publish(spec, event)
    except NothingSent as error:
        print(
            f"tradelane publish: sending failed: {error}. Events handed over before the "
            "failure may have gone out; sending the file again is safe where its lines carry "
            "event ids (each is handled once), and a line without one is a new event each time",
            file=sys.stderr,
        )
        return 1
    print(f"sent {len(events)} event(s)" + (f", skipped {len(errors)} invalid" if errors else ""))
    return 1 if errors else 0
