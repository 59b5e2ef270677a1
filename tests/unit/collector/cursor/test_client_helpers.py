"""The Cursor client's pure helpers: Retry-After, date windows, when paging stops."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from spendwatch.collector.cursor.client import _more, parse_retry_after, windows
from spendwatch.collector.cursor.normalise import Page

NOW = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("0", 0.0),
        ("7", 7.0),
        (" 2.5 ", 2.5),
        ("Sat, 21 Nov 2026 12:00:30 GMT", 30.0),
        ("Sat, 21 Nov 2026 11:59:00 GMT", 0.0),  # in the past: go now
        ("Sat, 21 Nov 2026 12:01:00 -0000", 60.0),
        ("-1", None),
        ("nan", None),
        ("inf", None),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, now=NOW) == seconds


def test_windows_cover_the_range_in_order_without_gaps() -> None:
    end = NOW + timedelta(days=75, hours=3)
    cut = windows(NOW, end)
    assert cut[0][0] == NOW
    assert cut[-1][1] == end
    assert all(a[1] == b[0] for a, b in itertools.pairwise(cut))
    assert all(hi - lo <= timedelta(days=30) for lo, hi in cut)
    assert len(cut) == 3
    assert windows(NOW, NOW) == []
    assert windows(NOW, NOW - timedelta(days=1)) == []


def test_windows_need_aware_datetimes() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        windows(datetime(2026, 1, 1), NOW)


@pytest.mark.parametrize(
    ("page", "known", "expected"),
    [
        (Page(number=1, total_pages=3), 3, True),
        (Page(number=3, total_pages=3), 3, False),
        (Page(number=1, total_pages=0), 0, False),  # no results at all
        (Page(number=2, envelope_ok=False), 3, True),  # unreadable, but the count is known
        (Page(number=1, envelope_ok=False), None, False),  # unreadable and no count: stop
        (Page(number=1, has_next=True, received=10), None, True),
        (Page(number=1, has_next=False, received=10), None, False),
        (Page(number=1, received=10), None, True),  # no paging info: a full page asks again
        (Page(number=2, received=4), None, False),  # a short page is the last
        (Page(number=1, received=0), None, False),
        (Page(number=1, received=25), None, False),  # the server ignored pageSize: all of it
    ],
)
def test_when_paging_stops(page: Page, known: int | None, expected: bool) -> None:
    assert _more(page, known, page_size=10) is expected
