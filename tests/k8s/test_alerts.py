"""The alert rules proven with Prometheus' own promtool: they parse, and each alert fires when
it should and stays quiet when it should (deploy/k8s/components/prometheus/alerts.test.yaml).

The rules are the PrometheusRule's `spec`, written out as a rules file: one source of truth
for the cluster, promtool and the live Prometheus of tests/e2e/test_observability.py.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.prometheus import ALERT_TESTS, ROOT, alerts, promtool, tool, write_rules_file

RUNBOOK = ROOT / "deploy" / "k8s" / "README.md"


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    """The rules file and a copy of the unit tests side by side, as `rule_files` expects."""
    write_rules_file(tmp_path)
    shutil.copy(ALERT_TESTS, tmp_path / ALERT_TESTS.name)
    return tmp_path


def test_a_machine_without_prometheus_fails_the_tests_and_says_what_to_install() -> None:
    with pytest.raises(pytest.fail.Exception, match="apt-get install prometheus"):
        tool("promtool-that-is-not-installed")


def test_promtool_checks_the_rules(rules_dir: Path) -> None:
    done = promtool("check", "rules", "tradelane.rules.yaml", cwd=rules_dir)
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_unit_tests_of_every_alert_pass(rules_dir: Path) -> None:
    done = promtool("test", "rules", ALERT_TESTS.name, cwd=rules_dir)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_has_a_case_where_it_fires_and_one_where_it_stays_quiet() -> None:
    cases: dict[str, dict[str, int]] = {name: {"fires": 0, "quiet": 0} for name in alerts()}
    suite: dict[str, Any] = yaml.safe_load(ALERT_TESTS.read_text())
    for group in suite["tests"]:
        for case in group.get("alert_rule_test", []):
            assert case["alertname"] in cases, f"a test of an unknown alert: {case['alertname']}"
            cases[case["alertname"]]["fires" if case.get("exp_alerts") else "quiet"] += 1
    untested = {name: seen for name, seen in cases.items() if not (seen["fires"] and seen["quiet"])}
    assert untested == {}, f"alerts without a firing and a quiet case in {ALERT_TESTS.name}"


def github_anchors(markdown: str) -> set[str]:
    """Heading anchors as GitHub makes them: lower case, punctuation dropped, spaces to '-'."""
    headings = re.findall(r"^#{1,6} +(.+?) *$", markdown, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("name", sorted(alerts()))
def test_every_alert_has_a_severity_a_summary_and_a_runbook_section(name: str) -> None:
    rule = alerts()[name]
    assert rule["labels"]["severity"] in {"critical", "warning"}
    assert rule["annotations"]["summary"] and rule["annotations"]["description"]
    page, _, anchor = rule["annotations"]["runbook_url"].partition("#")
    assert (ROOT / page) == RUNBOOK and anchor == name.lower()
    assert anchor in github_anchors(RUNBOOK.read_text()), f"no '### {name}' in {RUNBOOK}"
