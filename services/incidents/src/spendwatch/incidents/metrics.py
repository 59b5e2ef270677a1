"""Prometheus metrics of the incidents service."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

_MINUTES = (30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400, 259200)

TRANSITIONS = Counter(
    "spendwatch_incident_transitions_total", "Incident transitions", ["transition", "detector"]
)
MTTD = Histogram(
    "spendwatch_incident_mttd_seconds", "Evidence to detection", ["detector"], buckets=_MINUTES
)
MTTI = Histogram(
    "spendwatch_incident_mtti_seconds", "Alert to acknowledgement", ["detector"], buckets=_MINUTES
)
MTTR = Histogram(
    "spendwatch_incident_mttr_seconds",
    "Detection to resolution",
    ["detector", "resolution"],
    buckets=_MINUTES,
)
