"""The AsyncAPI 3 document of the public contract, generated into `schemas/asyncapi.json`.

Built from the same sources as the JSON Schemas beside it: the topic registry
(`shared.topics`: channels, keys, writers, compaction, the `.dlq` twins) and the
pydantic models (payloads), plus who reads each topic, taken from every
service's `HANDLERS` mapping and the registry's outside readers. `tools.schemas`
writes it with the other schemas and its drift check covers it;
`tests/unit/test_asyncapi.py` validates it against the AsyncAPI 3.0.0 JSON Schema
from the npm package `@asyncapi/specs`, pinned in `tools/asyncapi-specs/package-lock.json`.
"""

from __future__ import annotations

import importlib
import json
import string
import tomllib
from pathlib import Path
from typing import Any

from pydantic.json_schema import models_json_schema

from shared.contract import Event
from shared.settings import SERVICE_WEB_PORTS
from shared.topics import ALL_TOPICS, DEAD_LETTER_MODEL, DLQ_CONFIGS, TopicSpec, topic_configs

ROOT = Path(__file__).resolve().parent.parent
FILE_NAME = "asyncapi.json"
SERVICES: tuple[str, ...] = tuple(SERVICE_WEB_PORTS)
ALL_SERVICES = "all services"
"""The registry's writer of `orders.status`: every service reports its own transitions."""
KAFKA_BINDING = "0.5.0"
SPECS_DIR = ROOT / "tools" / "asyncapi-specs" / "node_modules" / "@asyncapi" / "specs" / "schemas"
"""Where `npm ci --prefix tools/asyncapi-specs` (make install) puts the AsyncAPI JSON Schemas."""


def readers() -> dict[str, list[str]]:
    """Topic name → the services that consume it, from each `services.<name>.handlers.HANDLERS`."""
    read: dict[str, list[str]] = {}
    for service in SERVICES:
        handlers = importlib.import_module(f"services.{service}.handlers").HANDLERS
        for spec in handlers:
            read.setdefault(spec.name, []).append(service)
    return read


def writers(spec: TopicSpec) -> list[str]:
    return list(SERVICES) if spec.writer == ALL_SERVICES else [spec.writer]


def key_schema(spec: TopicSpec) -> dict[str, Any]:
    fields = [field for _, field, _, _ in string.Formatter().parse(spec.key) if field]
    named = ", ".join(f"`{field}`" for field in fields)
    return {
        "type": "string",
        "description": f"`{spec.key}`: filled from the event's {named}.",
    }


def _message_name(model: type[Event]) -> str:
    return model.__name__


def schema_id(model: type[Event]) -> str:
    """The envelope's `schema` value, e.g. `orders.submitted/v1`."""
    return str(model.model_fields["schema_"].annotation.__args__[0])  # type: ignore[union-attr]


def payload_schemas() -> tuple[dict[type[Event], dict[str, Any]], dict[str, Any]]:
    """Each model's payload (a `$ref`) and every schema they use, under `components/schemas`."""
    models: list[type[Event]] = [spec.model for spec in ALL_TOPICS] + [DEAD_LETTER_MODEL]
    refs, definitions = models_json_schema(
        [(model, "validation") for model in models],
        by_alias=True,
        ref_template="#/components/schemas/{model}",
    )
    payloads = {model: refs[(model, "validation")] for model in models}
    return payloads, dict(sorted(definitions.get("$defs", {}).items()))


