"""Bodies of /api/groups: billing groups with members and spend, local edits, CSV imports.

A group's `group_id` is `<provider>:<account>:<id>` for the provider's groups and `local:<uuid>`
for groups made in spendwatch. Spend is integer micro-dollars from the daily rollup.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import Field, model_validator

from spendwatch.api.models import (
    ApiModel,
    BodyModel,
    Days,
    QueryModel,
    pack_cursor,
    unpack_cursor,
)
from spendwatch.common.events.base import Email

DEFAULT_LIMIT = 100
MAX_LIMIT = 500
MAX_OPERATIONS = 500
GroupName = Annotated[str, Field(min_length=1, max_length=200, pattern=r"\S")]
GroupId = Annotated[str, Field(min_length=1, max_length=400)]
# Query values are ASCII and short enough that a whole request line, percent-encoded, stays
# under aiohttp's 8 KiB limit.
Selection = Annotated[str, Field(min_length=1, max_length=1200, pattern=r"^[A-Za-z0-9._%+'@,-]+$")]
Cursor = Annotated[str, Field(max_length=2000, pattern=r"^[A-Za-z0-9_-]+$")]


def encode_cursor(name: str, group_id: str) -> str:
    """The opaque cursor after (name, group_id)."""
    return pack_cursor(name, group_id)


def decode_cursor(cursor: str) -> tuple[str, str]:
    """(name, group_id) of a cursor from `encode_cursor`; ValueError otherwise."""
    name, group_id = unpack_cursor(cursor, 2)
    return name, group_id


class GroupsQuery(QueryModel):
    """`GET /api/groups`: spend over the last `days` days or the current billing cycle."""

    days: Days | None = None
    cycle: Literal["current"] | None = Field(
        default=None, description="`current`: spend over the current billing cycle."
    )
    limit: Annotated[int, Field(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT
    cursor: Cursor | None = Field(default=None, description="`next_cursor` of the previous page.")

    @model_validator(mode="after")
    def _one_window(self) -> GroupsQuery:
        if self.days is not None and self.cycle is not None:
            raise ValueError("days and cycle: give one, not both")
        if self.cursor is not None:
            try:
                decode_cursor(self.cursor)
            except ValueError:
                raise ValueError("cursor: not a cursor this API returned") from None
        return self

    @property
    def after(self) -> tuple[str, str] | None:
        """The keyset the page starts after."""
        return decode_cursor(self.cursor) if self.cursor else None


class MemberOut(ApiModel):
    """A member of a group; `origin`: from the provider's roster or a local override (null for
    someone in no group)."""

    email: str
    name: str | None
    origin: Literal["provider", "override"] | None
    spend_micros: int
    events: int


class GroupOut(ApiModel):
    """A billing group with its members (by spend, highest first) and their total spend."""

    group_id: str
    name: str
    origin: Literal["provider", "local"]
    provider_name: str | None = Field(
        default=None, description="The provider's name when renamed here."
    )
    member_count: int
    spend_micros: int
    events: int
    members: list[MemberOut]


class GroupsPage(ApiModel):
    """Groups by name; pass `next_cursor` as `cursor` for the next page."""

    first_day: date
    last_day: date
    items: list[GroupOut]
    next_cursor: str | None
    # Roster members in no group (on the first page only), to find and assign anyone.
    unassigned: list[MemberOut] = Field(default_factory=list)


class CreateGroup(BodyModel):
    """Make a local group."""

    action: Literal["create"]
    name: GroupName


class RenameGroup(BodyModel):
    """Give a group a local name (a provider's group keeps it across collections)."""

    action: Literal["rename"]
    group_id: GroupId
    name: GroupName


class AssignMember(BodyModel):
    """Put a person in one group (by id, or by the name of a group, e.g. one made just before)."""

    action: Literal["assign"]
    email: Email
    group_id: GroupId | None = None
    group_name: GroupName | None = None

    @model_validator(mode="after")
    def _one_target(self) -> AssignMember:
        if (self.group_id is None) == (self.group_name is None):
            raise ValueError("give group_id or group_name, exactly one")
        return self


class ResetMember(BodyModel):
    """Drop a person's local assignment: they are in their provider's groups again."""

    action: Literal["reset"]
    email: Email


GroupOperation = Annotated[
    CreateGroup | RenameGroup | AssignMember | ResetMember, Field(discriminator="action")
]


class GroupsPatch(BodyModel):
    """`PATCH /api/groups`: operations applied in order, all or none."""

    operations: Annotated[list[GroupOperation], Field(min_length=1, max_length=MAX_OPERATIONS)]


class OperationResult(ApiModel):
    """What one operation did; `changed` is false when it was already so."""

    action: Literal["create", "rename", "assign", "reset"]
    group_id: str | None = None
    name: str | None = None
    email: str | None = None
    changed: bool


class GroupsPatchResult(ApiModel):
    """One result per operation, in order."""

    results: list[OperationResult]


class ImportQuery(QueryModel):
    """`POST /api/groups/import`: preview (default) or apply, all changes or a selection."""

    mode: Literal["preview", "apply"] = "preview"
    plan_id: Annotated[str, Field(pattern=r"^[0-9a-f]{16}$")] | None = Field(
        default=None, description="Apply only if the plan is still this previewed one (else 409)."
    )
    accept: Selection | None = Field(
        default=None,
        description="Emails, or change/rename ids with plan_id, comma-separated: apply only these.",
    )
    reject: Selection | None = Field(
        default=None,
        description="Emails, or change/rename ids with plan_id, comma-separated: apply the rest.",
    )

    @model_validator(mode="after")
    def _selection_to_apply(self) -> ImportQuery:
        if self.accept is not None and self.reject is not None:
            raise ValueError("accept and reject: give one, not both")
        if self.mode == "preview" and (self.accept or self.reject or self.plan_id):
            raise ValueError("accept, reject and plan_id are for mode=apply")
        return self

    def items(self, value: str | None) -> set[str] | None:
        """The emails (lower-cased) or change ids of `accept` or `reject`."""
        if value is None:
            return None
        return {e.strip().lower() for e in value.split(",") if e.strip()}


class ChangeOut(ApiModel):
    """A person the import moves; `to_group_id` null: into a group it creates."""

    id: int
    email: str
    name: str | None
    department: str | None
    title: str | None
    current_groups: list[str]
    to_group: str
    to_group_id: str | None


class PlannedGroupOut(ApiModel):
    """A group and how many of the listed people it would hold."""

    name: str
    group_id: str | None
    members: int


class RenameOut(ApiModel):
    """An existing group the import renames rather than empties (select it by `id`)."""

    id: str
    group_id: str
    from_name: str
    to_name: str
    members: int


class MergeOut(ApiModel):
    """A team below the minimum size, merged upward."""

    team: str
    into: str
    members: int


class UnknownOut(ApiModel):
    """A CSV person spendwatch does not know (not in any provider's roster)."""

    line: int
    email: str
    name: str | None


class SkippedOut(ApiModel):
    """A CSV line that was not used, and why."""

    line: int
    reason: str


class AppliedOut(ApiModel):
    """What an apply wrote."""

    moved: list[str]
    created_groups: list[PlannedGroupOut]
    renamed_groups: list[RenameOut]


class ImportPlanOut(ApiModel):
    """The import's plan (preview), and with mode=apply what was applied."""

    format: Literal["hibob", "backup"]
    plan_id: str
    total_rows: int
    matched: int
    keeps: int
    changes: list[ChangeOut]
    groups_to_create: list[PlannedGroupOut]
    groups_to_rename: list[RenameOut]
    groups: list[PlannedGroupOut]
    merged: list[MergeOut]
    unknown: list[UnknownOut]
    skipped: list[SkippedOut]
    applied: AppliedOut | None = None
