"""Billing-group CSV imports, parsed and planned without I/O.

Two formats, told apart by their header (case and spacing ignored):

- HiBob's People Directory export: `Email` and `Department`, optionally `Group`, `Team`,
  `Display name`, `Job title`. Each person's group is `Parent > Team`:
  `Group > Team` when both are given and differ; `Group > Group` with only a Group;
  `Department > Team` with only a Team; else `Department > General`. Teams with fewer than
  MIN_TEAM_SIZE known members merge upward: into their parent's sole other team if it has
  exactly one, else into `Parent > General`; a `General` still too small merges into its
  parent's largest team; anything still too small ends in `General > General`.
- spendwatch's own export (`GET /api/groups/export`): `email`, `group`, optionally `name`,
  `group_id`; applied as written, so exporting and importing again plans nothing.

People the CSV does not list keep their groups; people spendwatch does not know are reported,
not created. The CSV module reads quoted commas correctly (the peer tool's split(",") did not).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

MIN_TEAM_SIZE = 3
GENERAL = "General"
SEPARATOR = " > "
MAX_ROWS = 50_000
MAX_NAME = 200

Format = Literal["hibob", "backup"]

# Header spellings seen in HiBob exports, normalised (lower case, single spaces).
_ALIASES: dict[str, tuple[str, ...]] = {
    "email": ("email", "work email", "e-mail", "email address"),
    "department": ("department",),
    "group": ("group",),
    "team": ("team",),
    "name": ("display name", "name", "full name"),
    "title": ("job title", "title"),
    "group_id": ("group_id", "group id"),
}


class CsvFormatError(ValueError):
    """The CSV cannot be read as either format; the message says why, for a person."""


@dataclass(frozen=True)
class CsvRow:
    """One person of the CSV (line = its line number in the file, header = 1)."""

    line: int
    email: str
    name: str | None = None
    department: str | None = None
    group: str | None = None
    team: str | None = None
    title: str | None = None
    group_id: str | None = None


@dataclass(frozen=True)
class Skipped:
    """A line that was not used, and why."""

    line: int
    reason: str


@dataclass(frozen=True)
class ParsedCsv:
    """The people of a CSV and the lines that were left out."""

    format: Format
    rows: list[CsvRow]
    skipped: list[Skipped]


@dataclass(frozen=True)
class Current:
    """What spendwatch has now: known people (email -> name), their groups, and every group."""

    members: Mapping[str, str | None]
    memberships: Mapping[str, frozenset[str]]  # email -> group keys
    groups: Mapping[str, str]  # group key -> name


@dataclass(frozen=True)
class Change:
    """Move one person into `to_group` (a new group when `to_group_id` is None).

    `id` is the change's position in its plan (1, 2, ...): with the plan's `plan_id`, a short
    way to select it.
    """

    id: int
    email: str
    name: str | None
    department: str | None
    title: str | None
    current_groups: list[str]
    to_group: str
    to_group_id: str | None


@dataclass(frozen=True)
class Merge:
    """A team too small to stand alone, and where its people went."""

    team: str
    into: str
    members: int


@dataclass(frozen=True)
class PlannedGroup:
    """A group as the import would leave it for the people it lists."""

    name: str
    group_id: str | None  # None: to be created
    members: int


@dataclass(frozen=True)
class Rename:
    """Give an existing group the new name most of its listed members go to (HiBob only)."""

    id: str  # r1, r2, ...: selectable with the plan's plan_id
    group_id: str
    from_name: str
    to_name: str
    members: int  # of the CSV's people, how many the renamed group will hold


@dataclass(frozen=True)
class Selected:
    """The parts of a plan chosen for applying."""

    changes: list[Change]
    renames: list[Rename]


@dataclass(frozen=True)
class Plan:
    """What an import would do; `plan_id` changes whenever any planned change does."""

    format: Format
    total_rows: int
    matched: int
    keeps: int
    changes: list[Change]
    groups_to_create: list[PlannedGroup]
    groups_to_rename: list[Rename]
    groups: list[PlannedGroup]
    merged: list[Merge]
    unknown: list[CsvRow]
    skipped: list[Skipped]
    plan_id: str = field(default="")


def _clean(value: str | None) -> str | None:
    text = " ".join((value or "").split())
    return text or None


def _columns(header: list[str]) -> dict[str, int]:
    normalised = [" ".join(h.replace("\ufeff", "").split()).lower() for h in header]
    found: dict[str, int] = {}
    for column, spellings in _ALIASES.items():
        for index, name in enumerate(normalised):
            if name in spellings:
                found[column] = index
                break
    return found


def parse_csv(text: str) -> ParsedCsv:
    """The people of a HiBob or spendwatch CSV; CsvFormatError if it is neither."""
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff")))
    try:
        header = next(reader)
    except StopIteration:
        raise CsvFormatError("the CSV is empty") from None
    except csv.Error as exc:
        raise CsvFormatError(f"line 1: {exc}") from None
    columns = _columns(header)
    if "email" not in columns:
        raise CsvFormatError("the CSV needs an Email column")
    if "department" in columns:
        fmt: Format = "hibob"
    elif "group" in columns:
        fmt = "backup"
    else:
        raise CsvFormatError(
            "the CSV needs a Department column (HiBob) or a group column (spendwatch export)"
        )
    rows: list[CsvRow] = []
    skipped: list[Skipped] = []
    seen: dict[str, int] = {}
    try:
        for cells in reader:
            line = reader.line_num
            if not any(c.strip() for c in cells):
                continue
            if len(rows) >= MAX_ROWS:
                raise CsvFormatError(f"more than {MAX_ROWS} people")

            def cell(column: str, cells: list[str] = cells) -> str | None:
                index = columns.get(column)
                return _clean(cells[index]) if index is not None and index < len(cells) else None

            email = (cell("email") or "").lower()
            if "@" not in email or len(email) > 320 or " " in email:
                skipped.append(Skipped(line, f"not an email address: {email or '(empty)'}"))
                continue
            if fmt == "hibob" and email in seen:
                skipped.append(Skipped(line, f"{email} is listed again (line {seen[email]} used)"))
                continue
            seen.setdefault(email, line)
            too_long = [c for c in ("department", "group", "team") if len(cell(c) or "") > MAX_NAME]
            if too_long:
                skipped.append(Skipped(line, f"{too_long[0]} longer than {MAX_NAME} characters"))
                continue
            rows.append(
                CsvRow(
                    line=line,
                    email=email,
                    name=cell("name"),
                    department=cell("department"),
                    group=cell("group"),
                    team=cell("team"),
                    title=cell("title"),
                    group_id=cell("group_id"),
                )
            )
    except csv.Error as exc:
        raise CsvFormatError(f"line {reader.line_num}: {exc}") from None
    return ParsedCsv(fmt, rows, skipped)


def hibob_team(row: CsvRow) -> tuple[str, str]:
    """(parent, team) of a HiBob row, before small teams are merged."""
    department = row.department or GENERAL
    if row.group and row.team and row.group != row.team:
        return row.group, row.team
    if row.group:
        return row.group, row.group
    if row.team:
        return department, row.team
    return department, GENERAL


def group_name(parent: str, team: str) -> str:
    """`Parent > Team`."""
    return f"{parent}{SEPARATOR}{team}"


def assign_teams(rows: Iterable[CsvRow]) -> tuple[dict[str, str], list[Merge]]:
    """Each person's group name after merging small teams upward, and the merges made."""
    parents: dict[str, dict[str, list[str]]] = {}
    for row in rows:
        parent, team = hibob_team(row)
        parents.setdefault(parent, {}).setdefault(team, []).append(row.email)
    merges: list[Merge] = []

    def merge(parent: str, teams: dict[str, list[str]], team: str, into: str) -> None:
        people = teams.pop(team)
        teams.setdefault(into, []).extend(people)
        merges.append(Merge(group_name(parent, team), group_name(parent, into), len(people)))

    for parent in sorted(parents):
        teams = parents[parent]
        small = sorted(
            (t for t, people in teams.items() if t != GENERAL and len(people) < MIN_TEAM_SIZE),
            key=lambda t: (len(teams[t]), t),
        )
        for team in small:
            if team not in teams or len(teams[team]) >= MIN_TEAM_SIZE:
                continue  # grew by taking in a smaller sibling
            others = [t for t in teams if t != team]
            merge(parent, teams, team, others[0] if len(others) == 1 else GENERAL)
        general = teams.get(GENERAL)
        siblings = sorted((t for t in teams if t != GENERAL), key=lambda t: (-len(teams[t]), t))
        if general is not None and len(general) < MIN_TEAM_SIZE and siblings:
            merge(parent, teams, GENERAL, siblings[0])

    placed: dict[str, str] = {}
    last_resort = group_name(GENERAL, GENERAL)
    for parent in sorted(parents):
        for team, people in sorted(parents[parent].items()):
            name = group_name(parent, team)
            if len(people) < MIN_TEAM_SIZE and name != last_resort:
                merges.append(Merge(name, last_resort, len(people)))
                name = last_resort
            for email in people:
                placed[email] = name
    return placed, merges


