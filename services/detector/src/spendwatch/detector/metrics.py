"""Prometheus metrics of the detector."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

ANOMALIES = Counter(
    "spendwatch_detector_anomalies_total", "Anomalies published", ["detector", "severity"]
)
CLEARED = Counter("spendwatch_detector_cleared_total", "Anomalies cleared", ["detector"])
DETECTION_LATENCY = Histogram(
    "spendwatch_detection_latency_seconds",
    "From the sink's commit to the end of the evaluation of its notice",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)
