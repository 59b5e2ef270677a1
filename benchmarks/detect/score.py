"""Scoring alerts against a scenario's labelled incidents.

Rules:

- Info-severity alerts are ignored: they feed a digest, they do not page anyone.
- An alert is *true* when some incident has the same subject (a user e-mail, or "team") and
  `incident.onset <= alert.at <= incident.end + grace`; otherwise it is *false*.
- An incident is *detected* when some true alert matches it; its delay is the first matching
  alert's `at` minus the onset.
- Per detector: its alerts, how many are true and false, and its recall over the incidents
  that list it among their expected detectors, counting only its own alerts.

False alerts are reported per 100 developer-days (`Scenario.developer_days()`), delays in
minutes (median and nearest-rank p95).
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

from spendwatch.simulator.scenario import LabelledIncident, Scenario

IGNORED_SEVERITIES = frozenset({"info"})


@dataclass(frozen=True)
class Alert:
    """An alert a detector raised during the replay."""

    subject: str  # a user e-mail, or "team"
    detector: str
    severity: str
    at: datetime  # when it was raised (simulated time)
    window_start: datetime
    window_end: datetime
    fingerprint: str


@dataclass(frozen=True)
class IncidentOutcome:
    """How one incident fared."""

    incident: LabelledIncident
    delay: timedelta | None  # None: not detected
    detectors: tuple[str, ...]  # detectors with a true alert on it (first one first)

    @property
    def detected(self) -> bool:
        """Whether any true alert matched it."""
        return self.delay is not None


@dataclass(frozen=True)
class KindRow:
    """Recall and delay for one incident kind."""

    kind: str
    incidents: int
    detected: int
    median_delay_minutes: float | None
    p95_delay_minutes: float | None

    @property
    def recall(self) -> float:
        """Detected / incidents."""
        return _ratio(self.detected, self.incidents)


@dataclass(frozen=True)
class DetectorRow:
    """One detector's alerts and its recall over the incidents it is expected to catch."""

    detector: str
    alerts: int
    true_alerts: int
    false_alerts: int
    expected: int  # incidents listing this detector
    detected: int  # of those, caught by this detector's own alerts
    median_delay_minutes: float | None
    p95_delay_minutes: float | None

    @property
    def recall(self) -> float:
        """Detected / expected."""
        return _ratio(self.detected, self.expected)


@dataclass(frozen=True)
class Report:
    """The score of one run of alerts against one scenario."""

    incidents: int
    detected: int
    alerts: int  # not counting ignored severities
    true_alerts: int
    false_alerts: int
    developer_days: int
    median_delay_minutes: float | None
    p95_delay_minutes: float | None
    grace: timedelta
    by_kind: list[KindRow]
    by_detector: list[DetectorRow]
    outcomes: list[IncidentOutcome] = field(repr=False)
    false_alert_list: list[Alert] = field(repr=False)

    COLUMNS: ClassVar[tuple[str, ...]] = (
        "scope",
        "name",
        "incidents",
        "detected",
        "recall",
        "alerts",
        "true",
        "false",
        "median delay (min)",
        "p95 delay (min)",
    )

    @property
    def recall(self) -> float:
        """Detected incidents / incidents."""
        return _ratio(self.detected, self.incidents)

    @property
    def false_per_100_developer_days(self) -> float:
        """False alerts per 100 developer-days."""
        return self.false_alerts * 100 / self.developer_days if self.developer_days else 0.0

    def rows(self) -> list[tuple[str, ...]]:
        """Table rows under `COLUMNS`: the total, one per incident kind, one per detector."""
        rows: list[tuple[str, ...]] = [
            (
                "all",
                f"{self.false_per_100_developer_days:.2f} false / 100 dev-days",
                str(self.incidents),
                str(self.detected),
                _pct(self.recall),
                str(self.alerts),
                str(self.true_alerts),
                str(self.false_alerts),
                _minutes(self.median_delay_minutes),
                _minutes(self.p95_delay_minutes),
            )
        ]
        rows += [
            (
                "kind",
                k.kind,
                str(k.incidents),
                str(k.detected),
                _pct(k.recall),
                "",
                "",
                "",
                _minutes(k.median_delay_minutes),
                _minutes(k.p95_delay_minutes),
            )
            for k in self.by_kind
        ]
        rows += [
            (
                "detector",
                d.detector,
                str(d.expected),
                str(d.detected),
                _pct(d.recall) if d.expected else "",
                str(d.alerts),
                str(d.true_alerts),
                str(d.false_alerts),
                _minutes(d.median_delay_minutes),
                _minutes(d.p95_delay_minutes),
            )
            for d in self.by_detector
        ]
        return rows

    def to_dict(self) -> dict[str, Any]:
        """Everything as plain JSON-able data."""
        return {
            "incidents": self.incidents,
            "detected": self.detected,
            "recall": self.recall,
            "alerts": self.alerts,
            "true_alerts": self.true_alerts,
            "false_alerts": self.false_alerts,
            "developer_days": self.developer_days,
            "false_per_100_developer_days": self.false_per_100_developer_days,
            "median_delay_minutes": self.median_delay_minutes,
            "p95_delay_minutes": self.p95_delay_minutes,
            "grace_hours": self.grace / timedelta(hours=1),
            "by_kind": [{**_fields(k), "recall": k.recall} for k in self.by_kind],
            "by_detector": [{**_fields(d), "recall": d.recall} for d in self.by_detector],
            "incidents_detail": [
                {
                    "incident_id": o.incident.incident_id,
                    "kind": o.incident.kind,
                    "subject": o.incident.subject,
                    "onset": o.incident.onset.isoformat(),
                    "detected": o.detected,
                    "delay_minutes": None if o.delay is None else _in_minutes(o.delay),
                    "detectors": list(o.detectors),
                }
                for o in self.outcomes
            ],
            "false_alerts_detail": [
                {
                    "subject": a.subject,
                    "detector": a.detector,
                    "severity": a.severity,
                    "at": a.at.isoformat(),
                    "fingerprint": a.fingerprint,
                }
                for a in self.false_alert_list
            ],
        }

    def to_json(self) -> str:
        """`to_dict()` as indented JSON."""
        return json.dumps(self.to_dict(), indent=2)