def _key_by_name(groups: Mapping[str, str]) -> dict[str, str]:
    by_name: dict[str, str] = {}
    for key in sorted(groups):  # the same name twice: the first key, always the same one
        by_name.setdefault(groups[key].lower(), key)
    return by_name


def plan_import(parsed: ParsedCsv, current: Current) -> Plan:
    """What importing `parsed` would change, given what spendwatch has now."""
    known = [r for r in parsed.rows if r.email in current.members]
    unknown = [r for r in parsed.rows if r.email not in current.members]
    by_name = _key_by_name(current.groups)
    merges: list[Merge] = []
    targets: dict[str, tuple[str, str | None]] = {}  # email -> (group name, key or None)
    rows_by_email: dict[str, CsvRow] = {}
    keep_as_listed: set[str] = set()
    renamed: dict[str, str] = {}
    if parsed.format == "hibob":
        placed, merges = assign_teams(known)
        renamed = _renames(placed, current, by_name)
        for row in known:
            name = placed[row.email]
            targets[row.email] = (name, by_name.get(name.lower()) or renamed.get(name))
            rows_by_email[row.email] = row
    else:
        listed: dict[str, set[str]] = {}
        to_new: set[str] = set()  # listed in a group that does not exist yet
        for row in known:
            if row.group is None:
                continue  # no group given: this person keeps theirs
            key = row.group_id if row.group_id in current.groups else None
            key = key or by_name.get(row.group.lower())
            name = current.groups[key] if key else row.group
            targets[row.email] = (name, key)
            rows_by_email[row.email] = row
            if key is None:
                to_new.add(row.email)
            else:
                listed.setdefault(row.email, set()).add(key)
        # Someone in several groups is exported once per group: unchanged if all are listed.
        keep_as_listed = {
            e
            for e, keys in listed.items()
            if e not in to_new and frozenset(keys) == current.memberships.get(e, frozenset())
        }

    changes: list[Change] = []
    for email in sorted(targets):
        name, key = targets[email]
        now = current.memberships.get(email, frozenset())
        if email in keep_as_listed or (key is not None and now == {key}):
            continue
        row = rows_by_email[email]
        changes.append(
            Change(
                id=len(changes) + 1,
                email=email,
                name=row.name or current.members.get(email),
                department=row.department,
                title=row.title,
                current_groups=sorted(current.groups.get(k, k) for k in now),
                to_group=name,
                to_group_id=key,
            )
        )
    sizes: dict[tuple[str, str | None], int] = {}
    for target in targets.values():
        sizes[target] = sizes.get(target, 0) + 1
    groups = [
        PlannedGroup(n, k, count)
        for (n, k), count in sorted(sizes.items(), key=lambda item: (item[0][0], item[0][1] or ""))
    ]
    renames = [
        Rename(f"r{i}", key, current.groups[key], name, sizes[(name, key)])
        for i, (name, key) in enumerate(sorted(renamed.items()), start=1)
    ]
    new_names = sorted({c.to_group for c in changes if c.to_group_id is None})
    to_create = [g for g in groups if g.group_id is None and g.name in new_names]
    plan = Plan(
        format=parsed.format,
        total_rows=len(parsed.rows),
        matched=len(known),
        keeps=len(targets) - len(changes),
        changes=changes,
        groups_to_create=to_create,
        groups_to_rename=renames,
        groups=groups,
        merged=merges,
        unknown=unknown,
        skipped=parsed.skipped,
    )
    return Plan(**{**plan.__dict__, "plan_id": plan_fingerprint(plan)})


