-- Notifier: the delivery log says what each row is, what the message shows (to edit it later)
-- and whether the incidents service has heard that the first alert went out; two tables let
-- replicas share one grouping window.
ALTER TABLE notifications
    ADD COLUMN kind text NOT NULL DEFAULT 'message'
        CHECK (kind IN ('message', 'root', 'reply', 'update', 'grouped', 'digest')),
    ADD COLUMN event_id text,
    -- A root row's message: its own key, or the key of the grouped message it is listed in.
    ADD COLUMN message_key text,
    -- What the message shows for this incident: {"incident": ..., "version": ...}.
    ADD COLUMN payload jsonb,
    -- The first alert for this incident went out; the `alerted` command is not answered yet.
    ADD COLUMN needs_alerted boolean NOT NULL DEFAULT false,
    ADD COLUMN claimed_at timestamptz,
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX notifications_failed ON notifications (channel, updated_at DESC)
    WHERE status = 'failed';
CREATE INDEX notifications_sent ON notifications (channel, sent_at DESC) WHERE status = 'sent';
CREATE INDEX notifications_needs_alerted ON notifications (sent_at) WHERE needs_alerted;
CREATE INDEX notifications_message ON notifications (message_key) WHERE message_key IS NOT NULL;

-- A grouping window opens with the first incident after the last one closed; the first
-- `NOTIFY_GROUP_THRESHOLD` incidents in it are posted at once, the rest when it closes.
CREATE TABLE notification_windows (
    window_id       bigserial   PRIMARY KEY,
    opened_at       timestamptz NOT NULL,
    closes_at       timestamptz NOT NULL,
    immediate       integer     NOT NULL DEFAULT 0,
    overflow        integer     NOT NULL DEFAULT 0,
    flush_started_at timestamptz,
    flushed_at      timestamptz
);
CREATE INDEX notification_windows_closes ON notification_windows (closes_at DESC);
CREATE INDEX notification_windows_unflushed ON notification_windows (closes_at)
    WHERE flushed_at IS NULL AND overflow > 0;

-- Which window each incident was admitted to and whether it overflowed: decided once, so a
-- redelivered event follows the same decision. `payload` is its latest snapshot until the
-- grouped message is posted.
CREATE TABLE notification_admissions (
    incident_id   uuid        PRIMARY KEY,
    window_id     bigint      NOT NULL REFERENCES notification_windows ON DELETE CASCADE,
    overflow      boolean     NOT NULL,
    position      integer     NOT NULL,
    payload       jsonb       NOT NULL,
    admitted_at   timestamptz NOT NULL
);
CREATE INDEX notification_admissions_window ON notification_admissions (window_id, position)
    WHERE overflow;