def score(
    scenario: Scenario, alerts: Iterable[Alert], *, grace: timedelta = timedelta(hours=24)
) -> Report:
    """Classify every alert and incident of a replay (see the module docstring)."""
    incidents = scenario.incidents
    by_subject: dict[str, list[int]] = {}
    for i, incident in enumerate(incidents):
        by_subject.setdefault(incident.subject.lower(), []).append(i)
    counted = sorted(
        (a for a in alerts if a.severity not in IGNORED_SEVERITIES), key=lambda a: a.at
    )
    first: dict[int, tuple[datetime, list[str]]] = {}  # incident -> first match, detectors
    own_first: dict[tuple[str, int], datetime] = {}  # (detector, incident) -> first match
    per_detector: dict[str, list[int]] = {}  # detector -> [alerts, true]
    false_alerts: list[Alert] = []
    for alert in counted:
        matches = [
            i
            for i in by_subject.get(alert.subject.lower(), [])
            if incidents[i].onset <= alert.at <= incidents[i].end + grace
        ]
        counts = per_detector.setdefault(alert.detector, [0, 0])
        counts[0] += 1
        if not matches:
            false_alerts.append(alert)
            continue
        counts[1] += 1
        for i in matches:
            hit = first.setdefault(i, (alert.at, []))
            if alert.detector not in hit[1]:
                hit[1].append(alert.detector)
            own_first.setdefault((alert.detector, i), alert.at)
    outcomes = [
        IncidentOutcome(
            incident=incident,
            delay=first[i][0] - incident.onset if i in first else None,
            detectors=tuple(first[i][1]) if i in first else (),
        )
        for i, incident in enumerate(incidents)
    ]
    delays = [o.delay for o in outcomes if o.delay is not None]
    median, p95 = _delay_stats(delays)
    return Report(
        incidents=len(incidents),
        detected=len(delays),
        alerts=len(counted),
        true_alerts=len(counted) - len(false_alerts),
        false_alerts=len(false_alerts),
        developer_days=scenario.developer_days(),
        median_delay_minutes=median,
        p95_delay_minutes=p95,
        grace=grace,
        by_kind=_by_kind(outcomes),
        by_detector=_by_detector(incidents, per_detector, own_first),
        outcomes=outcomes,
        false_alert_list=false_alerts,
    )


def _by_kind(outcomes: list[IncidentOutcome]) -> list[KindRow]:
    kinds: dict[str, list[IncidentOutcome]] = {}
    for o in outcomes:
        kinds.setdefault(o.incident.kind, []).append(o)
    rows = []
    for kind in sorted(kinds):
        delays = [o.delay for o in kinds[kind] if o.delay is not None]
        median, p95 = _delay_stats(delays)
        rows.append(KindRow(kind, len(kinds[kind]), len(delays), median, p95))
    return rows


def _by_detector(
    incidents: list[LabelledIncident],
    per_detector: dict[str, list[int]],
    own_first: dict[tuple[str, int], datetime],
) -> list[DetectorRow]:
    names = set(per_detector) | {d for i in incidents for d in i.expected_detectors}
    rows = []
    for name in sorted(names):
        expected = [i for i, inc in enumerate(incidents) if name in inc.expected_detectors]
        delays = [
            own_first[name, i] - incidents[i].onset for i in expected if (name, i) in own_first
        ]
        alerts, true = per_detector.get(name, [0, 0])
        median, p95 = _delay_stats(delays)
        rows.append(
            DetectorRow(
                detector=name,
                alerts=alerts,
                true_alerts=true,
                false_alerts=alerts - true,
                expected=len(expected),
                detected=len(delays),
                median_delay_minutes=median,
                p95_delay_minutes=p95,
            )
        )
    return rows


def _delay_stats(delays: list[timedelta]) -> tuple[float | None, float | None]:
    if not delays:
        return None, None
    minutes = sorted(_in_minutes(d) for d in delays)
    rank = max(1, math.ceil(0.95 * len(minutes)))  # nearest rank
    return statistics.median(minutes), minutes[rank - 1]


def _in_minutes(delta: timedelta) -> float:
    return delta / timedelta(minutes=1)


def _ratio(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _pct(value: float) -> str:
    return f"{value:.0%}"


def _minutes(value: float | None) -> str:
    return "" if value is None else f"{value:,.0f}"


def _fields(row: KindRow | DetectorRow) -> dict[str, Any]:
    return {name: getattr(row, name) for name in row.__dataclass_fields__}
