-- spendwatch core schema. Money is integer micro-dollars (bigint); times are timestamptz (UTC).
-- Same on plain PostgreSQL and TimescaleDB; 0002 adds the flavour-specific parts.

CREATE TABLE usage_events (
    provider            text        NOT NULL,
    event_id            text        NOT NULL,
    occurred_at         timestamptz NOT NULL,
    account             text        NOT NULL DEFAULT '',
    user_email          text        NOT NULL,
    user_id             text,
    model               text        NOT NULL,
    kind                text        NOT NULL,
    max_mode            boolean     NOT NULL DEFAULT false,
    input_tokens        bigint      NOT NULL DEFAULT 0,
    output_tokens       bigint      NOT NULL DEFAULT 0,
    cache_read_tokens   bigint      NOT NULL DEFAULT 0,
    cache_write_tokens  bigint      NOT NULL DEFAULT 0,
    cost_micros         bigint      NOT NULL,
    request_units       numeric(20, 6) NOT NULL DEFAULT 0,
    is_headless         boolean     NOT NULL DEFAULT false,
    ingested_at         timestamptz NOT NULL,
    committed_at        timestamptz NOT NULL DEFAULT now(),
    -- occurred_at is part of the key because a hypertable's unique keys must hold its time column;
    -- event_id is stable per source record, so this is still one row per billable request.
    PRIMARY KEY (provider, event_id, occurred_at)
);
CREATE INDEX usage_events_user_time ON usage_events (user_email, occurred_at DESC);
CREATE INDEX usage_events_time ON usage_events (occurred_at DESC);

-- Exact per-user/day/model rollup, kept by the sink in the same transaction as the inserts.
-- `day` is the calendar day in TEAM_TIMEZONE.
CREATE TABLE usage_daily_user_model (
    day                 date        NOT NULL,
    user_email          text        NOT NULL,
    provider            text        NOT NULL,
    model               text        NOT NULL,
    events              bigint      NOT NULL DEFAULT 0,
    cost_micros         bigint      NOT NULL DEFAULT 0,
    input_tokens        bigint      NOT NULL DEFAULT 0,
    output_tokens       bigint      NOT NULL DEFAULT 0,
    cache_read_tokens   bigint      NOT NULL DEFAULT 0,
    cache_write_tokens  bigint      NOT NULL DEFAULT 0,
    request_units       numeric(24, 6) NOT NULL DEFAULT 0,
    max_mode_events     bigint      NOT NULL DEFAULT 0,
    headless_events     bigint      NOT NULL DEFAULT 0,
    first_event_at      timestamptz NOT NULL,
    last_event_at       timestamptz NOT NULL,
    PRIMARY KEY (day, user_email, provider, model)
);
CREATE INDEX usage_daily_user_model_user ON usage_daily_user_model (user_email, day DESC);

-- Transactional outbox of the sink's `usage.committed` notices: written with the rows,
-- published after commit, republished at start if a crash came between.
CREATE TABLE usage_commits (
    commit_id     text        PRIMARY KEY,
    provider      text        NOT NULL,
    payload       jsonb       NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz
);
CREATE INDEX usage_commits_unpublished ON usage_commits (created_at) WHERE published_at IS NULL;

CREATE TABLE daily_usage (
    provider                    text        NOT NULL,
    account                     text        NOT NULL DEFAULT '',
    user_email                  text        NOT NULL,
    day                         date        NOT NULL,
    user_id                     text,
    is_active                   boolean     NOT NULL DEFAULT true,
    lines_added                 bigint      NOT NULL DEFAULT 0,
    lines_deleted               bigint      NOT NULL DEFAULT 0,
    accepted_lines_added        bigint      NOT NULL DEFAULT 0,
    accepted_lines_deleted      bigint      NOT NULL DEFAULT 0,
    applies                     bigint      NOT NULL DEFAULT 0,
    accepts                     bigint      NOT NULL DEFAULT 0,
    rejects                     bigint      NOT NULL DEFAULT 0,
    tabs_shown                  bigint      NOT NULL DEFAULT 0,
    tabs_accepted               bigint      NOT NULL DEFAULT 0,
    composer_requests           bigint      NOT NULL DEFAULT 0,
    chat_requests               bigint      NOT NULL DEFAULT 0,
    agent_requests              bigint      NOT NULL DEFAULT 0,
    cmdk_usages                 bigint      NOT NULL DEFAULT 0,
    subscription_included_reqs  bigint      NOT NULL DEFAULT 0,
    usage_based_reqs            bigint      NOT NULL DEFAULT 0,
    api_key_reqs                bigint      NOT NULL DEFAULT 0,
    bugbot_usages               bigint      NOT NULL DEFAULT 0,
    most_used_model             text,
    client_version              text,
    captured_at                 timestamptz NOT NULL,
    PRIMARY KEY (provider, account, user_email, day)
);
CREATE INDEX daily_usage_day ON daily_usage (day DESC);

-- One row per member per billing cycle: the API only reports the current cycle, so history is ours.
CREATE TABLE spend_snapshots (
    provider                    text        NOT NULL,
    account                     text        NOT NULL DEFAULT '',
    cycle_start                 timestamptz NOT NULL,
    user_email                  text        NOT NULL,
    user_id                     text,
    name                        text,
    role                        text,
    spend_micros                bigint      NOT NULL,
    overall_spend_micros        bigint      NOT NULL,
    fast_premium_requests       bigint      NOT NULL DEFAULT 0,
    hard_limit_override_micros  bigint,
    monthly_limit_micros        bigint,
    first_captured_at           timestamptz NOT NULL,
    captured_at                 timestamptz NOT NULL,
    PRIMARY KEY (provider, account, cycle_start, user_email)
);

