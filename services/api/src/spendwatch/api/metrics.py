"""Prometheus metrics of the API (served by the API itself at `/metrics`)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REQUEST_SECONDS = Histogram(
    "spendwatch_api_request_duration_seconds",
    "Time to answer an HTTP request, by route template, method and status",
    ["route", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0),
)
SLACK_ACTIONS = Counter(
    "spendwatch_api_slack_actions_total",
    "Slack interactions by action and outcome",
    ["action", "outcome"],
)
SLACK_REJECTED = Counter(
    "spendwatch_api_slack_rejected_total",
    "Requests to the Slack endpoint refused before parsing, by reason",
    ["reason"],
)
