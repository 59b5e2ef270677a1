"""Evaluation of committed usage: read the touched (user, day) keys, run the rules, publish.

The database is the truth, so a redelivered notice re-evaluates the same rows and finds the same
anomalies. Each anomaly's id is derived from its fingerprint and severity: it is published with
that id as `Nats-Msg-Id` before it is recorded, and skipped once a record at that severity or
worse exists. A crash in between republishes the same id, which consumers treat as one.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

import asyncpg
from nats.js import JetStreamContext

from spendwatch.common.events import AnomalyDetectedV1, UsageCommittedV1, utc_now
from spendwatch.common.logging import get_logger
from spendwatch.common.messaging import publish_event, subjects
from spendwatch.detector import metrics, repository
from spendwatch.detector.rules import SEVERITY_RANK, Finding, daily_caps, spend_spike, zscore
from spendwatch.detector.thresholds import DetectionSettings

log = get_logger(__name__)
_IDS = uuid.UUID("6f1d2c1e-5b1a-4c55-9a51-8a3f0f9d2b7e")  # namespace of anomaly ids


def anomaly_id(fingerprint: str, severity: str) -> str:
    """Stable per fingerprint and severity: an escalation is a new anomaly, a repeat is not."""
    return str(uuid.uuid5(_IDS, f"{fingerprint}|{severity}"))


def to_event(finding: Finding, detected_at: datetime) -> AnomalyDetectedV1:
    """The wire event of a finding."""
    return AnomalyDetectedV1(
        anomaly_id=anomaly_id(finding.fingerprint, finding.severity),
        fingerprint=finding.fingerprint,
        detector=finding.detector,
        severity=finding.severity,
        subject=finding.subject,
        metric=finding.metric,
        unit=finding.unit,
        value=finding.value,
        threshold=finding.threshold,
        baseline=finding.baseline,
        window_start=finding.window_start,
        window_end=finding.window_end,
        model=finding.model,
        message=finding.message,
        evidence_first_at=finding.evidence_first_at,
        detected_at=detected_at,
    )


class Detector:
    """Runs the detectors over the keys a commit notice names."""

    def __init__(
        self,
        *,
        db: asyncpg.Pool,
        js: JetStreamContext,
        timezone: str,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._db = db
        self._js = js
        self._tz = ZoneInfo(timezone)
        self._clock = clock

    async def evaluate(self, notice: UsageCommittedV1) -> list[AnomalyDetectedV1]:
        """Evaluate the notice's keys; returns the anomalies published now."""
        settings = DetectionSettings.merged(await repository.thresholds(self._db))
        findings: list[Finding] = []
        for key in notice.keys:
            history = await repository.user_history(
                self._db,
                user_email=key.user_email,
                day=key.day,
                lookback_days=settings.spend_spike.lookback_days,
            )
            today = next((d for d in history if d.day == key.day), None)
            if today is not None:
                findings += daily_caps(
                    today, settings.static_caps, settings.critical_factor, self._tz
                )
                found = spend_spike(
                    today, history, settings.spend_spike, settings.critical_factor, self._tz
                )
                findings.extend([found] if found else [])
        for day in sorted({key.day for key in notice.keys}):
            population = await repository.active_users(self._db, day=day)
            findings.extend(zscore(population, settings.zscore, settings.critical_factor, self._tz))
        published = [a for a in [await self._report(f) for f in _unique(findings)] if a]
        latency = (self._clock() - notice.committed_at).total_seconds()
        metrics.DETECTION_LATENCY.observe(max(latency, 0.0))
        return published

    async def _report(self, finding: Finding) -> AnomalyDetectedV1 | None:
        if await repository.already_reported(
            self._db, fingerprint=finding.fingerprint, severity=finding.severity
        ):
            return None
        event = to_event(finding, self._clock())
        await publish_event(
            self._js, subjects.anomalies_events(finding.detector), event, msg_id=event.anomaly_id
        )
        await repository.record(self._db, event)
        metrics.ANOMALIES.labels(event.detector, event.severity).inc()
        log.info(
            "anomaly.detected",
            fingerprint=event.fingerprint,
            severity=event.severity,
            value=str(event.value),
            threshold=str(event.threshold),
        )
        return event


def _unique(findings: list[Finding]) -> list[Finding]:
    """One finding per fingerprint (the worst), so a batch never reports one thing twice."""
    worst: dict[str, Finding] = {}
    for finding in findings:
        kept = worst.get(finding.fingerprint)
        if kept is None or (SEVERITY_RANK[kept.severity], kept.value) < (
            SEVERITY_RANK[finding.severity],
            finding.value,
        ):
            worst[finding.fingerprint] = finding
    return list(worst.values())
