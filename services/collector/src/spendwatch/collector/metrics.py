"""Prometheus metrics of the collector."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

EVENTS_RECEIVED = Counter(
    "spendwatch_sink_events_received_total", "Usage events the sink received", ["provider"]
)
EVENTS_INGESTED = Counter(
    "spendwatch_sink_events_ingested_total",
    "Usage events that were new and are now stored",
    ["provider"],
)
SNAPSHOTS_STORED = Counter("spendwatch_sink_snapshots_total", "Snapshot messages stored", ["kind"])
BATCH_SECONDS = Histogram(
    "spendwatch_sink_batch_seconds",
    "Time to store one batch, from fetch to ack",
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
POLL_PASSES = Counter(
    "spendwatch_collector_passes_total",
    "Collection passes, by how they ended",
    ["provider", "health"],
)
POLL_PASS_SECONDS = Histogram(
    "spendwatch_collector_pass_seconds",
    "Duration of one collection pass",
    ["provider"],
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600),
)
POLL_EVENTS = Counter(
    "spendwatch_collector_events_published_total",
    "Usage events published by the poller",
    ["provider"],
)
POLL_INVALID = Counter(
    "spendwatch_collector_invalid_total", "Provider items or pages sent to the DLQ", ["provider"]
)
POLL_REQUESTS = Counter(
    "spendwatch_collector_api_requests_total", "Requests made to provider admin APIs", ["provider"]
)
