"""Cursor Admin API: raw models, pure normalisers to our v1 events, and a paced async client."""

from spendwatch.collector.cursor.client import CursorAdminClient
from spendwatch.collector.cursor.errors import (
    CursorAuthError,
    CursorBadResponse,
    CursorError,
    CursorRateLimited,
    CursorRequestError,
    CursorUnavailable,
)
from spendwatch.collector.cursor.normalise import (
    DailyUsagePage,
    GroupsListing,
    SpendPage,
    UsageEventsPage,
)

__all__ = [
    "CursorAdminClient",
    "CursorAuthError",
    "CursorBadResponse",
    "CursorError",
    "CursorRateLimited",
    "CursorRequestError",
    "CursorUnavailable",
    "DailyUsagePage",
    "GroupsListing",
    "SpendPage",
    "UsageEventsPage",
]
