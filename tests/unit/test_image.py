"""The Dockerfile's promises, checked without a Docker engine.

`image_problems()` reads a Dockerfile's text and lists every promise it breaks:
each base pinned to an exact release, a numeric non-root user in the final
stage, no build tools and no dev extra in the image, the locked dependency set
(constraints.txt), the venv from a builder on the same base. The committed Dockerfile must have
none; each broken variant below must be caught. Separately, every
`services.<name>` module the image is started with (the Dockerfile's CMD, the
Makefile, anything under deploy/) must be a package with a `__main__.py` that
the installed distribution includes.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"

EXACT_TAG = re.compile(r"^\d+\.\d+\.\d+(?:-[a-z0-9][a-z0-9.-]*)?$")
"""`3.11.17-slim-trixie`: a patch release, and a variant naming its Debian release."""
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
BUILD_TOOLS = re.compile(
    r"\b(gcc|g\+\+|clang|build-essential|make|cmake|cargo|rustc|python3?-dev|libpq-dev)\b"
)
DEV_EXTRA = re.compile(r"\[[^\]]*\bdev\b[^\]]*\]")
SERVICE_MODULE = re.compile(r"(?<![\w./-])services(?:\.[A-Za-z_]\w*)+")
STARTERS = ("Dockerfile", "Makefile", "deploy")
"""Where the image is started: its own CMD, make targets, the Kubernetes manifests."""


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def parse(text: str) -> list[Stage]:
    """The stages of a Dockerfile: continuation lines joined, comments dropped."""
    logical, pending = [], ""
    for line in text.splitlines():
        if not pending and line.lstrip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    stages: list[Stage] = []
    for line in filter(str.strip, logical):
        keyword, _, args = line.strip().partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            words = [w for w in args.split() if not w.startswith("--")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name))
        elif stages:
            stages[-1].instructions.append((keyword, args))
    return stages


def _exec_form(args: str) -> list[str]:
    try:
        value = json.loads(args)
    except ValueError:
        return shlex.split(args)
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def pin_problems(image: str) -> list[str]:
    reference, _, digest = image.partition("@")
    name = reference.rpartition("/")[2]
    tag = name.partition(":")[2]
    if "$" in image or not EXACT_TAG.match(tag):
        return [f"FROM {image}: not pinned to an exact version"]
    if digest and not DIGEST.match(digest):
        return [f"FROM {image}: malformed digest"]
    return []


def image_problems(text: str) -> list[str]:
    stages = parse(text)
    if not stages:
        return ["no FROM"]
    problems: list[str] = []
    stage_names: set[str] = set()
    for stage in stages:
        if stage.image not in stage_names:  # else built on an earlier stage of this file
            problems += pin_problems(stage.image)
        if stage.name:
            stage_names.add(stage.name)
    bases = {stage.image for stage in stages if stage.image not in stage_names}
    if len(bases) > 1:
        problems.append(f"stages on different bases {sorted(bases)}: the venv needs its own python")
    final = stages[-1]
    users = final.args("USER")
    if not users:
        problems.append("final stage: no USER (it would run as root)")
    else:
        uid, _, gid = users[-1].partition(":")
        if not uid.isdigit() or (gid and not gid.isdigit()):
            problems.append(f"final stage: USER {users[-1]} is not numeric")
        elif int(uid) == 0 or (gid and int(gid) == 0):
            problems.append(f"final stage: USER {users[-1]} is root")
    for run in final.args("RUN"):
        if BUILD_TOOLS.search(run):
            problems.append(f"final stage installs build tools: RUN {run}")
        if re.search(r"\bpip3?\b[^&;|]*\binstall\b", run):
            problems.append(f"final stage installs packages with pip: RUN {run}")
    if not any(a.startswith("--from=") for a in final.args("COPY")):
        problems.append("final stage copies nothing from the builder (the venv)")
    for stage in stages:
        for keyword, args in stage.instructions:
            if keyword == "RUN" and DEV_EXTRA.search(args):
                problems.append(f"installs the dev extra: RUN {args}")
            if keyword == "RUN" and re.search(r"\bpip3?\b.*\binstall\b.*\s-e\s", args + " "):
                problems.append(f"editable install: RUN {args}")
    installs = [
        args
        for stage in stages[:-1]
        for args in stage.args("RUN")
        if re.search(r"\bpip3?\b[^&;|]*\binstall\b", args)
    ]
    constrained = [
        a for a in installs if re.search(r"(?:-c|--constraint)[ =]constraints\.txt\b", a)
    ]
    if not constrained:
        problems.append("no pip install uses -c constraints.txt (the locked set)")
    if not any("constraints.txt" in a for stage in stages[:-1] for a in stage.args("COPY")):
        problems.append("constraints.txt is not copied into the builder")
    entrypoint = final.args("ENTRYPOINT")
    if not entrypoint or _exec_form(entrypoint[-1]) != ["python", "-m"]:
        problems.append(
            'final stage: ENTRYPOINT is not ["python", "-m"] (the command names a module)'
        )
    return problems


def test_the_dockerfile_keeps_its_promises() -> None:
    assert image_problems(DOCKERFILE.read_text()) == []


ENTRY = 'ENTRYPOINT ["python", "-m"]'


@pytest.mark.parametrize(
    ("old", "new", "caught_as"),
    [
        ("3.11.17-slim-trixie AS runtime", "3.11-slim AS runtime", "not pinned"),
        ("python:3.11.17-slim-trixie AS builder", "python:latest AS builder", "not pinned"),
        ("python:3.11.17-slim-trixie AS runtime", "python AS runtime", "not pinned"),
        ("3.11.17-slim-trixie AS runtime", "${PY} AS runtime", "not pinned"),
        ("3.11.17-slim-trixie AS runtime", "3.11.16-slim-trixie AS runtime", "different bases"),
        ("USER 10001:10001", "USER 0", "is root"),
        ("USER 10001:10001", "USER 10001:0", "is root"),
        ("USER 10001:10001", "USER tradelane", "not numeric"),
        ("USER 10001:10001", "", "no USER"),
        (ENTRY, f"RUN apt-get update && apt-get install -y gcc\n{ENTRY}", "build tools"),
        (ENTRY, f"RUN apt-get install -y \\\n  build-essential\n{ENTRY}", "build tools"),
        (ENTRY, f"RUN pip install httpx\n{ENTRY}", "with pip"),
        ("-c constraints.txt .", "-c constraints.txt '.[dev]'", "dev extra"),
        ("-c constraints.txt .", "-c constraints.txt -e .", "editable"),
        ("-c constraints.txt .", ".", "the locked set"),
        ("COPY pyproject.toml constraints.txt ./", "COPY pyproject.toml ./", "not copied"),
        ("COPY --from=builder /opt/tradelane /opt/tradelane", "", "copies nothing"),
        (ENTRY, 'ENTRYPOINT ["sh"]', "ENTRYPOINT"),
    ],
)
def test_a_broken_promise_is_caught(old: str, new: str, caught_as: str) -> None:
    text = DOCKERFILE.read_text()
    assert old in text, f"the Dockerfile no longer has {old!r}: update this test"
    problems = image_problems(text.replace(old, new))
    assert any(caught_as in problem for problem in problems), problems


def service_modules(root: Path = ROOT) -> dict[str, list[str]]:
    """`services.<name>` module → the files that start the image with it."""
    found: dict[str, list[str]] = {}
    for starter in STARTERS:
        path = root / starter
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            if not file.exists():
                continue
            try:
                text = file.read_text()
            except UnicodeDecodeError:
                continue
            for module in SERVICE_MODULE.findall(text):
                found.setdefault(module, []).append(str(file.relative_to(root)))
    return found


def module_problems(modules: dict[str, list[str]], root: Path = ROOT) -> list[str]:
    """Modules the image is started with that it could not run."""
    with (root / "pyproject.toml").open("rb") as file:
        included = tomllib.load(file)["tool"]["setuptools"]["packages"]["find"]["include"]
    problems = []
    for module, where in sorted(modules.items()):
        package = root.joinpath(*module.split("."))
        if not (package / "__init__.py").is_file() or not (package / "__main__.py").is_file():
            problems.append(f"{module} (started in {', '.join(where)}) is no package with __main__")
        elif not any(fnmatch(module, pattern) for pattern in included):
            problems.append(f"{module} is not in the installed distribution")
    return problems


def test_every_service_the_image_is_started_with_is_a_runnable_installed_package() -> None:
    modules = service_modules()
    assert "services.catalog" in modules, "the Dockerfile's CMD names no service"
    assert module_problems(modules) == []


def test_a_manifest_naming_a_service_that_does_not_exist_is_caught(tmp_path: Path) -> None:
    (tmp_path / "deploy" / "k8s" / "base").mkdir(parents=True)
    (tmp_path / "deploy" / "k8s" / "base" / "deployments.yaml").write_text(
        'args: ["services.pricing"]\n---\ncommand: ["python", "-m", "services.invoicing"]\n'
    )
    (tmp_path / "Makefile").write_text("up:\n\tdocker run img services.catalog.app\n")
    modules = service_modules(tmp_path)
    assert set(modules) == {"services.pricing", "services.invoicing", "services.catalog.app"}
    problems = module_problems(modules)
    assert len(problems) == 2
    assert "services.invoicing" in problems[1] and "services.catalog.app" in problems[0]


def test_the_build_context_leaves_out_what_the_image_must_not_carry() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert "*" in ignored, "the context starts empty and lets in only what the image needs"
    let_in = {line[1:].rstrip("/") for line in ignored if line.startswith("!")}
    assert let_in == {"pyproject.toml", "constraints.txt", "shared", "services", "cli"}
