"""Prometheus metrics of the notifier."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

DELIVERIES = Counter(
    "spendwatch_notifier_deliveries_total", "Messages delivered", ["channel", "kind"]
)
DELIVERY_FAILURES = Counter(
    "spendwatch_notifier_delivery_failures_total",
    "Delivery attempts that failed (each is recorded in the notifications table and retried)",
    ["channel"],
)
DEAD_LETTERED = Counter(
    "spendwatch_notifier_dead_lettered_total",
    "Incident events given up on after the last redelivery, parked in the DLQ",
)
GROUPED = Counter(
    "spendwatch_notifier_grouped_incidents_total",
    "Incidents listed in a grouped message instead of getting their own",
)
SKIPPED = Counter(
    "spendwatch_notifier_events_skipped_total", "Incident events with nothing to send", ["reason"]
)
DIGESTS = Counter("spendwatch_notifier_digests_total", "Daily and cycle digests sent", ["kind"])
ALERT_LATENCY = Histogram(
    "spendwatch_notifier_alert_latency_seconds",
    "From the incident's detection to its first alert being posted",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