def _topic_configuration(configs: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {"cleanup.policy": [configs["cleanup.policy"]]}
    if "retention.ms" in configs:
        out["retention.ms"] = int(configs["retention.ms"])
    return out


def _channel(
    name: str, title: str, description: str, message: str, configs: dict[str, str]
) -> dict[str, Any]:
    return {
        "address": name,
        "title": title,
        "description": description,
        "messages": {message: {"$ref": f"#/components/messages/{message}"}},
        "bindings": {
            "kafka": {
                "topic": name,
                "topicConfiguration": _topic_configuration(configs),
                "bindingVersion": KAFKA_BINDING,
            }
        },
    }


def _operation(party: str, action: str, channel: str, message: str, summary: str) -> dict[str, Any]:
    return {
        "action": action,
        "channel": {"$ref": f"#/channels/{channel}"},
        "summary": summary,
        "tags": [{"name": party}],
        "messages": [{"$ref": f"#/channels/{channel}/messages/{message}"}],
    }


def _version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as file:
        return str(tomllib.load(file)["project"]["version"])


def asyncapi_document() -> dict[str, Any]:
    """The whole document: one channel per topic and per `.dlq` twin, who sends, who receives."""
    payloads, schemas = payload_schemas()
    read = readers()
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    dead_letter = _message_name(DEAD_LETTER_MODEL)
    for spec in ALL_TOPICS:
        message = _message_name(spec.model)
        kind = "compacted reference data" if spec.compacted else "event stream"
        channels[spec.name] = _channel(
            spec.name,
            spec.name,
            f"{spec.description} Written by {spec.writer} ({kind}); "
            f"keyed by `{spec.key}`; values over {spec.max_bytes} bytes are dead-lettered unread.",
            message,
            topic_configs(spec),
        )
        messages[message] = {
            "name": message,
            "title": schema_id(spec.model),
            "summary": spec.description,
            "contentType": "application/json",
            "payload": payloads[spec.model],
            "bindings": {"kafka": {"key": key_schema(spec), "bindingVersion": KAFKA_BINDING}},
        }
        for party in writers(spec):
            operations[f"{party}.sends.{spec.name}"] = _operation(
                party, "send", spec.name, message, f"Written by {party}."
            )
        for party in [*read.get(spec.name, []), *spec.readers]:
            operations[f"{party}.receives.{spec.name}"] = _operation(
                party, "receive", spec.name, message, f"Read by {party}."
            )
        dlq = f"{spec.name}.dlq"
        channels[dlq] = _channel(
            dlq,
            dlq,
            f"Dead letters of {spec.name}: what a consumer could not parse, validate or "
            "handle, with the error, its source partition and offset and a bounded copy; "
            "keyed like the original. Kept four weeks for ops to inspect and replay.",
            dead_letter,
            DLQ_CONFIGS,
        )
        for party in read.get(spec.name, []):
            operations[f"{party}.sends.{dlq}"] = _operation(
                party, "send", dlq, dead_letter, f"Written by {party}: what it cannot take."
            )
    messages[dead_letter] = {
        "name": dead_letter,
        "title": schema_id(DEAD_LETTER_MODEL),
        "summary": "A message a service could not take, and why.",
        "contentType": "application/json",
        "payload": payloads[DEAD_LETTER_MODEL],
        "bindings": {
            "kafka": {
                "key": {
                    "type": "string",
                    "description": "The original message's key, unchanged.",
                },
                "bindingVersion": KAFKA_BINDING,
            }
        },
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Tradelane order events",
            "version": _version(),
            "description": (
                "The public event contract of Tradelane (docs/contract.md): UTF-8 JSON, one "
                "event per message, each with the envelope `schema`, `event_id` (the "
                "idempotency key) and `occurred_at`; money as decimal strings. Generated from "
                "the topic registry and the pydantic models by `make schemas`; do not edit. "
                "Topic names are as shown, after an optional deployment prefix "
                "(TRADELANE_TOPIC_PREFIX). Operations are tagged with the party that sends or "
                "receives."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "kafka": {
                "host": "{bootstrap}",
                "protocol": "kafka",
                "description": "The deployment's Kafka cluster (KAFKA_BOOTSTRAP_SERVERS).",
                "variables": {"bootstrap": {"default": "127.0.0.1:9092"}},
            },
            "kafka-secure": {
                "host": "{bootstrap}",
                "protocol": "kafka-secure",
                "description": (
                    "A secured cluster (KAFKA_SECURITY_PROTOCOL=SASL_SSL): TLS, and a "
                    "SCRAM-SHA-512 login per client, whose ACLs allow the topics it sends or "
                    "receives; shops log in as `tradelane-shops`. On Strimzi: the TLS listener, "
                    "9093."
                ),
                "variables": {"bootstrap": {"default": "tradelane-kafka-bootstrap:9093"}},
                "security": [{"$ref": "#/components/securitySchemes/scram"}],
            },
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages,
            "schemas": schemas,
            "securitySchemes": {
                "scram": {
                    "type": "scramSha512",
                    "description": "SCRAM-SHA-512 over TLS: KAFKA_USERNAME and KAFKA_PASSWORD "
                    "(or KAFKA_PASSWORD_FILE), the cluster's CA in KAFKA_SSL_CA_FILE.",
                }
            },
        },
    }


def asyncapi_text() -> str:
    return json.dumps(asyncapi_document(), indent=2) + "\n"


def _specs_schema(version: str) -> dict[str, Any]:
    path = SPECS_DIR / f"{version}.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: run `make install` (npm ci --prefix tools/asyncapi-specs)"
        )
    schema: dict[str, Any] = json.loads(path.read_text())
    return schema


def validation_errors(document: dict[str, Any]) -> list[str]:
    """Where `document` breaks the AsyncAPI JSON Schema of its version (offline: the package
    bundles every definition it refers to, JSON Schema draft 7 included)."""
    from jsonschema import Draft7Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT7

    schema = _specs_schema(str(document.get("asyncapi")))
    resources = [
        (uri, Resource.from_contents(body, default_specification=DRAFT7))
        for uri, body in schema["definitions"].items()
    ]
    registry: Registry[Any] = Registry().with_resources(resources)
    validator = Draft7Validator(schema, registry=registry)
    return sorted(
        f"{'/'.join(str(p) for p in error.absolute_path) or '<root>'}: {error.message}"
        for error in validator.iter_errors(document)
    )
