"""The Cursor Admin API examples of reference/provider-apis.md §1, verbatim, as test data."""

from __future__ import annotations

import copy
from typing import Any

# §1.6 /teams/filtered-usage-events, the official example.
USAGE_EVENTS: dict[str, Any] = {
    "totalUsageEventsCount": 113,
    "pagination": {
        "numPages": 12,
        "currentPage": 1,
        "pageSize": 10,
        "hasNextPage": True,
        "hasPreviousPage": False,
    },
    "usageEvents": [
        {
            "timestamp": "1750979225854",
            "userEmail": "developer@company.com",
            "model": "claude-4.5-sonnet",
            "kind": "Usage-based",
            "maxMode": True,
            "requestsCosts": 5,
            "isTokenBasedCall": True,
            "isChargeable": True,
            "isHeadless": False,
            "tokenUsage": {
                "inputTokens": 126,
                "outputTokens": 450,
                "cacheWriteTokens": 6112,
                "cacheReadTokens": 11964,
                "totalCents": 20.18232,
            },
            "chargedCents": 21.36232,
            "cursorTokenFee": 1.18,
            "isFreeBugbot": False,
        },
        {
            "timestamp": "1750978339901",
            "userEmail": "admin@company.com",
            "model": "claude-4-sonnet-thinking",
            "kind": "Included in Business",
            "maxMode": True,
            "requestsCosts": 1.4,
            "isTokenBasedCall": False,
            "isChargeable": False,
            "isHeadless": False,
            "chargedCents": 8,
            "isFreeBugbot": False,
        },
    ],
    "period": {"startDate": 1748411762359, "endDate": 1751003762359},
}

# §1.6 quirk: the official example's discounted event (40.167 x 0.9 + 1.18 = 37.33).
DISCOUNTED_EVENT: dict[str, Any] = {
    "timestamp": "1750979000000",
    "userEmail": "developer@company.com",
    "model": "claude-4.5-sonnet",
    "kind": "Usage-based",
    "maxMode": False,
    "requestsCosts": 2,
    "isTokenBasedCall": True,
    "isChargeable": True,
    "isHeadless": False,
    "tokenUsage": {
        "inputTokens": 1000,
        "outputTokens": 200,
        "cacheWriteTokens": 0,
        "cacheReadTokens": 5000,
        "totalCents": 40.167,
        "discountPercentOff": 10,
    },
    "chargedCents": 37.33,
    "cursorTokenFee": 1.18,
    "isFreeBugbot": False,
}

# §1.5 /teams/spend.
SPEND: dict[str, Any] = {
    "teamMemberSpend": [
        {
            "userId": 12345,
            "spendCents": 2450,
            "overallSpendCents": 2450,
            "fastPremiumRequests": 1250,
            "name": "Alex",
            "email": "developer@company.com",
            "role": "member",
            "hardLimitOverrideDollars": 100,
            "monthlyLimitDollars": 200,
        }
    ],
    "subscriptionCycleStart": 1708992000000,
    "totalMembers": 15,
    "totalPages": 1,
}

# §1.2 /teams/members: current, and the two older shapes.
MEMBERS: dict[str, Any] = {
    "teamMembers": [
        {
            "id": 12345,
            "name": "Alex",
            "email": "developer@company.com",
            "role": "member",
            "isRemoved": False,
        },
        {
            "id": 12346,
            "name": "Sam",
            "email": "admin@company.com",
            "role": "owner",
            "isRemoved": False,
        },
    ]
}
MEMBERS_BARE: list[dict[str, Any]] = [
    {"name": "Alex", "email": "developer@company.com", "role": "member"},
    {"name": "Sam", "email": "admin@company.com", "role": "free-owner"},
]
MEMBERS_WRAPPED_OLD: dict[str, Any] = {"teamMembers": copy.deepcopy(MEMBERS_BARE)}

# §1.4 /teams/daily-usage-data.
DAILY: dict[str, Any] = {
    "data": [
        {
            "userId": 12345,
            "day": "2024-03-18",
            "date": 1710720000000,
            "isActive": True,
            "totalLinesAdded": 1543,
            "totalLinesDeleted": 892,
            "acceptedLinesAdded": 1102,
            "acceptedLinesDeleted": 645,
            "totalApplies": 87,
            "totalAccepts": 73,
            "totalRejects": 14,
            "totalTabsShown": 342,
            "totalTabsAccepted": 289,
            "composerRequests": 45,
            "chatRequests": 128,
            "agentRequests": 12,
            "cmdkUsages": 67,
            "subscriptionIncludedReqs": 180,
            "apiKeyReqs": 0,
            "usageBasedReqs": 5,
            "bugbotUsages": 3,
            "mostUsedModel": "gpt-5",
            "applyMostUsedExtension": ".tsx",
            "tabMostUsedExtension": ".ts",
            "clientVersion": "0.25.1",
            "email": "developer@company.com",
        }
    ],
    "period": {"startDate": 1710720000000, "endDate": 1710892800000},
    "pagination": {
        "page": 1,
        "pageSize": 1000,
        "totalUsers": 150,
        "totalPages": 1,
        "hasNextPage": False,
        "hasPreviousPage": False,
    },
}

# §1.10 GET /teams/groups (shape from the docs; values made up).
GROUPS: dict[str, Any] = {
    "groups": [
        {
            "id": "group_abc",
            "name": "Platform",
            "type": "BILLING",
            "directoryGroupId": None,
            "memberCount": 2,
            "createdAt": "2026-01-05T10:00:00.000Z",
            "updatedAt": "2026-02-01T10:00:00.000Z",
            "spendCents": 12345,
            "currentMembers": [
                {
                    "userId": "user_aaa",
                    "name": "Alex",
                    "email": "Developer@Company.com",
                    "joinedAt": "2026-01-05T10:00:00.000Z",
                    "leftAt": None,
                    "spendCents": 10000,
                },
                {
                    "userId": "user_bbb",
                    "name": "Sam",
                    "email": "admin@company.com",
                    "joinedAt": "2026-01-06T10:00:00.000Z",
                    "leftAt": None,
                    "spendCents": 2345,
                },
            ],
            "formerMembers": [],
            "dailySpend": [{"date": "2026-02-01", "spendCents": 345}],
        }
    ],
    "unassignedGroup": {
        "id": "group_unassigned",
        "name": "Unassigned",
        "type": "BILLING",
        "directoryGroupId": None,
        "memberCount": 1,
        "createdAt": "2026-01-01T00:00:00.000Z",
        "updatedAt": "2026-01-01T00:00:00.000Z",
        "spendCents": 0,
        "currentMembers": [
            {
                "userId": "user_ccc",
                "name": "Kim",
                "email": "kim@company.com",
                "joinedAt": "2026-01-01T00:00:00.000Z",
                "leftAt": None,
                "spendCents": 0,
            }
        ],
        "formerMembers": [],
        "dailySpend": [],
    },
    "billingCycle": {
        "cycleStart": "2026-02-01T00:00:00.000Z",
        "cycleEnd": "2026-03-01T00:00:00.000Z",
    },
}


DROP: Any = object()
"""Pass as a change to `event` to delete that key."""


def event(index: int = 0, **changes: Any) -> dict[str, Any]:
    """A deep copy of one example usage event, with top-level changes (`DROP` deletes a key)."""
    raw: dict[str, Any] = copy.deepcopy(USAGE_EVENTS["usageEvents"][index])
    for key, value in changes.items():
        if value is DROP:
            raw.pop(key, None)
        else:
            raw[key] = value
    return raw
