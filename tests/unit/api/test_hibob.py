"""HiBob and backup CSV imports: parsing, `Group > Team` naming, small-team merging, planning."""

from __future__ import annotations

import pytest

from spendwatch.api.hibob import (
    CsvFormatError,
    CsvRow,
    Current,
    Merge,
    PlannedGroup,
    assign_teams,
    hibob_team,
    parse_csv,
    plan_import,
    select,
)

pytestmark = pytest.mark.timeout(10)


def row(email: str, department: str = "Eng", group: str = "", team: str = "") -> CsvRow:
    return CsvRow(
        line=2, email=email, department=department, group=group or None, team=team or None
    )


def current(
    members: list[str],
    memberships: dict[str, set[str]] | None = None,
    groups: dict[str, str] | None = None,
) -> Current:
    return Current(
        members={m: m.split("@")[0].title() for m in members},
        memberships={e: frozenset(k) for e, k in (memberships or {}).items()},
        groups=groups or {},
    )


def test_parse_reads_quoted_commas_bom_and_header_spellings() -> None:
    text = (
        "\ufeffWork Email, Display Name ,DEPARTMENT,Group,Team,Job title\r\n"
        'Ann@X.com,"Lee, Ann",Engineering,Platform,"Infra, Core",SRE\r\n'
        "\r\n"
        "not-an-email,Bob,Eng,,,\r\n"
        "ann@x.com,Ann again,Eng,,,\r\n"
    )
    parsed = parse_csv(text)
    assert parsed.format == "hibob"
    assert parsed.rows == [
        CsvRow(
            line=2,
            email="ann@x.com",
            name="Lee, Ann",
            department="Engineering",
            group="Platform",
            team="Infra, Core",
            title="SRE",
        )
    ]
    assert [(s.line, s.reason) for s in parsed.skipped] == [
        (4, "not an email address: not-an-email"),
        (5, "ann@x.com is listed again (line 2 used)"),
    ]


def test_parse_tells_the_backup_format_by_its_group_column() -> None:
    parsed = parse_csv("email,name,group,group_id\na@x.com,A,Eng > Web,local:1\nb@x.com,B,,\n")
    assert parsed.format == "backup"
    assert [(r.email, r.group, r.group_id) for r in parsed.rows] == [
        ("a@x.com", "Eng > Web", "local:1"),
        ("b@x.com", None, None),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the CSV is empty"),
        ("name,department\nA,Eng\n", "the CSV needs an Email column"),
        ("email,name\na@x.com,A\n", "needs a Department column"),
    ],
)
def test_parse_refuses_what_it_cannot_read(text: str, message: str) -> None:
    with pytest.raises(CsvFormatError, match=message):
        parse_csv(text)


@pytest.mark.parametrize(
    ("group", "team", "expected"),
    [
        ("Platform", "Infra", ("Platform", "Infra")),
        ("Platform", "Platform", ("Platform", "Platform")),
        ("Platform", "", ("Platform", "Platform")),
        ("", "Infra", ("Eng", "Infra")),
        ("", "", ("Eng", "General")),
    ],
)
def test_group_and_team_naming(group: str, team: str, expected: tuple[str, str]) -> None:
    assert hibob_team(row("a@x.com", group=group, team=team)) == expected


def people(prefix: str, count: int, **kw: str) -> list[CsvRow]:
    return [row(f"{prefix}{i}@x.com", **kw) for i in range(count)]


def test_a_small_team_joins_its_sole_sibling() -> None:
    rows = people("w", 4, group="Eng", team="Web") + people("m", 2, group="Eng", team="Mobile")
    placed, merges = assign_teams(rows)
    assert set(placed.values()) == {"Eng > Web"}
    assert merges == [Merge("Eng > Mobile", "Eng > Web", 2)]


def test_small_teams_with_several_siblings_go_to_general_then_general_to_the_largest() -> None:
    rows = (
        people("w", 5, group="Eng", team="Web")
        + people("a", 3, group="Eng", team="Api")
        + people("m", 1, group="Eng", team="Mobile")
        + people("d", 1, group="Eng", team="Data")
    )
    placed, merges = assign_teams(rows)
    # Data (1) and Mobile (1) -> Eng > General (2), still small -> the largest sibling, Web.
    assert merges == [
        Merge("Eng > Data", "Eng > General", 1),
        Merge("Eng > Mobile", "Eng > General", 1),
        Merge("Eng > General", "Eng > Web", 2),
    ]
    assert sum(1 for g in placed.values() if g == "Eng > Web") == 7
    assert sum(1 for g in placed.values() if g == "Eng > Api") == 3


