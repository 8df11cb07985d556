"""The AsyncAPI 3 document for integrators: generated, committed, valid, and true to the code.

`test_contract.py` already fails when `schemas/asyncapi.json` drifts from what
`tools.asyncapi` generates; these tests check the document itself: it validates
against the AsyncAPI 3.0.0 JSON Schema (npm `@asyncapi/specs`, locked in
tools/asyncapi-specs, installed by `make install`), every reference in it
resolves, its payloads accept and refuse what the models do, and it says who
sends and who receives each topic as the registry and the services' handlers do.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from services.approvals.handlers import HANDLERS as APPROVALS
from services.catalog.handlers import HANDLERS as CATALOG
from services.fulfillment.handlers import HANDLERS as FULFILLMENT
from services.pricing.handlers import HANDLERS as PRICING
from shared.topics import (
    ALL_TOPICS,
    DEAD_LETTER_MODEL,
    ORDERS_STATUS,
    ORDERS_SUBMITTED,
    QUOTE_EVENTS,
)
from tools.asyncapi import (
    ALL_SERVICES,
    FILE_NAME,
    SPECS_DIR,
    asyncapi_document,
    validation_errors,
)
from tools.schemas import SCHEMA_DIR, drifted_schemas
from tools.seed import b2b_order

DOCUMENT_URI = "urn:tradelane:asyncapi"


@pytest.fixture(scope="module")
def committed() -> dict[str, Any]:
    document: dict[str, Any] = json.loads((SCHEMA_DIR / FILE_NAME).read_text())
    return document


def test_the_asyncapi_schema_comes_from_the_locked_npm_package() -> None:
    lock = json.loads((SPECS_DIR.parents[3] / "package-lock.json").read_text())
    pinned = lock["packages"]["node_modules/@asyncapi/specs"]["version"]
    installed = json.loads((SPECS_DIR.parent / "package.json").read_text())["version"]
    assert installed == pinned, "run `make install` (npm ci --prefix tools/asyncapi-specs)"
    assert (SPECS_DIR / "3.0.0.json").is_file()


def test_the_committed_document_is_generated_from_the_registry_and_models() -> None:
    assert FILE_NAME not in drifted_schemas(), "run `make schemas` and commit schemas/"


def test_the_committed_document_is_valid_asyncapi_3(committed: dict[str, Any]) -> None:
    assert committed["asyncapi"] == "3.0.0"
    assert validation_errors(committed) == []


@pytest.mark.parametrize(
    ("where", "breakage"),
    [
        ("an operation with AsyncAPI 2's action", ("operations", "publish")),
        ("an operation without its channel", ("channel", None)),
        ("a Kafka message key that is not a schema", ("key", 7)),
        ("a missing info.version", ("info", None)),
    ],
)
def test_the_validator_refuses_a_broken_document(
    committed: dict[str, Any], where: str, breakage: tuple[str, Any]
) -> None:
    broken = copy.deepcopy(committed)
    kind, value = breakage
    if kind == "operations":
        next(iter(broken["operations"].values()))["action"] = value
    elif kind == "channel":
        del next(iter(broken["operations"].values()))["channel"]
    elif kind == "key":
        broken["components"]["messages"]["OrderSubmitted"]["bindings"]["kafka"]["key"] = value
    else:
        del broken["info"]["version"]
    assert validation_errors(broken), where


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


def test_every_reference_resolves_inside_the_document(committed: dict[str, Any]) -> None:
    refs = set(_refs(committed))
    assert refs
    for ref in refs:
        assert ref.startswith("#/"), ref
        node: Any = committed
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]


def _payload_validator(document: dict[str, Any], message: str) -> Draft202012Validator:
    registry: Registry[Any] = Registry().with_resource(
        DOCUMENT_URI, Resource.from_contents(document, default_specification=DRAFT202012)
    )
    payload = document["components"]["messages"][message]["payload"]
    return Draft202012Validator(
        {"$ref": DOCUMENT_URI + payload["$ref"]},
        registry=registry,
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )


def test_a_payload_takes_what_the_model_takes_and_refuses_what_it_refuses(
    committed: dict[str, Any],
) -> None:
    validator = _payload_validator(committed, "OrderSubmitted")
    order = json.loads(b2b_order("web-1", [("BOLT-M8-100", 40)]).to_bytes())
    assert list(validator.iter_errors(order)) == []
    order["lines"][0]["quantity"] = 0
    assert list(validator.iter_errors(order))
    del order["lines"][0]["quantity"]
    order["refrence"] = "typo"
    assert list(validator.iter_errors(order))


def test_every_topic_and_its_dead_letter_twin_is_a_channel(committed: dict[str, Any]) -> None:
    channels = committed["channels"]
    assert set(channels) == {n for s in ALL_TOPICS for n in (s.name, f"{s.name}.dlq")}
    messages = committed["components"]["messages"]
    for spec in ALL_TOPICS:
        message = messages[spec.model.__name__]
        carried = ORDERS_STATUS if spec.repeats else spec  # the same report, carried again
        assert message["title"].startswith(f"{carried.name}/v")
        assert message["payload"] == {"$ref": f"#/components/schemas/{spec.model.__name__}"}
        assert spec.key in message["bindings"]["kafka"]["key"]["description"]
        assert list(channels[f"{spec.name}.dlq"]["messages"]) == [DEAD_LETTER_MODEL.__name__]
    compacted = {s.name for s in ALL_TOPICS if s.compacted}
    for name in compacted:
        policy = channels[name]["bindings"]["kafka"]["topicConfiguration"]["cleanup.policy"]
        assert policy == ["compact"], name


def _parties(document: dict[str, Any], action: str, channel: str) -> set[str]:
    return {
        op["tags"][0]["name"]
        for op in document["operations"].values()
        if op["action"] == action and op["channel"]["$ref"] == f"#/channels/{channel}"
    }


def test_senders_and_receivers_are_the_registry_writers_and_the_handlers(
    committed: dict[str, Any],
) -> None:
    services = {
        "catalog": CATALOG,
        "pricing": PRICING,
        "approvals": APPROVALS,
        "fulfillment": FULFILLMENT,
    }
    for spec in ALL_TOPICS:
        consumers = {name for name, handlers in services.items() if spec in handlers}
        external = {ORDERS_STATUS: {"shops"}, QUOTE_EVENTS: {"CRM"}}.get(spec, set())
        assert _parties(committed, "receive", spec.name) == consumers | external, spec.name
        writers = set(services) if spec.writer == ALL_SERVICES else {spec.writer}
        assert _parties(committed, "send", spec.name) == writers, spec.name
        assert _parties(committed, "send", f"{spec.name}.dlq") == consumers, spec.name
    assert _parties(committed, "send", ORDERS_SUBMITTED.name) == {"shops"}
    assert _parties(committed, "receive", ORDERS_SUBMITTED.name) == {"catalog"}


def test_the_generated_document_is_what_is_committed(committed: dict[str, Any]) -> None:
    assert asyncapi_document() == committed
