"""`spendwatch report`: the Team overview as terminal tables, from a seeded database."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime

import asyncpg
from rich.console import Console

from spendwatch.cli.report import build_report, render

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)


async def seed(pool: asyncpg.Pool) -> None:
    await pool.execute(
        """
        INSERT INTO usage_daily_user_model (day, user_email, provider, model, events, cost_micros,
                                            first_event_at, last_event_at)
        VALUES ('2026-11-22', 'alice@x.com', 'cursor', 'claude-4.6-opus-max', 10, 41333333,
                now(), now()),
               ('2026-11-21', 'alice@x.com', 'cursor', 'claude-4.5-sonnet', 30, 9000001,
                now(), now()),
               ('2026-11-20', 'bob@x.com', 'cursor', 'claude-4.5-sonnet', 20, 6000000,
                now(), now()),
               ('2026-11-10', 'carol@x.com', 'cursor', 'gpt-5.2', 5, 99000000, now(), now());
        INSERT INTO incidents (incident_id, fingerprint, detector, subject, state, severity,
                               message, evidence_first_at, detected_at)
        VALUES (gen_random_uuid(), 'alice@x.com:spend_spike:2026-11-22', 'spend_spike',
                'alice@x.com', 'open', 'critical', 'Alice: daily spend spiked to $41',
                '2026-11-22 09:00Z', '2026-11-22 09:04Z'),
               (gen_random_uuid(), 'bob@x.com:zscore:2026-11-20', 'zscore', 'bob@x.com',
                'resolved', 'warning', 'Bob: old news', '2026-11-20 09:00Z', '2026-11-20 09:01Z');
        """
    )


async def test_the_report_adds_up_and_lists_what_is_open(pool: asyncpg.Pool) -> None:
    await seed(pool)
    report = await build_report(pool, days=7, timezone="UTC", now=NOW)
    # 11-16 .. 11-22: Carol's 11-10 is outside; $41.333333 + $9.000001 + $6 = $56.333334
    assert (str(report.first_day), str(report.last_day)) == ("2026-11-16", "2026-11-22")
    assert str(report.total) == "56.333334"
    assert [r["user_email"] for r in report.spenders] == ["alice@x.com", "bob@x.com"]
    assert [r["subject"] for r in report.incidents] == ["alice@x.com"]  # resolved ones are not
    console = Console(record=True, width=200)
    console.print(render(report))
    text = console.export_text()
    assert "$56.33 by 2 active users" in text
    assert "$50.33" in text  # Alice over both days
    assert "Alice: daily spend spiked to $41" in text
    assert "4 min" in text  # her incident's MTTD
    assert "2.9 h" in text  # open for 09:04 -> 12:00
    assert "carol" not in text


async def test_spendwatch_report_from_the_command_line(
    pool: asyncpg.Pool, database_url: str
) -> None:
    await seed(pool)
    env = os.environ | {"DATABASE_URL": database_url, "COLUMNS": "200", "TEAM_TIMEZONE": "UTC"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "spendwatch.cli",
        "report",
        "--days",
        "90",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
    text = output.decode()
    assert proc.returncode == 0, text
    # The command uses the real clock, so only what does not depend on the date is checked.
    for expected in ("Top spenders", "Spend by model", "Open incidents", "MTTD", "Alice: daily"):
        assert expected in text