def test_a_general_group_big_enough_stays() -> None:
    rows = (
        people("w", 3, group="Eng", team="Web")
        + people("a", 3, group="Eng", team="Api")
        + people("m", 2, group="Eng", team="Mobile")
        + people("g", 1, department="Eng")  # Eng > General
    )
    placed, merges = assign_teams(rows)
    assert merges == [Merge("Eng > Mobile", "Eng > General", 2)]
    assert sum(1 for g in placed.values() if g == "Eng > General") == 3


def test_a_lone_small_parent_ends_in_general_general() -> None:
    rows = people("s", 2, group="Sales", team="EMEA") + people("w", 3, group="Eng", team="Web")
    placed, merges = assign_teams(rows)
    assert merges == [
        Merge("Sales > EMEA", "Sales > General", 2),
        Merge("Sales > General", "General > General", 2),
    ]
    assert placed["s0@x.com"] == "General > General"
    assert placed["w0@x.com"] == "Eng > Web"


HIBOB = (
    "Email,Display name,Department,Group,Team\n"
    "a@x.com,A,Eng,Eng,Web\n"
    "b@x.com,B,Eng,Eng,Web\n"
    "c@x.com,C,Eng,Eng,Web\n"
    "d@x.com,D,Eng,Eng,Mobile\n"
    "ghost@x.com,Ghost,Eng,Eng,Web\n"
)


def test_plan_moves_only_known_people_who_are_elsewhere() -> None:
    now = current(
        ["a@x.com", "b@x.com", "c@x.com", "d@x.com", "e@x.com"],
        memberships={"a@x.com": {"cursor::1"}, "b@x.com": {"cursor::2"}, "e@x.com": {"cursor::2"}},
        groups={"cursor::1": "Eng > Web", "cursor::2": "Misc"},
    )
    plan = plan_import(parse_csv(HIBOB), now)
    assert (plan.total_rows, plan.matched, plan.keeps) == (5, 4, 1)
    assert [r.email for r in plan.unknown] == ["ghost@x.com"]
    # d (Mobile, alone) merges into Web; a is already there; e is not listed and keeps Misc.
    assert plan.merged == [Merge("Eng > Mobile", "Eng > Web", 1)]
    assert [(c.email, c.current_groups, c.to_group, c.to_group_id) for c in plan.changes] == [
        ("b@x.com", ["Misc"], "Eng > Web", "cursor::1"),
        ("c@x.com", [], "Eng > Web", "cursor::1"),
        ("d@x.com", [], "Eng > Web", "cursor::1"),
    ]
    assert plan.groups == [PlannedGroup("Eng > Web", "cursor::1", 4)]
    assert plan.groups_to_create == []


def test_plan_creates_groups_it_cannot_find_by_name() -> None:
    now = current(["a@x.com", "b@x.com", "c@x.com", "d@x.com"])
    plan = plan_import(parse_csv(HIBOB), now)
    assert plan.groups_to_create == [PlannedGroup("Eng > Web", None, 4)]
    assert {c.to_group_id for c in plan.changes} == {None}


def test_backup_import_of_the_current_state_plans_nothing() -> None:
    now = current(
        ["a@x.com", "b@x.com", "c@x.com"],
        memberships={"a@x.com": {"cursor::1"}, "b@x.com": {"cursor::1", "local:9"}},
        groups={"cursor::1": "Web", "local:9": "Web"},  # the same name twice
    )
    text = (
        "email,name,group,group_id\n"
        "a@x.com,A,Web,cursor::1\n"
        "b@x.com,B,Web,cursor::1\n"
        "b@x.com,B,Web,local:9\n"
    )
    plan = plan_import(parse_csv(text), now)
    assert plan.changes == []
    assert plan.keeps == 2


