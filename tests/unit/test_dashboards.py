"""The Grafana dashboards are generated (tools/dashboards.py) and select what the manifests label.

Whether every query returns data from the running services is proven against a
real Prometheus in tests/e2e/test_observability.py; here, what holds without one.
"""

from __future__ import annotations

import json
import re

import pytest

from tools import dashboards

SELECTORS = re.compile(r"\{([^{}]*)\}")
"""Label selectors in PromQL; legends' `{{label}}` are never in an `expr`."""


def test_the_committed_dashboards_are_what_the_generator_builds() -> None:
    assert dashboards.drifted_files() == [], (
        "run `make dashboards` and commit deploy/k8s/components/grafana/dashboards"
    )


@pytest.mark.parametrize("board", dashboards.BOARDS, ids=lambda board: board.uid)
def test_every_query_selects_the_chosen_namespace_and_services(
    board: dashboards.Board,
) -> None:
    model = dashboards.build(board)
    queries = list(dashboards.panel_queries(model))
    assert queries
    for title, expr in queries:
        selectors = SELECTORS.findall(expr)
        assert selectors, f"{title}: {expr} selects nothing"
        for selector in selectors:
            assert 'namespace="$namespace"' in selector, f"{title}: {expr}"
            assert 'service=~"$service"' in selector, f"{title}: {expr}"


@pytest.mark.parametrize("board", dashboards.BOARDS, ids=lambda board: board.uid)
def test_every_dashboard_has_the_variables_and_distinct_panel_ids(
    board: dashboards.Board,
) -> None:
    model = json.loads(dashboards.rendered(board))
    variables = {v["name"]: v for v in model["templating"]["list"]}
    assert set(variables) == {"datasource", "namespace", "service"}
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["service"]["multi"] and variables["service"]["includeAll"]
    ids = [panel["id"] for panel in model["panels"]]
    assert len(ids) == len(set(ids)) and 0 not in ids
    for panel in model["panels"]:
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
        for target in panel.get("targets", []):
            assert target["refId"] and target["datasource"]["uid"] == "${datasource}"
