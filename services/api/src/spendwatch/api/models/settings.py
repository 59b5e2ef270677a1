"""Bodies of /api/settings: the detection thresholds, their change history.

The thresholds document itself is `spendwatch.common.thresholds.DetectionSettings`, the very
model the detector validates with, so the API cannot accept what the detector would refuse.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, JsonValue

from spendwatch.api.models import ApiModel, QueryModel
from spendwatch.common.events.base import UtcDatetime
from spendwatch.common.thresholds import DetectionSettings

DEFAULT_AUDIT_LIMIT = 50
MAX_AUDIT_LIMIT = 200


class FieldChange(ApiModel):
    """When one threshold (a dotted path such as `spend_spike.multiplier`) last changed."""

    updated_at: UtcDatetime
    updated_by: str


class SettingsOut(ApiModel):
    """The effective thresholds: the defaults with the stored document over them."""

    detection: DetectionSettings
    # Set when the stored document is unusable (the detector fails on it too): `detection` then
    # shows the defaults, and a PUT replaces the document.
    stored_error: str | None = None
    # The stored row's last write; null while everything is at its default.
    updated_at: UtcDatetime | None = None
    updated_by: str | None = None
    # Every threshold changed through the API, with its latest change (from settings_audit).
    fields: dict[str, FieldChange] = Field(default_factory=dict)


class AuditEntry(ApiModel):
    """One changed threshold: its dotted key under `detection.`, old and new value, who, when."""

    audit_id: int
    key: str
    old_value: JsonValue
    new_value: JsonValue
    actor: str
    at: UtcDatetime


class SettingsPutOut(ApiModel):
    """What `PUT /api/settings` stored, and one audit entry per threshold it changed."""

    settings: SettingsOut
    changes: list[AuditEntry]


class AuditQuery(QueryModel):
    """`GET /api/settings/audit`: newest first, keyset-paginated."""

    key: Annotated[str, Field(min_length=1, max_length=200)] | None = Field(
        default=None, description="Only this key or the keys under it (`detection.zscore`)."
    )
    limit: Annotated[int, Field(ge=1, le=MAX_AUDIT_LIMIT)] = DEFAULT_AUDIT_LIMIT
    before: (
        Annotated[int, Field(ge=1, le=2**63 - 1, description="`next_before` of the previous page.")]
        | None
    ) = None


class AuditPage(ApiModel):
    """One page of settings changes, newest first; pass `next_before` as `before` for more."""

    items: list[AuditEntry]
    next_before: int | None


def flatten(document: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"a": {"b": 1}}` as `{"a.b": 1}`: one entry per threshold."""
    leaves: dict[str, Any] = {}
    for name, value in document.items():
        path = f"{prefix}{name}"
        if isinstance(value, dict):
            leaves |= flatten(value, f"{path}.")
        else:
            leaves[path] = value
    return leaves


def changed_paths(old: DetectionSettings, new: DetectionSettings) -> list[str]:
    """The thresholds whose values differ (compared as numbers: 2.50 is 2.5), in order."""
    before, after = flatten(old.model_dump()), flatten(new.model_dump())
    return [path for path, value in after.items() if before.get(path) != value]


def stored_document(settings: DetectionSettings) -> dict[str, Any]:
    """What the `settings` row holds: only the thresholds that differ from the defaults, nested
    as the detector merges them, so a later release's new defaults still apply to the rest."""
    values = flatten(settings.model_dump(mode="json"))
    document: dict[str, Any] = {}
    for path in changed_paths(DetectionSettings(), settings):
        *sections, name = path.split(".")
        node = document
        for section in sections:
            node = node.setdefault(section, {})
        node[name] = values[path]
    return document
