"""Render every overlay and component of deploy/k8s and validate every object.

Built-in kinds are validated against the Kubernetes OpenAPI schemas that
`kubernetes-validate` bundles (strict: an unknown field is an error), for the oldest
Kubernetes we support and the newest it knows; custom resources against their CRD's
openAPIV3Schema (made strict the same way). A kind with no schema is an error, never
skipped. `python -m tools.k8s.check` prints what it rendered and every problem.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

from tools.k8s import toolchain
from tools.k8s.registry import ROOT

K8S_DIR = ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
"""The oldest Kubernetes the manifests support and the newest kubernetes-validate knows."""


def components() -> list[str]:
    return sorted(p.parent.name for p in (K8S_DIR / "components").glob("*/kustomization.yaml"))


def build(directory: Path) -> list[dict[str, Any]]:
    done = subprocess.run(
        [str(toolchain.kustomize()), "build", str(directory)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"kustomize build {directory} failed:\n{done.stderr}")
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def render_overlay(name: str) -> list[dict[str, Any]]:
    return build(K8S_DIR / "overlays" / name)


def render_component(name: str) -> list[dict[str, Any]]:
    """The base with one component: each component must stand on the base alone."""
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "kustomization.yaml").write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "kustomize.config.k8s.io/v1beta1",
                    "kind": "Kustomization",
                    "resources": [os.path.relpath(K8S_DIR / "base", folder)],
                    "components": [os.path.relpath(K8S_DIR / "components" / name, folder)],
                }
            )
        )
        return build(Path(folder))


def strict(schema: Any) -> Any:
    """A CRD schema refusing unknown fields, as the API server's strict field validation does."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    tightened = {key: strict(value) for key, value in schema.items()}
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        tightened["additionalProperties"] = False
    return tightened


@cache
def _crd_validators() -> dict[tuple[str, str], jsonschema.protocols.Validator]:
    validators = {}
    for key, schema in toolchain.crd_schemas().items():
        full = copy.deepcopy(strict(schema))
        full.setdefault("properties", {}).update(
            apiVersion={"type": "string"}, kind={"type": "string"}, metadata={"type": "object"}
        )
        validators[key] = jsonschema.Draft7Validator(full)
    return validators


def name_of(obj: dict[str, Any]) -> str:
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


def problems_of(obj: dict[str, Any]) -> list[str]:
    """Every schema error of one object; an object of a kind without a schema is one."""
    key = (obj.get("apiVersion", ""), obj.get("kind", ""))
    if key in _crd_validators():
        return [
            f"{name_of(obj)}: {'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in _crd_validators()[key].iter_errors(obj)
        ]
    found = []
    for version in KUBERNETES_VERSIONS:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            return [f"{name_of(obj)}: no schema for {key[0]} {key[1]}: vendor its CRD"]
        except kubernetes_validate.ValidationError as error:
            found.append(f"{name_of(obj)} (Kubernetes {version}): {error}")
    return found


def targets() -> dict[str, list[dict[str, Any]]]:
    rendered = {f"overlays/{name}": render_overlay(name) for name in OVERLAYS}
    rendered.update({f"components/{name}": render_component(name) for name in components()})
    return rendered


def main() -> int:
    failures = 0
    for target, objects in targets().items():
        problems = [p for obj in objects for p in problems_of(obj)]
        print(f"{target}: {len(objects)} objects, {len(problems)} problems")
        for problem in problems:
            print(f"  {problem}")
        failures += len(problems)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
