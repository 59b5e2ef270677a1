"""Evaluation of committed usage and the periodic tick: read, run the rules, publish, record.

The database is the truth, so a redelivered notice re-evaluates the same rows and finds the same
anomalies. Each anomaly's id is derived from its fingerprint, severity and how often that
fingerprint cleared before: it is published with that id as `Nats-Msg-Id` before it is recorded,
and skipped once a record at that severity or worse exists since the last clear. A crash in
between republishes the same id, which consumers treat as one.

A commit notice evaluates the day rules for exactly the (user, day) keys it names, plus the
runaway rule for recent days. The tick (every few seconds, one replica at a time) evaluates the
billing cycle and clears what no longer holds once its window has closed, or, for a runaway,
once the burst has ended.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import asyncpg
from nats.js import JetStreamContext
from pydantic import ValidationError

from spendwatch.common.cycles import Cycle, cycle_containing
from spendwatch.common.db import exclusive
from spendwatch.common.events import AnomalyClearedV1, AnomalyDetectedV1, UsageCommittedV1, utc_now
from spendwatch.common.logging import get_logger
from spendwatch.common.messaging import publish_event, subjects
from spendwatch.common.thresholds import DetectionSettings
from spendwatch.detector import metrics, repository
from spendwatch.detector.burst_rules import (
    MIN_BURST_REQUESTS,
    RUNAWAY,
    Peaks,
    burst_holds,
    limits,
    runaway,
    usual_peaks,
)
from spendwatch.detector.cycle_rules import (
    CYCLE_OUTLIER,
    EXPENSIVE_MODEL,
    PLAN_EXHAUSTION,
    TEAM_BUDGET,
    USER_CYCLE_CAP,
    cycle_outlier,
    expensive_model,
    plan_exhaustion,
    team_budget,
    team_cost_per_request,
    user_cycle_cap,
)
from spendwatch.detector.findings import (
    SEVERITY_RANK,
    TEAM,
    Finding,
    day_window,
    parse_fingerprint,
)
from spendwatch.detector.repository import MICROS, FingerprintState
from spendwatch.detector.rules import (
    SEASONAL,
    ZSCORE,
    UserDay,
    cost_per_request,
    daily_caps,
    seasonal,
    spend_spike,
    usual_working_day,
    zscore,
)

log = get_logger(__name__)
_IDS = uuid.UUID("6f1d2c1e-5b1a-4c55-9a51-8a3f0f9d2b7e")  # namespace of anomaly ids
_CUMULATIVE = frozenset({USER_CYCLE_CAP, TEAM_BUDGET, CYCLE_OUTLIER, PLAN_EXHAUSTION})
_PEAKS_KEPT = 50_000  # cached usual peaks (user, day) before the cache starts over
_RECENT_DAYS = 1  # runaways are looked for today and yesterday only
_USUAL_DAYS = 28  # a user's usual working day, for the z-score's own-history test
_RUNAWAY_EVERY = timedelta(seconds=60)  # per user: a burst is still caught within a minute or two
_RUNAWAY_KEYS_PER_EVALUATION = 250


def anomaly_id(fingerprint: str, severity: str, generation: int = 0) -> str:
    """Stable per fingerprint, severity and generation (clears so far): an escalation or a
    firing after a clear is a new anomaly, a repeat is not."""
    suffix = f"|{generation}" if generation else ""
    return str(uuid.uuid5(_IDS, f"{fingerprint}|{severity}{suffix}"))


def to_event(finding: Finding, detected_at: datetime, generation: int = 0) -> AnomalyDetectedV1:
    """The wire event of a finding."""
    return AnomalyDetectedV1(
        anomaly_id=anomaly_id(finding.fingerprint, finding.severity, generation),
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
    """Runs the rules over what a commit notice names, and the cycle rules and clears per tick."""

    def __init__(
        self,
        *,
        db: asyncpg.Pool,
        js: JetStreamContext,
        timezone: str,
        clock: Callable[[], datetime] = utc_now,
        clear_grace: timedelta = timedelta(hours=1),
    ) -> None:
        self._db = db
        self._js = js
        self._tz = ZoneInfo(timezone)
        self._clock = clock
        self._clear_grace = clear_grace  # how late usage may still arrive for a closed window
        self._peaks: dict[tuple[str, date, int, int], Peaks] = {}
        self._settled: set[str] = set()  # closed windows that still hold: left to people
        self._runaway_due: dict[tuple[str, date], datetime] = {}  # key -> earliest new request
        self._runaway_checked: dict[str, datetime] = {}  # user -> last runaway check
        self._good_settings = DetectionSettings()  # the last stored thresholds that were valid

    async def evaluate(self, notice: UsageCommittedV1) -> list[AnomalyDetectedV1]:
        """Evaluate the notice's keys; returns the anomalies published now."""
        return await self.evaluate_many([notice])

    async def evaluate_many(self, notices: list[UsageCommittedV1]) -> list[AnomalyDetectedV1]:
        """Evaluate several notices' keys as one (the union; runaways from the earliest)."""
        settings = await self.settings()
        keys = {(key.user_email, key.day) for notice in notices for key in notice.keys}
        since = min(notice.earliest_occurred_at for notice in notices)
        findings = await self._day_findings(keys, settings, fresh_only=True, since=since)
        published = await self._report_all(await self._cooled(findings, settings))
        now = self._clock()
        for notice in notices:
            metrics.DETECTION_LATENCY.observe(max((now - notice.committed_at).total_seconds(), 0))
        return published

    async def evaluate_days(self, days: int) -> list[AnomalyDetectedV1]:
        """Evaluate every user's last `days` days (`spendwatch detect --once`)."""
        settings = await self.settings()
        today = self._today()
        rows = await repository.user_days(
            self._db,
            users=await self._all_users(today, days),
            first=today - timedelta(days),
            last=today,
        )
        keys = {(d.user_email, d.day) for d in rows}
        findings = await self._day_findings(keys, settings, fresh_only=False, since=None)
        return await self._report_all(await self._cooled(findings, settings))

    async def tick(self) -> list[AnomalyDetectedV1 | AnomalyClearedV1]:
        """The cycle rules and the clears; a no-op while another replica ticks."""
        async with exclusive(self._db, "spendwatch.detector:tick") as mine:
            if not mine:
                return []
            settings = await self.settings()
            anchor = await repository.cycle_anchor(self._db)
            cycle = cycle_containing(self._today(), anchor)
            published: list[AnomalyDetectedV1 | AnomalyClearedV1] = []
            findings = [*await self._cycle_findings(cycle, settings)]
            findings += await self._due_runaways(settings)
            published += await self._report_all(findings)
            published += await self._clear(settings)
            return published

    async def settings(self) -> DetectionSettings:
        """The thresholds as stored now (read on every evaluation, so a change applies next)."""
        stored = await repository.thresholds(self._db)
        try:
            self._good_settings = DetectionSettings.merged(stored)
        except (ValidationError, TypeError, AttributeError) as exc:
            # A row edited by hand past the API's validation must not stop detection: keep
            # the last valid thresholds and say so loudly.
            log.error("detector.settings_invalid", error=str(exc)[:500])
        return self._good_settings

    # --- evaluation ------------------------------------------------------------------------------

    async def _day_findings(
        self,
        keys: set[tuple[str, date]],
        s: DetectionSettings,
        *,
        fresh_only: bool,
        since: datetime | None,
    ) -> list[Finding]:
        today = self._today()
        if fresh_only:
            keys = {k for k in keys if k[1] >= today - timedelta(days=s.max_age_days)}
        if not keys:
            return []
        users = sorted({user for user, _ in keys})
        days = sorted({day for _, day in keys})
        span = max(
            s.spend_spike.lookback_days,
            s.spend_spike.long_lookback_days,
            s.cost_per_request.lookback_days,
            s.seasonal.weeks * 7,
            s.seasonal.warmup_days,
        )
        history = await repository.user_days(
            self._db, users=users, first=days[0] - timedelta(days=span), last=days[-1]
        )
        mine: dict[str, list[UserDay]] = defaultdict(list)
        for d in history:
            mine[d.user_email].append(d)
        found = {(d.user_email, d.day): d for d in history}
        models = await repository.model_days(self._db, keys=sorted(keys))
        cf, tz = s.critical_factor, self._tz
        findings: list[Finding] = []
        for user, day in sorted(keys):
            today_row = found.get((user, day))
            if today_row is None:
                continue
            past = mine[user]
            todays_models = [m for m in models if m.user_email == user and m.day == day]
            findings += daily_caps(today_row, s.static_caps, cf, tz)
            for finding in (
                spend_spike(today_row, past, s.spend_spike, cf, tz),
                cost_per_request(today_row, past, todays_models, s.cost_per_request, cf, tz),
                seasonal(today_row, past, s.seasonal, cf, tz),
            ):
                findings.extend([finding] if finding else [])
        anchor = await repository.cycle_anchor(self._db)
        for day in days:
            candidates = {user for user, d in keys if d == day}
            population = await repository.population(self._db, day=day)
            usual = {
                user: usual_working_day(found[user, day], mine[user], _USUAL_DAYS)
                for user in candidates
                if (user, day) in found
            }
            findings += zscore(
                population, s.zscore, cf, tz, candidates=candidates, own_averages=usual
            )
            median = team_cost_per_request(
                [(p.user_email, p.spend, p.requests) for p in population]
            )
            findings += expensive_model(
                [m for m in models if m.day == day],
                median,
                await repository.team_top_model(self._db, day=day),
                s.expensive_model,
                cf,
                cycle_containing(day, anchor),
                tz,
                candidates=candidates,
            )
        if since is not None:
            for key in keys:
                if key[1] >= today - timedelta(days=_RECENT_DAYS):
                    self._runaway_due[key] = min(since, self._runaway_due.get(key, since))
            findings += await self._due_runaways(s)
        return findings

    async def _due_runaways(self, s: DetectionSettings) -> list[Finding]:
        """Runaway checks for the keys with new requests, at most once per user per
        `_RUNAWAY_EVERY` (a busy user's trailing windows are not re-read for every batch);
        a key not due yet waits for a later evaluation or the tick."""
        now = self._clock()
        never = datetime.min.replace(tzinfo=UTC)
        ready = [
            key
            for key in self._runaway_due
            if now - self._runaway_checked.get(key[0], never) >= _RUNAWAY_EVERY
        ]
        # The longest-waiting first, a bounded number per evaluation: the work stays smooth
        # when many users fall due together.
        ready.sort(key=lambda key: self._runaway_checked.get(key[0], never))
        due = {key: self._runaway_due.pop(key) for key in ready[:_RUNAWAY_KEYS_PER_EVALUATION]}
        if not due:
            return []
        if len(self._runaway_checked) > _PEAKS_KEPT:
            self._runaway_checked.clear()
        for user, _ in due:
            self._runaway_checked[user] = now
        return await self._runaways(set(due), s, min(due.values()))

    async def _runaways(
        self, keys: set[tuple[str, date]], s: DetectionSettings, since: datetime
    ) -> list[Finding]:
        r = s.runaway
        if r.p99_multiplier <= 0 and not r.headless_hours:
            return []
        findings = []
        for day in sorted({day for _, day in keys}):
            users = sorted({user for user, d in keys if d == day})
            start, end = day_window(day, self._tz)
            peaks = await self._usual_peaks(users, day, s)
            users = await self._suspects(users, peaks, s, start=start, since=since, end=end)
            if not users:
                continue
            # Windows ending at the new requests need only the last window before them; a
            # headless run needs the day's earlier headless requests (far fewer than all).
            cut = min(max(start, since - timedelta(minutes=r.window_minutes)), end)
            requests = await repository.requests(self._db, users=users, start=cut, end=end)
            if r.headless_hours and cut > start:
                earlier = await repository.requests(
                    self._db, users=users, start=start, end=cut, headless_only=True
                )
                for user, older in earlier.items():
                    requests[user] = older + requests.get(user, [])
            for user in users:
                finding = runaway(
                    user,
                    day,
                    requests.get(user, []),
                    peaks[user],
                    r,
                    s.critical_factor,
                    self._tz,
                    since=since,
                )
                findings.extend([finding] if finding else [])
        return findings

    async def _suspects(
        self,
        users: list[str],
        peaks: dict[str, Peaks],
        s: DetectionSettings,
        *,
        start: datetime,
        since: datetime,
        end: datetime,
    ) -> list[str]:
        """The users whose busiest new window is over a limit, or whose headless requests span
        long enough for a run: only they need their requests read and judged."""
        r = s.runaway
        window = timedelta(minutes=r.window_minutes)
        found = await repository.busiest(
            self._db, users=users, start=start, since=max(start, since), end=end, window=window
        )
        suspects = []
        for user, busy in found.items():
            spend, tokens, requests = limits(peaks[user], r)
            over = busy.requests >= MIN_BURST_REQUESTS and (
                (spend and busy.spend > spend)
                or (tokens and busy.tokens > tokens)
                or (requests and busy.requests > requests)
            )
            if over or (r.headless_hours and busy.headless_hours >= r.headless_hours):
                suspects.append(user)
        return sorted(suspects)

    async def _usual_peaks(
        self, users: list[str], day: date, s: DetectionSettings
    ) -> dict[str, Peaks]:
        """Each user's usual peaks over the history days before `day` (cached per day)."""
        r = s.runaway
        key = (day, r.window_minutes, r.history_days)
        missing = [u for u in users if (u, *key) not in self._peaks]
        if missing:
            if len(self._peaks) > _PEAKS_KEPT:
                self._peaks.clear()
            start = day_window(day - timedelta(days=r.history_days), self._tz)[0]
            end = day_window(day, self._tz)[0]
            history = await repository.requests(self._db, users=missing, start=start, end=end)
            window = timedelta(minutes=r.window_minutes)
            for user in missing:
                self._peaks[(user, *key)] = usual_peaks(history.get(user, []), window)
        return {u: self._peaks[(u, *key)] for u in users}

    async def _cycle_findings(self, cycle: Cycle, s: DetectionSettings) -> list[Finding]:
        spends = await repository.cycle_spends(self._db, first=cycle.start, end=cycle.end)
        cf, tz = s.critical_factor, self._tz
        findings = [
            *user_cycle_cap(spends, s.static_caps, cf, cycle, tz),
            *cycle_outlier(spends, s.cycle_outlier, cf, cycle, tz),
        ]
        if s.plan_exhaustion.enabled:
            findings += plan_exhaustion(spends, cycle, tz)
        budget = team_budget(sum((x.spend for x in spends), Decimal(0)), s.static_caps, cycle, tz)
        findings.extend([budget] if budget else [])
        return findings

    async def _cooled(self, findings: list[Finding], s: DetectionSettings) -> list[Finding]:
        """Without the statistical findings whose detector alerted on the same user within its
        cooldown (a new level is one alert, not one per day)."""
        cooldowns = {ZSCORE: s.zscore.cooldown_days, SEASONAL: s.seasonal.cooldown_days}
        cooling = [f for f in findings if cooldowns.get(f.detector)]
        if not cooling:
            return findings
        since = min(f.window_start - timedelta(days=cooldowns[f.detector]) for f in cooling)
        earlier = await repository.earlier_windows(
            self._db,
            subjects=sorted({f.subject for f in cooling}),
            detectors=sorted({f.detector for f in cooling}),
            since=since,
        )
        kept = []
        for f in findings:
            days = cooldowns.get(f.detector)
            starts = earlier.get((f.subject, f.detector), [])
            recent = days and any(
                f.window_start - timedelta(days=days) <= start < f.window_start for start in starts
            )
            kept.extend([] if recent else [f])
        return kept

    # --- reporting -------------------------------------------------------------------------------

    async def _report_all(self, findings: Iterable[Finding]) -> list[AnomalyDetectedV1]:
        unique = _worst_per_fingerprint(findings)
        states = await repository.states(self._db, fingerprints=[f.fingerprint for f in unique])
        published = []
        for finding in unique:
            event = await self._report(finding, states.get(finding.fingerprint))
            published.extend([event] if event else [])
        return published

    async def _report(
        self, finding: Finding, state: FingerprintState | None
    ) -> AnomalyDetectedV1 | None:
        generation = state.generation if state else 0
        if (
            state
            and state.open_rank is not None
            and state.open_rank >= SEVERITY_RANK[finding.severity]
        ):
            return None
        if finding.evidence_first_at is None and finding.detector in _CUMULATIVE:
            finding = await self._with_crossing(finding)
        event = to_event(finding, self._clock(), generation)
        await publish_event(
            self._js, subjects.anomalies_events(finding.detector), event, msg_id=event.anomaly_id
        )
        await repository.record(self._db, event)
        self._settled.discard(event.fingerprint)
        metrics.ANOMALIES.labels(event.detector, event.severity).inc()
        log.info(
            "anomaly.detected",
            fingerprint=event.fingerprint,
            severity=event.severity,
            value=str(event.value),
            threshold=str(event.threshold),
        )
        return event

    async def _with_crossing(self, finding: Finding) -> Finding:
        """The event at which a cumulative amount went over the threshold: its evidence."""
        on_demand = finding.detector == PLAN_EXHAUSTION
        amount = int(finding.threshold * MICROS)
        start = finding.window_start
        if finding.subject == TEAM:  # the team's events of one day, not of the whole cycle
            first, end = (
                start.astimezone(self._tz).date(),
                finding.window_end.astimezone(self._tz).date(),
            )
            total = 0
            for day, micros in await repository.day_totals(self._db, first=first, end=end):
                if total + micros > amount:
                    start, amount = day_window(day, self._tz)[0], amount - total
                    break
                total += micros
        crossed = await repository.crossed_at(
            self._db,
            user=None if finding.subject == TEAM else finding.subject,
            start=start,
            end=finding.window_end,
            amount_micros=amount,
            on_demand_only=on_demand,
        )
        return replace(finding, evidence_first_at=crossed)

    # --- clearing --------------------------------------------------------------------------------

    async def _clear(self, s: DetectionSettings) -> list[AnomalyDetectedV1 | AnomalyClearedV1]:
        """Clear what no longer holds: closed windows re-evaluated on their final data, ended
        runaways, and info findings whose window closed."""
        through = self._clock() - self._clear_grace  # usage up to here has arrived
        candidates = [
            a
            for a in await repository.open_anomalies(self._db)
            if a.fingerprint not in self._settled
        ]
        verdicts: dict[str, str | None] = {}  # fingerprint -> why it cleared (None: it holds)
        day_keys: dict[str, tuple[str, date]] = {}  # day windows to evaluate again
        cycles: dict[str, date] = {}  # cycle outliers to evaluate again
        for a in candidates:
            closed = a.window_end <= through
            key = date.fromisoformat(parse_fingerprint(a.fingerprint)[2].partition("/")[0])
            if a.detector == RUNAWAY:
                if closed:
                    verdicts[a.fingerprint] = "the day ended"
                elif through > a.detected_at:
                    verdicts[a.fingerprint] = await self._runaway_verdict(a, key, s, through)
            elif not closed:
                continue
            elif a.severity == "info":
                verdicts[a.fingerprint] = "the window closed"
            elif a.detector == CYCLE_OUTLIER:
                cycles[a.fingerprint] = key
            elif a.detector in _CUMULATIVE or a.detector == EXPENSIVE_MODEL:
                verdicts[a.fingerprint] = None  # a cumulative amount does not go back down
            else:
                day_keys[a.fingerprint] = (a.subject, key)
        still: set[str] = set()
        if day_keys:
            found = await self._day_findings(
                set(day_keys.values()), s, fresh_only=False, since=None
            )
            still |= {f.fingerprint for f in found}
        anchor = await repository.cycle_anchor(self._db)
        for start in set(cycles.values()):
            found = await self._cycle_findings(cycle_containing(start, anchor or start), s)
            still |= {f.fingerprint for f in found}
        for fingerprint in [*day_keys, *cycles]:
            below = "the window closed below the threshold"
            verdicts[fingerprint] = None if fingerprint in still else below
        published: list[AnomalyDetectedV1 | AnomalyClearedV1] = []
        for a in candidates:
            if a.fingerprint not in verdicts:
                continue
            reason = verdicts[a.fingerprint]
            if reason is not None:
                published.append(await self._publish_clear(a, reason))
            elif a.window_end <= through:
                self._settled.add(a.fingerprint)  # final and still true: for people to resolve
        return published

    async def _runaway_verdict(
        self, a: AnomalyDetectedV1, day: date, s: DetectionSettings, through: datetime
    ) -> str | None:
        """None while the burst or the headless run goes on, else why it cleared."""
        r = s.runaway
        window = timedelta(minutes=r.window_minutes)
        recent = await repository.requests(
            self._db, users=[a.subject], start=through - window, end=through
        )
        mine = recent.get(a.subject, [])
        peaks = (await self._usual_peaks([a.subject], day, s))[a.subject]
        if burst_holds(mine, peaks, r, through) or any(q.headless for q in mine):
            return None
        return "the burst ended"

    async def _publish_clear(self, a: AnomalyDetectedV1, reason: str) -> AnomalyClearedV1:
        state = (await repository.states(self._db, fingerprints=[a.fingerprint]))[a.fingerprint]
        cleared = AnomalyClearedV1(
            anomaly_id=str(uuid.uuid5(_IDS, f"{a.fingerprint}|cleared|{state.generation}")),
            fingerprint=a.fingerprint,
            detector=a.detector,
            subject=a.subject,
            metric=a.metric,
            unit=a.unit,
            value=a.value,
            threshold=a.threshold,
            baseline=a.baseline,
            window_start=a.window_start,
            window_end=a.window_end,
            model=a.model,
            message=f"Cleared ({reason}): {a.message}",
            cleared_at=self._clock(),
        )
        await publish_event(
            self._js, subjects.anomalies_events(a.detector), cleared, msg_id=cleared.anomaly_id
        )
        await repository.record_cleared(self._db, cleared, severity=a.severity)
        metrics.CLEARED.labels(a.detector).inc()
        log.info("anomaly.cleared", fingerprint=a.fingerprint, reason=reason)
        return cleared

    # --- helpers ---------------------------------------------------------------------------------

    def _today(self) -> date:
        return self._clock().astimezone(self._tz).date()

    async def _all_users(self, today: date, days: int) -> list[str]:
        rows = await self._db.fetch(
            "SELECT DISTINCT user_email FROM usage_daily_user_model WHERE day >= $1",
            today - timedelta(days=days),
        )
        return [r["user_email"] for r in rows]


def _worst_per_fingerprint(findings: Iterable[Finding]) -> list[Finding]:
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
