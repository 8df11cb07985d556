"""JSON Schemas of the public contract, generated from the pydantic models into `schemas/`.

Beside them `schemas/asyncapi.json`, the AsyncAPI 3 document of every channel
(`tools.asyncapi`), for integrators whose tools read AsyncAPI.

The committed files are what shops and other teams read; a unit test regenerates
them in memory and fails on any drift, so the models and the docs never disagree.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from shared.contract import Event
from shared.topics import ALL_TOPICS, DEAD_LETTER_MODEL
from tools import asyncapi

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"


def file_name(model: type[Event]) -> str:
    """`orders.submitted/v1` -> `orders.submitted.v1.json`: the name says the major version."""
    schema = model.model_fields["schema_"].annotation.__args__[0]  # type: ignore[union-attr]
    return f"{str(schema).replace('/', '.')}.json"


def generated_schemas() -> dict[str, str]:
    """File name → JSON text, one schema per topic plus the dead-letter envelope, and the
    AsyncAPI document."""
    models = {file_name(model): model for model in [spec.model for spec in ALL_TOPICS]}
    models[file_name(DEAD_LETTER_MODEL)] = DEAD_LETTER_MODEL
    files = {
        name: json.dumps(
            model.model_json_schema(by_alias=True, mode="validation"), indent=2, sort_keys=True
        )
        + "\n"
        for name, model in sorted(models.items())
    }
    files[asyncapi.FILE_NAME] = asyncapi.asyncapi_text()
    return files


def write_schemas(directory: Path = SCHEMA_DIR) -> list[str]:
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.json"):
        stale.unlink()
    files = generated_schemas()
    for name, text in files.items():
        (directory / name).write_text(text)
    return list(files)


def drifted_schemas(directory: Path = SCHEMA_DIR) -> list[str]:
    """Names of committed schema files that differ from the models (or are missing/extra)."""
    files = generated_schemas()
    on_disk = {p.name: p.read_text() for p in directory.glob("*.json")}
    return sorted(n for n in set(files) | set(on_disk) if files.get(n) != on_disk.get(n))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tools.schemas [--check]`` (``make schemas``)."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.schemas", description="write the JSON Schemas to schemas/"
    )
    parser.add_argument("--check", action="store_true", help="fail if schemas/ is out of date")
    args = parser.parse_args(argv)
    if args.check:
        drifted = drifted_schemas()
        for name in drifted:
            print(f"{SCHEMA_DIR / name} differs from the models", file=sys.stderr)
        return 1 if drifted else 0
    print(f"wrote {len(write_schemas())} schema(s) to {SCHEMA_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
