"""The v1 wire contracts: frozen pydantic models, one per event type."""

from spendwatch.common.events.anomaly import AnomalyClearedV1, AnomalyDetectedV1, Severity
from spendwatch.common.events.base import Event, utc_now
from spendwatch.common.events.settings import SettingsUpdatedV1
from spendwatch.common.events.usage import (
    DailyUsageRow,
    DailyUsageSnapshotV1,
    Group,
    Member,
    MemberSpend,
    Person,
    Provider,
    RosterSnapshotV1,
    SnapshotEvent,
    SpendSnapshotV1,
    UsageCommittedV1,
    UsageRecordedV1,
    UserDay,
)

__all__ = [
    "AnomalyClearedV1",
    "AnomalyDetectedV1",
    "DailyUsageRow",
    "DailyUsageSnapshotV1",
    "Event",
    "Group",
    "Member",
    "MemberSpend",
    "Person",
    "Provider",
    "RosterSnapshotV1",
    "SettingsUpdatedV1",
    "Severity",
    "SnapshotEvent",
    "SpendSnapshotV1",
    "UsageCommittedV1",
    "UsageRecordedV1",
    "UserDay",
    "utc_now",
]
