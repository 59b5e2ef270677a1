"""JetStream stream definitions, created or updated idempotently at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError

from spendwatch.common.messaging import subjects

DAY = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """One stream: name, subjects and limits."""

    name: str
    subjects: tuple[str, ...]
    max_age_seconds: float = 0.0
    max_msgs_per_subject: int = -1
    duplicate_window_seconds: float = 120.0

    def config(self) -> StreamConfig:
        """The nats-py configuration for this stream."""
        return StreamConfig(
            name=self.name,
            subjects=list(self.subjects),
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            discard=DiscardPolicy.OLD,
            max_age=self.max_age_seconds or None,
            max_msgs_per_subject=self.max_msgs_per_subject,
            duplicate_window=self.duplicate_window_seconds,
        )


USAGE = StreamSpec(
    "USAGE",
    ("usage.events.v1.*", "usage.snapshots.v1.>", "usage.committed.v1.*"),
    max_age_seconds=7 * DAY,
    duplicate_window_seconds=600.0,
)
ANOMALIES = StreamSpec("ANOMALIES", ("anomalies.events.v1.*",), max_age_seconds=30 * DAY)
INCIDENTS = StreamSpec("INCIDENTS", ("incidents.events.v1.*",), max_age_seconds=30 * DAY)
SETTINGS = StreamSpec("SETTINGS", (subjects.SETTINGS_UPDATED,), max_msgs_per_subject=100)
DLQ = StreamSpec("DLQ", (subjects.DLQ_ALL,), max_age_seconds=30 * DAY)

ALL_STREAMS: tuple[StreamSpec, ...] = (USAGE, ANOMALIES, INCIDENTS, SETTINGS, DLQ)


async def ensure_streams(js: JetStreamContext, specs: tuple[StreamSpec, ...] = ALL_STREAMS) -> None:
    """Create each stream, or bring an existing one to its definition; safe to race."""
    for spec in specs:
        config = spec.config()
        try:
            await js.stream_info(spec.name)
        except NotFoundError:
            try:
                await js.add_stream(config)
                continue
            except BadRequestError:
                pass  # another process created it first; fall through to update
        await js.update_stream(config)