CREATE TABLE members (
    provider        text        NOT NULL,
    account         text        NOT NULL DEFAULT '',
    user_email      text        NOT NULL,
    user_id         text,
    name            text,
    role            text,
    is_removed      boolean     NOT NULL DEFAULT false,
    first_seen_at   timestamptz NOT NULL,
    captured_at     timestamptz NOT NULL,
    PRIMARY KEY (provider, account, user_email)
);

CREATE TABLE groups (
    provider      text        NOT NULL,
    account       text        NOT NULL DEFAULT '',
    group_id      text        NOT NULL,
    name          text        NOT NULL,
    cycle_start   timestamptz,
    cycle_end     timestamptz,
    removed_at    timestamptz,
    captured_at   timestamptz NOT NULL,
    PRIMARY KEY (provider, account, group_id)
);

CREATE TABLE group_members (
    provider      text        NOT NULL,
    account       text        NOT NULL DEFAULT '',
    group_id      text        NOT NULL,
    user_email    text        NOT NULL,
    captured_at   timestamptz NOT NULL,
    PRIMARY KEY (provider, account, group_id, user_email),
    FOREIGN KEY (provider, account, group_id) REFERENCES groups ON DELETE CASCADE
);
CREATE INDEX group_members_user ON group_members (user_email);

CREATE TABLE anomalies (
    anomaly_id          uuid        PRIMARY KEY,
    fingerprint         text        NOT NULL,
    kind                text        NOT NULL DEFAULT 'detected' CHECK (kind IN ('detected', 'cleared')),
    detector            text        NOT NULL,
    severity            text        NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    subject             text        NOT NULL,
    metric              text        NOT NULL,
    value               numeric     NOT NULL,
    threshold           numeric     NOT NULL,
    baseline            numeric,
    window_start        timestamptz NOT NULL,
    window_end          timestamptz NOT NULL,
    model               text,
    message             text        NOT NULL,
    evidence_first_at   timestamptz,
    detected_at         timestamptz NOT NULL
);
CREATE INDEX anomalies_fingerprint ON anomalies (fingerprint, detected_at DESC);
CREATE INDEX anomalies_detected ON anomalies (detected_at DESC);

CREATE TABLE incidents (
    incident_id         uuid        PRIMARY KEY,
    fingerprint         text        NOT NULL,
    detector            text        NOT NULL,
    subject             text        NOT NULL,
    state               text        NOT NULL CHECK (state IN ('open', 'alerted', 'acknowledged', 'resolved')),
    severity            text        NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    message             text        NOT NULL,
    model               text,
    value               numeric,
    threshold           numeric,
    baseline            numeric,
    last_anomaly_id     uuid,
    evidence_first_at   timestamptz,
    detected_at         timestamptz NOT NULL,
    alerted_at          timestamptz,
    acknowledged_at     timestamptz,
    acknowledged_by     text,
    snoozed_until       timestamptz,
    resolved_at         timestamptz,
    resolved_by         text,
    resolution          text CHECK (resolution IN ('auto', 'manual')),
    reopen_count        integer     NOT NULL DEFAULT 0,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
-- One incident per fingerprint that is not resolved.
CREATE UNIQUE INDEX incidents_one_open_per_fingerprint ON incidents (fingerprint) WHERE state <> 'resolved';
CREATE INDEX incidents_state ON incidents (state, detected_at DESC);

CREATE TABLE incident_transitions (
    transition_id   bigserial   PRIMARY KEY,
    incident_id     uuid        NOT NULL REFERENCES incidents ON DELETE CASCADE,
    transition      text        NOT NULL,
    from_state      text,
    to_state        text        NOT NULL,
    actor           text        NOT NULL,
    note            text,
    at              timestamptz NOT NULL
);
CREATE INDEX incident_transitions_incident ON incident_transitions (incident_id, at);

CREATE TABLE notifications (
    notification_id   bigserial   PRIMARY KEY,
    idempotency_key   text        NOT NULL UNIQUE,
    incident_id       uuid        REFERENCES incidents ON DELETE SET NULL,
    channel           text        NOT NULL CHECK (channel IN ('slack', 'email')),
    target            text        NOT NULL,
    status            text        NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),
    slack_channel     text,
    slack_ts          text,
    attempts          integer     NOT NULL DEFAULT 0,
    error             text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    sent_at           timestamptz
);
CREATE INDEX notifications_incident ON notifications (incident_id);

CREATE TABLE settings (
    key           text        PRIMARY KEY,
    value         jsonb       NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    updated_by    text        NOT NULL DEFAULT 'system'
);

CREATE TABLE settings_audit (
    audit_id      bigserial   PRIMARY KEY,
    key           text        NOT NULL,
    old_value     jsonb,
    new_value     jsonb       NOT NULL,
    actor         text        NOT NULL,
    at            timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE collector_state (
    provider          text        NOT NULL,
    account           text        NOT NULL DEFAULT '',
    feed              text        NOT NULL,
    checkpoint        timestamptz,
    cursor            jsonb,
    health            text        NOT NULL DEFAULT 'unknown',
    last_success_at   timestamptz,
    last_error        text,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, account, feed)
);

CREATE TABLE api_tokens (
    token_id      uuid        PRIMARY KEY,
    name          text        NOT NULL UNIQUE,
    token_hash    text        NOT NULL UNIQUE,
    is_admin      boolean     NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz
);