def _renames(
    placed: Mapping[str, str], current: Current, by_name: Mapping[str, str]
) -> dict[str, str]:
    """New group names an existing group can take instead of being emptied: name -> group key.

    A group qualifies for a new name when everyone the CSV lists among its members goes to that
    name; the one holding most of them wins; no group takes two names, and a group some other
    name already points at keeps its name.
    """
    listed_in: dict[str, list[str]] = {}
    for email in sorted(placed):
        for key in current.memberships.get(email, ()):
            listed_in.setdefault(key, []).append(email)
    taken = {by_name[n.lower()] for n in placed.values() if n.lower() in by_name}
    chosen: dict[str, str] = {}
    for name in sorted({n for n in placed.values() if n.lower() not in by_name}):
        candidates = sorted(
            (-len(emails), key)
            for key, emails in listed_in.items()
            if key not in taken and key in current.groups and all(placed[e] == name for e in emails)
        )
        if candidates:
            key = candidates[0][1]
            chosen[name] = key
            taken.add(key)
    return chosen


def plan_fingerprint(plan: Plan) -> str:
    """A short id of the planned changes, so an apply can insist on the previewed plan."""
    material = [
        [(c.email, c.to_group, c.to_group_id, c.current_groups) for c in plan.changes],
        [(r.group_id, r.from_name, r.to_name) for r in plan.groups_to_rename],
    ]
    digest = hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()
    return digest[:16]


