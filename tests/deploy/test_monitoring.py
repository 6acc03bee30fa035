"""The chart's monitoring: ServiceMonitors, PrometheusRule and Grafana dashboards, rendered by the
real helm binary; the rules checked and unit-tested by the real promtool.

- The Prometheus Operator's objects exist only where the cluster serves monitoring.coreos.com/v1,
  and only when turned on; the dashboards' ConfigMaps carry the sidecar's label.
- `promtool check rules` accepts the rendered rule file, and every dashboard query (as recording
  rules of a second file, so promtool parses them too).
- `promtool test rules` (tests/deploy/alerts_test.yaml) has a firing and a quiet case for every alert.
- Every alert's runbook_url points at a page of docs/runbooks/.
Whether each metric named is really exported is tests/e2e/test_alerts.py's: it needs the processes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures import monitoring
from tests.fixtures.monitoring import MONITORING_API, RUNBOOKS, alerts, enabled, render, rule_groups

HERE = Path(__file__).resolve().parent
RUNBOOK_BASE = "https://github.com/streamtrack/streamtrack/blob/main/docs/runbooks"


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return render(tmp_path_factory.mktemp("chart"), enabled())


@pytest.fixture(scope="module")
def groups(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return rule_groups(docs)


def names(docs: list[dict[str, Any]]) -> list[str]:
    return sorted(f"{d['kind']}/{d['metadata']['name']}" for d in docs
                  if d["kind"] in ("ServiceMonitor", "PrometheusRule") or "metrics" in d["metadata"]["name"]
                  or "dashboard" in d["metadata"]["name"])


def test_off_by_default_and_only_where_the_prometheus_operator_api_is_served(tmp_path: Path) -> None:
    assert names(render(tmp_path, {})) == []
    without_api = [n for n in names(render(tmp_path, enabled(), api_versions=())) if "dashboard" not in n]
    assert without_api == []
    assert names(render(tmp_path, enabled())) == [
        "ConfigMap/st-streamtrack-dashboard-pipeline", "ConfigMap/st-streamtrack-dashboard-projects",
        "PrometheusRule/st-streamtrack",
        "Service/st-streamtrack-operator-metrics", "Service/st-streamtrack-worker-metrics",
        "ServiceMonitor/st-streamtrack-api", "ServiceMonitor/st-streamtrack-operator", "ServiceMonitor/st-streamtrack-worker",
    ]


def test_service_monitors_scrape_each_component_on_its_metrics_port(docs: list[dict[str, Any]]) -> None:
    monitors = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "ServiceMonitor"}
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    for component, port in (("api", "http"), ("worker", "metrics"), ("operator", "metrics")):
        spec = monitors[f"st-streamtrack-{component}"]
        assert spec["endpoints"] == [{"port": port, "path": "/metrics", "interval": "30s", "scrapeTimeout": "10s"}]
        assert spec["namespaceSelector"] == {"matchNames": ["streamtrack"]}
        # exactly one Service matches, and it selects the component's pods on a port they declare
        matched = [s for s in services.values()
                   if spec["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()]
        assert len(matched) == 1, (component, [s["metadata"]["name"] for s in matched])
        service = matched[0]
        pod = deployments[f"st-streamtrack-{component}"]["spec"]["template"]
        assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
        target = next(p["targetPort"] for p in service["spec"]["ports"] if p["name"] == port)
        assert target in [p["name"] for p in pod["spec"]["containers"][0]["ports"]]


def test_dashboards_ship_as_configmaps_with_the_sidecar_label(docs: list[dict[str, Any]]) -> None:
    maps = [d for d in docs if d["kind"] == "ConfigMap" and "dashboard" in d["metadata"]["name"]]
    assert {m["metadata"]["labels"]["grafana_dashboard"] for m in maps} == {"1"}
    boards = {key: json.loads(text) for m in maps for key, text in m["data"].items()}
    assert {key: board["uid"] for key, board in boards.items()} == {
        "streamtrack-pipeline.json": "streamtrack-pipeline", "streamtrack-projects.json": "streamtrack-projects",
    }
    titles = {p["title"] for p in boards["streamtrack-pipeline.json"]["panels"]}
    for wanted in ("HTTP requests by route and status", "Produce latency", "Lag per partition", "Insert rate",
                   "Insert latency", "Dead letters by reason", "Replicas: recommended vs current"):
        assert wanted in titles
    for board in boards.values():  # every query goes to the dashboard's Prometheus data source variable
        assert {t["datasource"]["uid"] for p in board["panels"] for t in p["targets"]} == {"${datasource}"}


def test_every_alert_links_its_runbook_page(groups: dict[str, Any]) -> None:
    found = alerts(groups)
    assert len(found) >= 10
    pages = {p.name for p in RUNBOOKS.glob("*.md")} - {"README.md"}
    linked = set()
    for name, rule in found.items():
        url = rule["annotations"]["runbook_url"]
        assert url.startswith(RUNBOOK_BASE + "/"), (name, url)
        page = url.removeprefix(RUNBOOK_BASE + "/")
        assert page in pages, (name, page)
        assert (RUNBOOKS / page).read_text().startswith(f"# {name}\n"), page
        linked.add(page)
    assert linked == pages  # no page without its alert
    index = (RUNBOOKS / "README.md").read_text()
    assert all(f"| {name} |" in index for name in found)


def test_promtool_check_rules_accepts_the_rules_and_every_dashboard_query(groups: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(groups))
    queries = monitoring.dashboard_queries()
    assert len(queries) >= 25
    dashboards = {"groups": [{"name": "dashboards", "rules": [
        {"record": f"dashboard:query_{i}", "expr": expr} for i, (_, _, expr) in enumerate(queries)]}]}
    (tmp_path / "dashboards.yaml").write_text(yaml.safe_dump(dashboards))
    done = monitoring.promtool("check", "rules", "rules.yaml", "dashboards.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(alerts(groups))} rules found" in done.stdout
    assert f"SUCCESS: {len(queries)} rules found" in done.stdout


def test_promtool_unit_tests_fire_and_stay_quiet_for_every_alert(groups: dict[str, Any], tmp_path: Path) -> None:
    # Annotations are left out of the unit tests' copy (promtool compares them verbatim);
    # `promtool check rules` above checks their templates.
    bare = {"groups": [{**g, "rules": [{k: v for k, v in r.items() if k != "annotations"} for r in g["rules"]]}
                       for g in groups["groups"]]}
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(bare))
    shutil.copy(HERE / "alerts_test.yaml", tmp_path / "alerts_test.yaml")
    done = monitoring.promtool("test", "rules", "alerts_test.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout

    cases = yaml.safe_load((HERE / "alerts_test.yaml").read_text())["tests"]
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in cases:
        for check in case["alert_rule_test"]:
            (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    assert firing == set(alerts(groups)) and quiet == set(alerts(groups))


def test_rule_windows_and_for_durations_come_from_the_values(tmp_path: Path) -> None:
    """What the e2e relies on: short test-only windows reach every rule."""
    short = {name: {"for": "10s"} for name in ("ingestionStalled", "storeInserts", "lagUnreadable", "targetDown",
                                              "apiErrors", "apiUnavailable", "deadLetters")}
    found = alerts(rule_groups(render(tmp_path, enabled(window="20s", **short))))
    assert found["StreamTrackIngestionStalled"]["for"] == "10s"
    assert all("[5m]" not in rule["expr"] for rule in found.values())
    assert "[20s]" in found["StreamTrackIngestionStalled"]["expr"]


def test_objects_are_namespaced_to_the_release(groups: dict[str, Any]) -> None:
    for name, rule in alerts(groups).items():
        selectors = rule["expr"].count("{")
        assert rule["expr"].count('namespace="streamtrack"') == selectors, name


def test_the_monitoring_api_version_is_the_one_the_templates_check() -> None:
    text = (monitoring.ROOT / "helm" / "streamtrack" / "templates" / "_monitoring.tpl").read_text()
    assert f'.Capabilities.APIVersions.Has "{MONITORING_API}"' in text
