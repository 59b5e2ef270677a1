-- Billing groups edited in spendwatch (REST API, HiBob or backup CSV import) are overrides
-- over the provider's roster. The collector owns `groups`/`group_members` and rewrites them on
-- every pass (renames included); it never touches the tables below, so a local edit survives
-- the next collection. `effective_groups` and `effective_group_members` are the one place
-- where both meet: the API, Grafana and any team rule read those.

-- One text key per group: `<provider>:<account>:<group_id>` for a provider's group,
-- `local:<uuid>` for a group made here.
ALTER TABLE groups
    ADD COLUMN group_key text GENERATED ALWAYS AS (provider || ':' || account || ':' || group_id)
        STORED;
CREATE INDEX groups_group_key ON groups (group_key);

CREATE TABLE local_groups (
    group_key     text        PRIMARY KEY CHECK (group_key LIKE 'local:%'),
    name          text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at    timestamptz NOT NULL DEFAULT now(),
    created_by    text        NOT NULL
);
CREATE UNIQUE INDEX local_groups_name ON local_groups (lower(name));

-- A local name for a provider's group (the provider's own stays in groups.name).
CREATE TABLE group_renames (
    group_key     text        PRIMARY KEY,
    name          text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    updated_by    text        NOT NULL
);

-- The group a person belongs to, decided here: it replaces all their provider memberships (so
-- a reassigned person is in one group, not in the old one as well).
CREATE TABLE group_overrides (
    user_email    text        PRIMARY KEY,
    group_key     text        NOT NULL,
    source        text        NOT NULL CHECK (source IN ('api', 'import')),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    updated_by    text        NOT NULL
);
CREATE INDEX group_overrides_group ON group_overrides (group_key);

-- Live groups: the provider's (under their local name, if any) and the local ones.
CREATE VIEW effective_groups AS
SELECT g.group_key, coalesce(r.name, g.name) AS name, 'provider'::text AS origin,
       g.provider, g.account, g.group_id AS provider_group_id, g.name AS provider_name,
       g.cycle_start, g.cycle_end
FROM groups AS g
LEFT JOIN group_renames AS r ON r.group_key = g.group_key
WHERE g.removed_at IS NULL
UNION ALL
SELECT l.group_key, l.name, 'local'::text, NULL::text, NULL::text, NULL::text, NULL::text,
       NULL::timestamptz, NULL::timestamptz
FROM local_groups AS l;

-- Who is in which group: a person's override when its group is live, else their provider
-- memberships. `origin` says which.
CREATE VIEW effective_group_members AS
WITH live_overrides AS (
    SELECT o.user_email, o.group_key
    FROM group_overrides AS o
    WHERE EXISTS (SELECT 1 FROM effective_groups AS e WHERE e.group_key = o.group_key)
)
SELECT o.group_key, o.user_email, 'override'::text AS origin
FROM live_overrides AS o
UNION ALL
SELECT DISTINCT g.group_key, gm.user_email, 'provider'::text
FROM group_members AS gm
JOIN groups AS g USING (provider, account, group_id)
WHERE g.removed_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM live_overrides AS o WHERE o.user_email = gm.user_email);