def test_backup_import_moves_by_id_or_name_and_creates_the_rest() -> None:
    now = current(
        ["a@x.com", "b@x.com", "c@x.com"],
        memberships={"a@x.com": {"cursor::1"}},
        groups={"cursor::1": "Web", "local:9": "Data"},
    )
    text = "email,group,group_id\na@x.com,Data,\nb@x.com,Whatever,cursor::1\nc@x.com,New,\n"
    plan = plan_import(parse_csv(text), now)
    assert [(c.email, c.to_group, c.to_group_id) for c in plan.changes] == [
        ("a@x.com", "Data", "local:9"),
        ("b@x.com", "Web", "cursor::1"),
        ("c@x.com", "New", None),
    ]
    assert plan.groups_to_create == [PlannedGroup("New", None, 1)]


def test_the_plan_id_follows_the_changes() -> None:
    members = ["a@x.com", "b@x.com", "c@x.com", "d@x.com"]
    first = plan_import(parse_csv(HIBOB), current(members))
    again = plan_import(parse_csv(HIBOB), current(members))
    moved = plan_import(
        parse_csv(HIBOB), current(members, {"a@x.com": {"local:1"}}, {"local:1": "Eng > Web"})
    )
    assert first.plan_id == again.plan_id
    assert len(first.plan_id) == 16
    assert moved.plan_id != first.plan_id


def test_select_all_some_or_all_but_some() -> None:
    plan = plan_import(parse_csv(HIBOB), current(["a@x.com", "b@x.com", "c@x.com", "d@x.com"]))
    emails = ["a@x.com", "b@x.com", "c@x.com", "d@x.com"]
    assert [c.email for c in select(plan, accept=None, reject=None).changes] == emails
    assert [c.email for c in select(plan, accept={"b@x.com"}, reject=None).changes] == ["b@x.com"]
    assert [c.email for c in select(plan, accept=None, reject={"b@x.com"}).changes] == [
        "a@x.com",
        "c@x.com",
        "d@x.com",
    ]
    with pytest.raises(ValueError, match=r"ghost@x\.com"):
        select(plan, accept={"ghost@x.com"}, reject=None)


def test_select_by_change_id_once_the_plan_is_pinned() -> None:
    plan = plan_import(parse_csv(HIBOB), current(["a@x.com", "b@x.com", "c@x.com", "d@x.com"]))
    assert [c.id for c in plan.changes] == [1, 2, 3, 4]
    chosen = select(plan, accept={"2", "d@x.com"}, reject=None, ids=True).changes
    assert [c.email for c in chosen] == ["b@x.com", "d@x.com"]
    assert [c.id for c in select(plan, accept=None, reject={"1", "3"}, ids=True).changes] == [2, 4]
    with pytest.raises(ValueError, match="ids need plan_id"):
        select(plan, accept={"2"}, reject=None)
    with pytest.raises(ValueError, match=r": 5$"):
        select(plan, accept={"5"}, reject=None, ids=True)


def test_a_group_whose_listed_members_all_go_to_one_new_name_is_renamed() -> None:
    now = current(
        ["a@x.com", "b@x.com", "c@x.com", "d@x.com", "z@x.com"],
        memberships={
            "a@x.com": {"cursor::1"},
            "b@x.com": {"cursor::1"},
            "z@x.com": {"cursor::1"},  # not in the CSV: stays, under the new name
            "c@x.com": {"cursor::2"},
            "d@x.com": {"cursor::2"},
        },
        groups={"cursor::1": "Platform", "cursor::2": "Misc"},
    )
    text = HIBOB.replace("d@x.com,D,Eng,Eng,Mobile", "d@x.com,D,Sales,Sales,")
    plan = plan_import(parse_csv(text), now)
    # Misc cannot be renamed: c goes to Eng > Web, d to Sales > Sales (merged to General).
    assert [
        (r.id, r.group_id, r.from_name, r.to_name, r.members) for r in plan.groups_to_rename
    ] == [("r1", "cursor::1", "Platform", "Eng > Web", 3)]
    assert [(c.email, c.to_group, c.to_group_id) for c in plan.changes] == [
        ("c@x.com", "Eng > Web", "cursor::1"),
        ("d@x.com", "General > General", None),
    ]
    assert plan.keeps == 2
    assert [g.name for g in plan.groups_to_create] == ["General > General"]
    everything = select(plan, accept=None, reject=None)
    assert [r.id for r in everything.renames] == ["r1"]
    assert select(plan, accept=None, reject={"r1"}, ids=True).renames == []
    assert select(plan, accept={"c@x.com"}, reject=None).renames == []
    assert [r.id for r in select(plan, accept={"r1"}, reject=None, ids=True).renames] == ["r1"]
