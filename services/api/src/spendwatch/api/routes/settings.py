"""`/api/settings`: the detection thresholds (read, replace) and their audit trail.

A PUT is validated by the detector's own model, stored with one `settings_audit` row per changed
threshold in one transaction, and announced on `settings.events.v1.updated` after the commit.
The detector reads the table on every evaluation, so the event only makes it act sooner: a failed
publish is logged, not reported as a failed PUT.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web
from pydantic import ValidationError

from spendwatch.api.auth import ANONYMOUS
from spendwatch.api.keys import DB, NATS, PRINCIPAL
from spendwatch.api.models import json_response
from spendwatch.api.models.settings import (
    AuditEntry,
    AuditPage,
    AuditQuery,
    FieldChange,
    SettingsOut,
    SettingsPutOut,
    changed_paths,
    flatten,
    stored_document,
)
from spendwatch.api.openapi import operation
from spendwatch.api.repository import settings as repository
from spendwatch.api.validation import describe, parse_query, read_body
from spendwatch.common.errors import MessagingError
from spendwatch.common.events import SettingsUpdatedV1
from spendwatch.common.logging import get_logger
from spendwatch.common.messaging import publish_event, subjects
from spendwatch.common.thresholds import SETTINGS_KEY, DetectionSettings

log = get_logger("spendwatch.api.settings")

routes = web.RouteTableDef()

AUDIT_PREFIX = f"{SETTINGS_KEY}."


def _effective(stored: Any) -> tuple[DetectionSettings, str | None]:
    """The thresholds of a stored document; the defaults and why, if it cannot be used.

    A document written around the API (SQL by hand, a bad restore) must not lock the settings
    page: GET says what is wrong, and a PUT replaces it.
    """
    if stored is not None and not isinstance(stored, dict):
        reason = f"not a JSON object but {type(stored).__name__}"
    else:
        try:
            return DetectionSettings.merged(stored), None
        except ValidationError as exc:
            reason = describe(exc)
    log.warning("settings.stored_invalid", key=SETTINGS_KEY, reason=reason)
    return DetectionSettings(), f"the stored document cannot be used ({reason})"


async def _current(pool: asyncpg.Pool) -> SettingsOut:
    row = await repository.get_row(pool, key=SETTINGS_KEY)
    latest = await repository.latest_changes(pool, prefix=AUDIT_PREFIX)
    detection, stored_error = _effective(row["value"] if row else None)
    return SettingsOut(
        detection=detection,
        stored_error=stored_error,
        updated_at=row["updated_at"] if row else None,
        updated_by=row["updated_by"] if row else None,
        fields={
            r["key"].removeprefix(AUDIT_PREFIX): FieldChange(
                updated_at=r["at"], updated_by=r["actor"]
            )
            for r in latest
        },
    )


@routes.get("/api/settings")
@operation("The effective detection thresholds", response=SettingsOut, tag="settings")
async def get_settings(request: web.Request) -> web.Response:
    """Defaults merged with the stored document, and who last changed what."""
    return json_response(await _current(request.app[DB]))


@routes.put("/api/settings")
@operation(
    "Replace the detection thresholds (omitted values return to their defaults)",
    body=DetectionSettings,
    response=SettingsPutOut,
    tag="settings",
)
async def put_settings(request: web.Request) -> web.Response:
    """Store the thresholds; one audit row per changed value; nothing changed, nothing written."""
    new = await read_body(request, DetectionSettings, strict=True)
    actor = request.get(PRINCIPAL, ANONYMOUS).actor
    pool = request.app[DB]
    async with pool.acquire() as conn, conn.transaction():
        await repository.lock(conn, key=SETTINGS_KEY)
        row = await repository.get_row(conn, key=SETTINGS_KEY)
        old, stored_error = _effective(row["value"] if row else None)
        paths = changed_paths(old, new)
        before = flatten(old.model_dump(mode="json"))
        after = flatten(new.model_dump(mode="json"))
        changes = [(AUDIT_PREFIX + p, before.get(p), after[p]) for p in paths]
        if row is not None and stored_error is not None:
            # Replacing an unusable document is a change even when every value is a default.
            changes.insert(0, (SETTINGS_KEY, row["value"], stored_document(new)))
        audit = []
        if changes:
            written = await repository.put_row(
                conn, key=SETTINGS_KEY, value=stored_document(new), actor=actor
            )
            audit = await repository.add_audit(conn, changes=changes, actor=actor)
    if changes:
        log.info("settings.updated", key=SETTINGS_KEY, actor=actor, changed=[c[0] for c in changes])
        await _announce(request, actor=actor, updated_at=written["updated_at"])
    return json_response(
        SettingsPutOut(
            settings=await _current(pool),
            changes=[AuditEntry.model_validate(dict(r)) for r in audit],
        )
    )


async def _announce(request: web.Request, *, actor: str, updated_at: Any) -> None:
    event = SettingsUpdatedV1(key=SETTINGS_KEY, actor=actor, updated_at=updated_at)
    try:
        await publish_event(
            request.app[NATS].jetstream(),
            subjects.SETTINGS_UPDATED,
            event,
            msg_id=f"settings:{SETTINGS_KEY}:{updated_at.isoformat()}",
        )
    except MessagingError as exc:
        # Stored and audited; the detector picks the change up at its next evaluation anyway.
        log.warning("settings.announce_failed", key=SETTINGS_KEY, error=str(exc))


@routes.get("/api/settings/audit")
@operation(
    "Changes to the settings, newest first, keyset-paginated",
    query=AuditQuery,
    response=AuditPage,
    tag="settings",
)
async def settings_audit(request: web.Request) -> web.Response:
    """One row per changed threshold: key, old and new value, actor, time."""
    query = parse_query(request, AuditQuery)
    rows = await repository.audit_page(
        request.app[DB], key=query.key, before=query.before, limit=query.limit + 1
    )
    items = [AuditEntry.model_validate(dict(r)) for r in rows[: query.limit]]
    next_before = items[-1].audit_id if len(rows) > query.limit else None
    return json_response(AuditPage(items=items, next_before=next_before))


__all__ = ["routes"]
