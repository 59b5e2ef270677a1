-- What the REST API's usage reads need to stay fast at 500 developers x 90 days (~270k rows in
-- usage_daily_user_model): two small summaries of that rollup, kept exact by statement-level
-- triggers in the same transaction as the rollup change, and indexes for per-user lookups.
-- Plain tables, functions and b-tree indexes: the same on PostgreSQL and TimescaleDB.
--
--   usage_daily_user   per (day, user): ~6x fewer rows than the rollup, for team totals, active
--                      users, top spenders, medians, cycle sums
--   usage_daily_model  per (day, provider, model): a few rows a day, for spend by model/provider

CREATE TABLE usage_daily_user (
    day                 date        NOT NULL,
    user_email          text        NOT NULL,
    events              bigint      NOT NULL DEFAULT 0,
    cost_micros         bigint      NOT NULL DEFAULT 0,
    input_tokens        bigint      NOT NULL DEFAULT 0,
    output_tokens       bigint      NOT NULL DEFAULT 0,
    cache_read_tokens   bigint      NOT NULL DEFAULT 0,
    cache_write_tokens  bigint      NOT NULL DEFAULT 0,
    max_mode_events     bigint      NOT NULL DEFAULT 0,
    headless_events     bigint      NOT NULL DEFAULT 0,
    usage_based_events  bigint      NOT NULL DEFAULT 0,
    usage_based_micros  bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (day, user_email)
);
CREATE INDEX usage_daily_user_user ON usage_daily_user (user_email, day DESC);

CREATE TABLE usage_daily_model (
    day                 date        NOT NULL,
    provider            text        NOT NULL,
    model               text        NOT NULL,
    events              bigint      NOT NULL DEFAULT 0,
    cost_micros         bigint      NOT NULL DEFAULT 0,
    input_tokens        bigint      NOT NULL DEFAULT 0,
    output_tokens       bigint      NOT NULL DEFAULT 0,
    cache_read_tokens   bigint      NOT NULL DEFAULT 0,
    cache_write_tokens  bigint      NOT NULL DEFAULT 0,
    max_mode_events     bigint      NOT NULL DEFAULT 0,
    headless_events     bigint      NOT NULL DEFAULT 0,
    usage_based_events  bigint      NOT NULL DEFAULT 0,
    usage_based_micros  bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (day, provider, model)
);

-- Adds the rollup rows a statement changed (signed: +new, -old) to both summaries, grouped by
-- their keys. Keys are applied in order, like the sink's own rollup upsert, so concurrent
-- batches cannot deadlock. The SQL runs here, not in a helper function: transition tables are
-- only visible to the trigger function itself.
CREATE FUNCTION usage_daily_summaries_apply() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    source text := CASE TG_OP
        WHEN 'INSERT' THEN 'SELECT 1 AS sign, * FROM new_rows'
        WHEN 'UPDATE' THEN
            'SELECT 1 AS sign, * FROM new_rows UNION ALL SELECT -1, * FROM old_rows'
        ELSE 'SELECT -1 AS sign, * FROM old_rows'
    END;
    target text;
    keys text;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM usage_daily_user;
        DELETE FROM usage_daily_model;
        RETURN NULL;
    END IF;
    FOR target, keys IN
        VALUES ('usage_daily_user', 'day, user_email'),
               ('usage_daily_model', 'day, provider, model')
    LOOP
        EXECUTE format($sql$
            INSERT INTO %1$I AS t (%2$s, events, cost_micros, input_tokens, output_tokens,
                                   cache_read_tokens, cache_write_tokens, max_mode_events,
                                   headless_events, usage_based_events, usage_based_micros)
            SELECT %2$s, sum(sign * events)::bigint, sum(sign * cost_micros)::bigint,
                   sum(sign * input_tokens)::bigint, sum(sign * output_tokens)::bigint,
                   sum(sign * cache_read_tokens)::bigint, sum(sign * cache_write_tokens)::bigint,
                   sum(sign * max_mode_events)::bigint, sum(sign * headless_events)::bigint,
                   sum(sign * usage_based_events)::bigint, sum(sign * usage_based_micros)::bigint
            FROM (%3$s) AS d
            GROUP BY %2$s ORDER BY %2$s
            ON CONFLICT (%2$s) DO UPDATE SET
                events = t.events + EXCLUDED.events,
                cost_micros = t.cost_micros + EXCLUDED.cost_micros,
                input_tokens = t.input_tokens + EXCLUDED.input_tokens,
                output_tokens = t.output_tokens + EXCLUDED.output_tokens,
                cache_read_tokens = t.cache_read_tokens + EXCLUDED.cache_read_tokens,
                cache_write_tokens = t.cache_write_tokens + EXCLUDED.cache_write_tokens,
                max_mode_events = t.max_mode_events + EXCLUDED.max_mode_events,
                headless_events = t.headless_events + EXCLUDED.headless_events,
                usage_based_events = t.usage_based_events + EXCLUDED.usage_based_events,
                usage_based_micros = t.usage_based_micros + EXCLUDED.usage_based_micros
        $sql$, target, keys, source);
        -- Only a delete can take a row back to nothing: the sink's updates only add.
        IF TG_OP = 'DELETE' THEN
            EXECUTE format('DELETE FROM %I WHERE events <= 0 AND cost_micros = 0', target);
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;

-- No rollup change may slip between the backfill and the triggers.
LOCK TABLE usage_daily_user_model IN SHARE ROW EXCLUSIVE MODE;

INSERT INTO usage_daily_user
SELECT day, user_email, sum(events), sum(cost_micros), sum(input_tokens), sum(output_tokens),
       sum(cache_read_tokens), sum(cache_write_tokens), sum(max_mode_events),
       sum(headless_events), sum(usage_based_events), sum(usage_based_micros)
FROM usage_daily_user_model GROUP BY day, user_email;

INSERT INTO usage_daily_model
SELECT day, provider, model, sum(events), sum(cost_micros), sum(input_tokens),
       sum(output_tokens), sum(cache_read_tokens), sum(cache_write_tokens),
       sum(max_mode_events), sum(headless_events), sum(usage_based_events),
       sum(usage_based_micros)
FROM usage_daily_user_model GROUP BY day, provider, model;

CREATE TRIGGER usage_daily_summaries_insert AFTER INSERT ON usage_daily_user_model
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION usage_daily_summaries_apply();
CREATE TRIGGER usage_daily_summaries_update AFTER UPDATE ON usage_daily_user_model
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION usage_daily_summaries_apply();
CREATE TRIGGER usage_daily_summaries_delete AFTER DELETE ON usage_daily_user_model
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION usage_daily_summaries_apply();
CREATE TRIGGER usage_daily_summaries_truncate AFTER TRUNCATE ON usage_daily_user_model
    FOR EACH STATEMENT EXECUTE FUNCTION usage_daily_summaries_apply();

-- Per-user lookups of the drilldown and /api/team-spend.
CREATE INDEX anomalies_subject ON anomalies (subject, detected_at DESC);
CREATE INDEX incidents_subject ON incidents (subject, detected_at DESC);
CREATE INDEX members_user ON members (user_email);
CREATE INDEX spend_snapshots_user ON spend_snapshots (user_email, cycle_start DESC);
