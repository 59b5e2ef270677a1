"""`/api/anomalies`: what the detector found, newest first, filtered and keyset-paginated."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

from aiohttp import web

from spendwatch.api.figures import last_days, team_today
from spendwatch.api.keys import DB, SETTINGS
from spendwatch.api.models import json_response, newest_first_page
from spendwatch.api.models.anomalies import (
    AnomalyListQuery,
    AnomalyOut,
    AnomalyPage,
)
from spendwatch.api.openapi import operation
from spendwatch.api.repository import anomalies as repository
from spendwatch.api.validation import parse_query
from spendwatch.common.events.base import utc_now

routes = web.RouteTableDef()


@routes.get("/api/anomalies")
@operation(
    "Anomalies detected in the last `days` days, newest first, filtered and keyset-paginated",
    query=AnomalyListQuery,
    response=AnomalyPage,
    tag="anomalies",
)
async def list_anomalies(request: web.Request) -> web.Response:
    """Anomalies (and clears) since local midnight of the window's first day."""
    query = parse_query(request, AnomalyListQuery)
    timezone = request.app[SETTINGS].team_timezone
    first = last_days(team_today(utc_now(), timezone), query.days).first
    since = datetime.combine(first, time(), tzinfo=ZoneInfo(timezone))
    rows = await repository.list_anomalies(
        request.app[DB],
        since=since,
        detector=query.detector,
        severity=query.severity,
        subject=query.subject,
        kind=query.kind,
        after=query.after,
        limit=query.limit + 1,
    )
    items, next_cursor = newest_first_page(
        rows, query.limit, AnomalyOut, at="detected_at", key="anomaly_id"
    )
    return json_response(
        AnomalyPage(timezone=timezone, since=since, items=items, next_cursor=next_cursor)
    )


__all__ = ["routes"]
