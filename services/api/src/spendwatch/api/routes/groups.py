"""`/api/groups`: billing groups with members and spend; local edits; CSV import and export.

Edits are stored as overrides beside the provider's roster (migration 0007), so the next
collection does not undo them. Nothing is pushed to Cursor or HiBob.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from datetime import date, datetime
from zoneinfo import ZoneInfo

import asyncpg
from aiohttp import web

from spendwatch.api import hibob
from spendwatch.api.auth import ANONYMOUS
from spendwatch.api.errors import ProblemError
from spendwatch.api.figures import last_days, team_today
from spendwatch.api.keys import DB, PRINCIPAL, SETTINGS
from spendwatch.api.models import json_response
from spendwatch.api.models.groups import (
    AppliedOut,
    AssignMember,
    CreateGroup,
    GroupOperation,
    GroupOut,
    GroupsPage,
    GroupsPatch,
    GroupsPatchResult,
    GroupsQuery,
    ImportPlanOut,
    ImportQuery,
    MemberOut,
    OperationResult,
    PlannedGroupOut,
    RenameGroup,
    RenameOut,
    encode_cursor,
)
from spendwatch.api.openapi import operation
from spendwatch.api.repository import groups as repository
from spendwatch.api.routes.stats import current_cycle
from spendwatch.api.validation import parse_query, read_body, read_text
from spendwatch.common.events.base import utc_now
from spendwatch.common.logging import get_logger

log = get_logger("spendwatch.api.groups")

routes = web.RouteTableDef()

DEFAULT_DAYS = 30
EXPORT_COLUMNS = ("email", "name", "group", "group_id")


async def _window(request: web.Request, query: GroupsQuery) -> tuple[date, date]:
    """First and last team-timezone day of the spend window (today included)."""
    timezone = request.app[SETTINGS].team_timezone
    if query.cycle == "current":
        _, so_far = await current_cycle(request.app[DB], timezone)
    else:
        so_far = last_days(team_today(utc_now(), timezone), query.days or DEFAULT_DAYS)
    return so_far.first, so_far.last


@routes.get("/api/groups")
@operation(
    "Billing groups with members and spend, by name, keyset-paginated",
    query=GroupsQuery,
    response=GroupsPage,
    tag="groups",
)
async def list_groups(request: web.Request) -> web.Response:
    """Groups with their members' spend over `days` (default 30) or the current cycle."""
    query = parse_query(request, GroupsQuery)
    pool = request.app[DB]
    first, last = await _window(request, query)
    rows = await repository.group_page(pool, after=query.after, limit=query.limit + 1)
    page = rows[: query.limit]
    members: dict[str, list[MemberOut]] = {}
    for m in await repository.members_with_spend(
        pool, group_keys=[r["group_key"] for r in page], first=first, last=last
    ):
        members.setdefault(m["group_key"], []).append(
            MemberOut(
                email=m["user_email"],
                name=m["name"],
                origin=m["origin"],
                spend_micros=m["spend_micros"],
                events=m["events"],
            )
        )
    items = []
    for r in page:
        people = members.get(r["group_key"], [])
        items.append(
            GroupOut(
                group_id=r["group_key"],
                name=r["name"],
                origin=r["origin"],
                provider_name=r["provider_name"],
                member_count=len(people),
                spend_micros=sum(p.spend_micros for p in people),
                events=sum(p.events for p in people),
                members=people,
            )
        )
    next_cursor = None
    if len(rows) > query.limit:
        next_cursor = encode_cursor(items[-1].name, items[-1].group_id)
    unassigned = []
    if query.cursor is None:
        unassigned = [
            MemberOut(
                email=m["user_email"],
                name=m["name"],
                origin=None,
                spend_micros=m["spend_micros"],
                events=m["events"],
            )
            for m in await repository.unassigned_with_spend(pool, first=first, last=last)
        ]
    return json_response(
        GroupsPage(
            first_day=first,
            last_day=last,
            items=items,
            next_cursor=next_cursor,
            unassigned=unassigned,
        )
    )


@routes.patch("/api/groups")
@operation(
    "Create, rename groups and reassign members (all operations or none)",
    body=GroupsPatch,
    response=GroupsPatchResult,
    errors=(404, 409),
    tag="groups",
)
async def patch_groups(request: web.Request) -> web.Response:
    """Apply the operations in order in one transaction; the first failure undoes them all."""
    body = await read_body(request, GroupsPatch)
    actor = request.get(PRINCIPAL, ANONYMOUS).actor
    async with request.app[DB].acquire() as conn, conn.transaction():
        await repository.lock(conn)
        results = []
        for index, op in enumerate(body.operations):
            try:
                results.append(await _apply(conn, op, actor=actor))
            except ProblemError as exc:
                raise ProblemError(
                    exc.status, exc.title, detail=f"operations.{index}: {exc.detail}"
                ) from None
    log.info(
        "groups.edited",
        actor=actor,
        operations=len(results),
        changed=sum(r.changed for r in results),
    )
    return json_response(GroupsPatchResult(results=results))


async def _free_name(conn: asyncpg.Connection, name: str, *, group_key: str | None) -> None:
    taken = await repository.group_named(conn, name=name)
    if taken is not None and taken != group_key:
        raise ProblemError(409, "Group name taken", detail=f"a group is already called {name!r}")