def select(
    plan: Plan, *, accept: set[str] | None, reject: set[str] | None, ids: bool = False
) -> Selected:
    """The changes and renames chosen for applying: all, only `accept`, or all but `reject`.

    Each item is an email or, when `ids` (the caller pinned the plan by its plan_id), the id of
    a change (`3`) or a rename (`r1`); renames are chosen only by id. ValueError names the items
    that are not in the plan.
    """
    by_token: dict[str, Change | Rename] = {c.email: c for c in plan.changes}
    if ids:
        by_token |= {str(c.id): c for c in plan.changes}
        by_token |= {r.id: r for r in plan.groups_to_rename}
    chosen = accept if accept is not None else reject or set()
    strangers = sorted(chosen - set(by_token))
    if strangers:
        hint = "" if ids or not any(t[-1:].isdigit() for t in strangers) else " (ids need plan_id)"
        raise ValueError(f"not among the planned changes{hint}: {', '.join(strangers)}")
    picked = {id(by_token[t]) for t in chosen}
    if accept is not None:
        return Selected(
            [c for c in plan.changes if id(c) in picked],
            [r for r in plan.groups_to_rename if id(r) in picked],
        )
    return Selected(
        [c for c in plan.changes if id(c) not in picked],
        [r for r in plan.groups_to_rename if id(r) not in picked],
    )
