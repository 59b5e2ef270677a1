"""The provisioned dashboards' SQL as Grafana would run it: macros and variables expanded.

Used by the Grafana tests (every panel runs on a seeded database) and by `bench_api` (the
slowest panel on 500 developers x 90 days).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

GRAFANA = Path(__file__).resolve().parents[1] / "grafana"
INTERVALS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def rfc3339(at: datetime) -> str:
    """How Grafana writes a time range bound into SQL."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _seconds(interval: str) -> int:
    match = re.fullmatch(r"\s*(\d+)([smhd])\s*", interval)
    if not match:
        raise ValueError(f"not a Grafana interval: {interval!r}")
    return int(match[1]) * INTERVALS[match[2]]


def expand(sql: str, variables: dict[str, str], *, start: datetime, end: datetime) -> str:
    """Grafana's PostgreSQL macros for [start, end], then `$var` / `${var}`."""
    since, until = rfc3339(start), rfc3339(end)

    def group(match: re.Match[str], *, alias: bool) -> str:
        column, interval = (part.strip() for part in match[1].rsplit(",", 1))
        step = _seconds(interval)
        expr = f"to_timestamp(floor(extract(epoch from {column})/{step})*{step})"
        return f'{expr} AS "time"' if alias else expr

    sql = re.sub(
        r"\$__timeFilter\(([^()]*)\)",
        lambda m: f"{m[1].strip()} BETWEEN '{since}' AND '{until}'",
        sql,
    )
    sql = re.sub(
        r"\$__unixEpochFilter\(([^()]*)\)",
        lambda m: f"{m[1].strip()} BETWEEN {int(start.timestamp())} AND {int(end.timestamp())}",
        sql,
    )
    sql = re.sub(r"\$__timeGroupAlias\(([^()]*)\)", lambda m: group(m, alias=True), sql)
    sql = re.sub(r"\$__timeGroup\(([^()]*)\)", lambda m: group(m, alias=False), sql)
    sql = sql.replace("$__timeFrom()", f"'{since}'").replace("$__timeTo()", f"'{until}'")
    if "$__" in sql:
        raise ValueError(f"unexpanded macro in {sql}")
    for name, value in variables.items():
        pattern = r"\$\{" + name + r"(?::\w+)?\}|\$" + name + r"\b"
        sql = re.sub(pattern, value.replace("\\", "\\\\"), sql)
    if leftover := re.findall(r"\$\{?\w+", sql):
        raise ValueError(f"unexpanded variables {leftover} in {sql}")
    return sql


def dashboards() -> list[dict[str, Any]]:
    """Every provisioned dashboard, by file name."""
    return [json.loads(p.read_text()) for p in sorted((GRAFANA / "dashboards").glob("*.json"))]


def panels(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every panel with queries, rows' panels included."""
    out = []
    for item in items:
        if item.get("targets"):
            out.append(item)
        out.extend(panels(item.get("panels", [])))
    return out


def sql_targets(panel: dict[str, Any]) -> list[str]:
    """The panel's raw SQL queries (targets of other datasources, e.g. Prometheus, are skipped)."""
    return [t["rawSql"] for t in panel["targets"] if t.get("rawSql")]
