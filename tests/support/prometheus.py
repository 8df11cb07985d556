"""A real Prometheus (and promtool) for tests, from Debian's ``prometheus`` package.

Why this exists: dashboards and alerts are code too, and only Prometheus itself
proves that a query parses, that it finds the series the services export under
the labels the ServiceMonitor gives them, and that the alert rules load. Like
``tests/support/postgres.py`` this runs the machine's own binary as a
subprocess, on a free port of 127.0.0.1, with its data in a temp dir; ``.ci/run``
apt-installs ``prometheus`` (which ships ``promtool`` too) when it is missing.

One source of truth for the alerts: the PrometheusRule in
``deploy/k8s/components/prometheus``, whose ``spec`` is a plain Prometheus rules
file; ``write_rules_file`` hands it to promtool and to the server as it is.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_COMPONENT = ROOT / "deploy" / "k8s" / "components" / "prometheus"
PROMETHEUS_RULE = PROMETHEUS_COMPONENT / "prometheusrule.yaml"
ALERT_TESTS = PROMETHEUS_COMPONENT / "alerts.test.yaml"
RULES_FILE_NAME = "tradelane.rules.yaml"
"""The name `alerts.test.yaml` loads (`rule_files`)."""


def tool(name: str) -> str:
    """The path of `prometheus` or `promtool`; a missing one fails the test, never skips it."""
    debian = Path("/usr/bin") / name  # also when PATH lacks /usr/bin
    found = shutil.which(name) or (str(debian) if debian.exists() else None)
    if found is None:
        pytest.fail(
            f"{name} not found: apt-get install prometheus (Debian's package has prometheus "
            "and promtool; .ci/run installs it)",
            pytrace=False,
        )
    return found


def alert_groups() -> list[dict[str, Any]]:
    """The PrometheusRule's rule groups: a Prometheus rules file's `groups`."""
    rule = yaml.safe_load(PROMETHEUS_RULE.read_text())
    groups: list[dict[str, Any]] = rule["spec"]["groups"]
    return groups


def alerts() -> dict[str, dict[str, Any]]:
    """Every alerting rule by its name."""
    return {r["alert"]: r for group in alert_groups() for r in group["rules"] if "alert" in r}


def write_rules_file(folder: Path) -> Path:
    path = folder / RULES_FILE_NAME
    path.write_text(yaml.safe_dump({"groups": alert_groups()}, sort_keys=False))
    return path


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("promtool"), *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


@dataclass(frozen=True)
class Target:
    """One service's /metrics, labelled as the ServiceMonitor's scrape would label it.

    The Prometheus Operator names the job after the Kubernetes Service and adds
    `namespace`, `service`, `pod`, `container` and `endpoint` target labels; a
    metric's own `service` label then shows as `exported_service`, just as here.
    """

    service: str
    port: int
    namespace: str

    def scrape_config(self) -> dict[str, Any]:
        return {
            "job_name": self.service,
            "static_configs": [
                {
                    "targets": [f"127.0.0.1:{self.port}"],
                    "labels": {
                        "namespace": self.namespace,
                        "service": self.service,
                        "pod": f"{self.service}-0",
                        "container": self.service,
                        "endpoint": "http",
                    },
                }
            ],
        }


class PrometheusError(AssertionError):
    pass


class LocalPrometheus:
    """`prometheus` scraping `targets` every second and evaluating the alert rules."""

    def __init__(self, folder: Path, port: int, targets: Sequence[Target]) -> None:
        self.folder, self.port, self.targets = folder, port, targets
        self.url = f"http://127.0.0.1:{port}"
        self.log = folder / "prometheus.log"
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> LocalPrometheus:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, timeout: float = 30.0) -> None:
        rules = write_rules_file(self.folder)
        config = self.folder / "prometheus.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "rule_files": [str(rules)],
                    "scrape_configs": [target.scrape_config() for target in self.targets],
                }
            )
        )
        with self.log.open("wb") as log:
            self._process = subprocess.Popen(
                [
                    tool("prometheus"),
                    f"--config.file={config}",
                    f"--storage.tsdb.path={self.folder / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--storage.tsdb.retention.time=1h",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.wait_until("Prometheus to be ready", lambda: self._ready(), timeout)
        self.wait_until("every target to be scraped", self._all_scraped, timeout)

    def _all_scraped(self) -> bool:
        """Each target scraped once: counters are seen at their start, before any test acts."""
        active = self.api("targets")["data"]["activeTargets"]
        return len(active) == len(self.targets) and all(t["health"] == "up" for t in active)

    def _ready(self) -> bool:
        if self._process is not None and self._process.poll() is not None:
            said = self.log.read_text()[-3000:]
            raise PrometheusError(f"prometheus exited with {self._process.returncode}:\n{said}")
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, ConnectionError):
            return False

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def api(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        """A GET on the HTTP API; an error answer (a query that does not parse) is returned
        with its `status` and `error`, not raised."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=10) as r:
                answer: dict[str, Any] = json.loads(r.read())
        except urllib.error.HTTPError as error:
            answer = json.loads(error.read() or b'{"status": "error"}')
        return answer

    def query(self, expr: str) -> dict[str, Any]:
        return self.api("query", {"query": expr})

    @staticmethod
    def wait_until(what: str, condition: Callable[[], Any], timeout: float) -> Any:
        """Poll `condition` (Prometheus has no push to wait on) until truthy or the deadline."""
        deadline = time.monotonic() + timeout
        while not (result := condition()):
            if time.monotonic() > deadline:
                raise PrometheusError(f"timed out after {timeout:.0f}s waiting for {what}")
            time.sleep(0.5)
        return result