async def _apply(conn: asyncpg.Connection, op: GroupOperation, *, actor: str) -> OperationResult:
    if isinstance(op, CreateGroup):
        await _free_name(conn, op.name, group_key=None)
        key = await repository.create_local(conn, name=op.name, actor=actor)
        return OperationResult(action="create", group_id=key, name=op.name, changed=True)
    if isinstance(op, RenameGroup):
        group = await repository.find_group(conn, group_key=op.group_id)
        if group is None:
            raise ProblemError(404, "Group not found", detail=f"no group {op.group_id}")
        await _free_name(conn, op.name, group_key=op.group_id)
        if group["name"] != op.name:
            await repository.rename(
                conn,
                group_key=op.group_id,
                origin=group["origin"],
                provider_name=group["provider_name"],
                name=op.name,
                actor=actor,
            )
        return OperationResult(
            action="rename", group_id=op.group_id, name=op.name, changed=group["name"] != op.name
        )
    if isinstance(op, AssignMember):
        target = op.group_id or await repository.group_named(conn, name=op.group_name or "")
        group = await repository.find_group(conn, group_key=target) if target else None
        if target is None or group is None:
            raise ProblemError(
                404, "Group not found", detail=f"no group {op.group_id or op.group_name!r}"
            )
        if not await repository.is_member(conn, email=op.email):
            raise ProblemError(
                404, "Member not found", detail=f"{op.email} is in no provider's roster"
            )
        before = await repository.memberships(conn, email=op.email)
        await repository.set_override(
            conn, email=op.email, group_key=target, source="api", actor=actor
        )
        return OperationResult(
            action="assign",
            group_id=target,
            name=group["name"],
            email=op.email,
            changed=before != {target},
        )
    dropped = await repository.reset_override(conn, email=op.email)
    return OperationResult(action="reset", email=op.email, changed=dropped)


@routes.post("/api/groups/import")
@operation(
    "Import a HiBob (or spendwatch export) CSV: preview the plan, or apply all or some of it",
    query=ImportQuery,
    response=ImportPlanOut,
    errors=(409, 422),
    tag="groups",
    body_media="text/csv",
    raw_body=True,
)
async def import_groups(request: web.Request) -> web.Response:
    """`mode=preview` (default) plans; `mode=apply` writes the chosen changes as overrides."""
    query = parse_query(request, ImportQuery)
    text = await read_text(request, what="CSV")
    try:
        parsed = hibob.parse_csv(text)
    except hibob.CsvFormatError as exc:
        raise ProblemError(422, "Unreadable CSV", detail=str(exc)) from None
    pool = request.app[DB]
    if query.mode == "preview":
        plan = hibob.plan_import(parsed, await repository.current_state(pool))
        return json_response(_plan_out(plan))
    actor = request.get(PRINCIPAL, ANONYMOUS).actor
    async with pool.acquire() as conn, conn.transaction():
        await repository.lock(conn)
        plan = hibob.plan_import(parsed, await repository.current_state(conn))
        if query.plan_id is not None and plan.plan_id != query.plan_id:
            raise ProblemError(
                409,
                "Plan changed",
                detail="the groups changed since the preview; preview again and re-select",
            )
        try:
            chosen = hibob.select(
                plan,
                accept=query.items(query.accept),
                reject=query.items(query.reject),
                ids=query.plan_id is not None,
            )
        except ValueError as exc:
            raise ProblemError(422, "Invalid selection", detail=str(exc)) from None
        for rename in chosen.renames:
            await _free_name(conn, rename.to_name, group_key=rename.group_id)
            group = await repository.find_group(conn, group_key=rename.group_id)
            assert group is not None  # the plan was made in this transaction
            await repository.rename(
                conn,
                group_key=rename.group_id,
                origin=group["origin"],
                provider_name=group["provider_name"],
                name=rename.to_name,
                actor=actor,
            )
        created: dict[str, PlannedGroupOut] = {}
        for change in chosen.changes:
            key = change.to_group_id
            if key is None:
                new = created.get(change.to_group.lower())
                if new is None:
                    group_id = await repository.create_local(
                        conn, name=change.to_group, actor=actor
                    )
                    new = PlannedGroupOut(name=change.to_group, group_id=group_id, members=0)
                created[change.to_group.lower()] = new.model_copy(
                    update={"members": new.members + 1}
                )
                key = new.group_id
            assert key is not None
            await repository.set_override(
                conn, email=change.email, group_key=key, source="import", actor=actor
            )
    log.info(
        "groups.imported",
        actor=actor,
        moved=len(chosen.changes),
        created=len(created),
        renamed=len(chosen.renames),
    )
    applied = AppliedOut(
        moved=[c.email for c in chosen.changes],
        created_groups=list(created.values()),
        renamed_groups=[RenameOut.model_validate(dataclasses.asdict(r)) for r in chosen.renames],
    )
    return json_response(_plan_out(plan, applied=applied))


def _plan_out(plan: hibob.Plan, *, applied: AppliedOut | None = None) -> ImportPlanOut:
    out = ImportPlanOut.model_validate(dataclasses.asdict(plan))
    return out.model_copy(update={"applied": applied})


@routes.get("/api/groups/export")
@operation(
    "Every group membership as CSV (email, name, group, group_id); re-importable",
    tag="groups",
    response_media="text/csv",
    raw_response=True,
)
async def export_groups(request: web.Request) -> web.Response:
    """The effective mapping; importing it back plans no change."""
    rows = await repository.export_rows(request.app[DB])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(EXPORT_COLUMNS)
    for r in rows:
        writer.writerow((r["user_email"], r["name"] or "", r["group_name"], r["group_key"]))
    today = datetime.now(ZoneInfo(request.app[SETTINGS].team_timezone)).date()
    return web.Response(
        text=out.getvalue(),
        content_type="text/csv",
        charset="utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="group-mapping-{today.isoformat()}.csv"'
        },
    )


__all__ = ["routes"]
