"""The provisioned Grafana files: parse, stable uids, every panel on the spendwatch datasource."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
DATASOURCE_UID = "spendwatch-db"
DATASOURCE_TYPE = "grafana-postgresql-datasource"
PROMETHEUS = {"type": "prometheus", "uid": "spendwatch-prometheus"}
EXPECTED_UIDS = {
    "spendwatch-team",
    "spendwatch-user",
    "spendwatch-incidents",
    "spendwatch-models",
    "spendwatch-budgets",
    "spendwatch-pipeline",
}
# Only these dashboards may use Prometheus (the DLQ and consumer lag live in NATS, which the
# services count); everything else reads the database.
PROMETHEUS_DASHBOARDS = {"spendwatch-pipeline"}
METRIC = re.compile(r"\bspendwatch_[a-z0-9_]+")
SERIES_SUFFIXES = ("_bucket", "_sum", "_count")
# `$name` or `${name}` / `${name:format}`; Grafana's own `$__macros` are not variables.
VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")


def load(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    assert isinstance(data, dict)
    return data


def all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels", []))


def used_variables(sql: str) -> set[str]:
    names = {a or b for a, b in VARIABLE.findall(sql)}
    return {n for n in names if not n.startswith("__")}


def test_dashboards_exist_with_the_listed_unique_uids() -> None:
    uids = [load(path)["uid"] for path in DASHBOARDS]
    assert len(uids) == len(set(uids))
    assert set(uids) == EXPECTED_UIDS
    for path in DASHBOARDS:
        assert load(path)["title"]


def is_prometheus(panel: dict[str, Any]) -> bool:
    return bool(panel.get("datasource") == PROMETHEUS)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_every_panel_queries_the_spendwatch_datasource(path: Path) -> None:
    dashboard = load(path)
    panels = [p for p in all_panels(dashboard["panels"]) if p["type"] != "row"]
    assert panels
    ids = [p["id"] for p in all_panels(dashboard["panels"])]
    assert len(ids) == len(set(ids))
    titles = [p["title"] for p in panels]
    assert len(titles) == len(set(titles)), "the tests find panels by title"
    for panel in panels:
        where = f"{path.name}: {panel['title']}"
        assert panel["targets"], where
        if is_prometheus(panel):
            assert dashboard["uid"] in PROMETHEUS_DASHBOARDS, where
            for target in panel["targets"]:
                assert target.get("expr", "").strip(), where
                assert "rawSql" not in target, where
                assert target.get("datasource", PROMETHEUS) == PROMETHEUS, where
            continue
        assert panel["datasource"] == {"type": DATASOURCE_TYPE, "uid": DATASOURCE_UID}, where
        for target in panel["targets"]:
            assert target.get("rawSql", "").strip(), where
            assert target.get("datasource", panel["datasource"])["uid"] == DATASOURCE_UID, where


def _defined_metrics() -> set[str]:
    """Metric names the services register (prometheus_client adds `_total` to counters)."""
    sources = [*ROOT.glob("services/*/src/spendwatch/*/metrics.py")]
    sources += [*ROOT.glob("libs/*/src/spendwatch/*/**/*.py")]
    text = "\n".join(path.read_text() for path in sources)
    return set(re.findall(r'"(spendwatch_[a-z0-9_]+)"', text))


def test_prometheus_panels_query_metrics_the_services_export() -> None:
    """Prometheus panels are checked as JSON only: their metric names must exist in the code."""
    defined = _defined_metrics()
    assert "spendwatch_dlq_messages_total" in defined
    used = 0
    for path in DASHBOARDS:
        for panel in all_panels(load(path)["panels"]):
            if not is_prometheus(panel):
                continue
            for target in panel["targets"]:
                for name in METRIC.findall(target["expr"]):
                    base = name
                    for suffix in SERIES_SUFFIXES:
                        base = base.removesuffix(suffix)
                    assert name in defined or base in defined, f"{panel['title']}: {name}"
                    used += 1
    assert used >= 8


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_every_variable_used_is_defined_on_the_datasource(path: Path) -> None:
    dashboard = load(path)
    variables = dashboard["templating"]["list"]
    defined = {v["name"] for v in variables}
    for variable in variables:
        assert variable["datasource"]["uid"] == DATASOURCE_UID, variable["name"]
        assert variable["type"] == "query"
        assert variable["query"].strip()
        assert not used_variables(variable["query"]) - defined, variable["name"]
    for panel in all_panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            if "rawSql" not in target:
                continue  # Prometheus: `$__rate_interval` only
            missing = used_variables(target["rawSql"]) - defined
            assert not missing, f"{path.name}: {panel['title']} uses undefined {missing}"


def test_money_is_summed_in_micros_then_divided_once() -> None:
    for path in DASHBOARDS:
        for panel in all_panels(load(path)["panels"]):
            for target in panel.get("targets", []):
                sql = target.get("rawSql", "")
                assert not re.search(r"sum\([^)]*/\s*1e6", sql), panel["title"]
                assert "time_bucket" not in sql  # TimescaleDB-only


def test_variable_pattern() -> None:
    assert used_variables("x = '$user' AND g IN (${group}) AND $__timeFilter(day) AND '$/r'") == {
        "user",
        "group",
    }


def test_prometheus_datasource_provisioning() -> None:
    config = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yaml").read_text())
    (source,) = config["datasources"]
    assert {"type": source["type"], "uid": source["uid"]} == PROMETHEUS
    assert source["url"] == "${SPENDWATCH_PROMETHEUS_URL}"
    assert source["isDefault"] is False


def test_datasource_provisioning() -> None:
    config = yaml.safe_load((GRAFANA / "provisioning/datasources/spendwatch.yaml").read_text())
    assert config["apiVersion"] == 1
    (source,) = config["datasources"]
    assert source["uid"] == DATASOURCE_UID
    assert source["type"] == DATASOURCE_TYPE
    # Grafana expands provisioning values with os.ExpandEnv: no `${VAR:-default}` form.
    assert source["url"] == "${SPENDWATCH_DB_HOST}:5432"
    assert source["user"] == "grafana_reader"
    assert source["jsonData"]["database"] == "spendwatch"
    assert source["jsonData"]["timescaledb"] is True
    assert source["jsonData"]["postgresVersion"] == 1600
    assert source["secureJsonData"]["password"] == "$GRAFANA_DB_PASSWORD"


def test_dashboard_provisioning() -> None:
    config = yaml.safe_load((GRAFANA / "provisioning/dashboards/spendwatch.yaml").read_text())
    assert config["apiVersion"] == 1
    (provider,) = config["providers"]
    assert provider["folder"] == "spendwatch"
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_panels_fit_the_grid_without_overlapping(path: Path) -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in all_panels(load(path)["panels"]):
        pos = panel["gridPos"]
        assert pos["w"] > 0, panel["title"]
        assert pos["h"] > 0, panel["title"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                other = cells.setdefault((x, y), panel["title"])
                assert other == panel["title"], f"{panel['title']} overlaps {other}"
