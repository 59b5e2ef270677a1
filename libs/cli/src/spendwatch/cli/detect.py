"""`spendwatch detect --once`: evaluate recent days and the billing cycle now, with a table."""

from __future__ import annotations

from rich.table import Table

from spendwatch.cli.connect import bus_and_db
from spendwatch.common.events import AnomalyClearedV1, AnomalyDetectedV1
from spendwatch.detector.service import Detector
from spendwatch.detector.settings import DetectorSettings

Outcome = AnomalyDetectedV1 | AnomalyClearedV1


async def detect_once(settings: DetectorSettings, *, days: int) -> list[Outcome]:
    """Run every rule over the last `days` days and one tick; returns what was published."""
    async with bus_and_db(settings) as (js, pool):
        detector = Detector(db=pool, js=js, timezone=settings.team_timezone)
        found: list[Outcome] = list(await detector.evaluate_days(days))
        return found + await detector.tick()


def outcome_table(outcomes: list[Outcome]) -> Table:
    """What was published, worst first."""
    table = Table(title=f"{len(outcomes)} anomalies published (already known ones are not)")
    for column in ("severity", "detector", "subject", "value", "threshold", "message"):
        table.add_column(column, overflow="fold")
    rank = {"critical": 0, "warning": 1, "info": 2}
    for o in sorted(outcomes, key=lambda o: (rank.get(getattr(o, "severity", ""), 3), o.subject)):
        severity = o.severity if isinstance(o, AnomalyDetectedV1) else "cleared"
        table.add_row(severity, o.detector, o.subject, f"{o.value}", f"{o.threshold}", o.message)
    return table
