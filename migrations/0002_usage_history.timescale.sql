-- TimescaleDB: usage_events becomes a hypertable with compression; usage_hourly is a real-time
-- continuous aggregate that keeps long-range history after raw chunks are dropped by retention
-- (the retention policy itself is set by `spendwatch migrate` from USAGE_RETENTION_DAYS).

SELECT create_hypertable('usage_events', by_range('occurred_at', INTERVAL '1 day'), migrate_data => true);

ALTER TABLE usage_events SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'provider, user_email',
    timescaledb.compress_orderby = 'occurred_at DESC, event_id'
);
SELECT add_compression_policy('usage_events', compress_after => INTERVAL '7 days');

CREATE MATERIALIZED VIEW usage_hourly
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT
    time_bucket(INTERVAL '1 hour', occurred_at) AS hour,
    provider,
    user_email,
    model,
    count(*)::bigint                       AS events,
    sum(cost_micros)::bigint               AS cost_micros,
    sum(input_tokens)::bigint              AS input_tokens,
    sum(output_tokens)::bigint             AS output_tokens,
    sum(cache_read_tokens)::bigint         AS cache_read_tokens,
    sum(cache_write_tokens)::bigint        AS cache_write_tokens,
    sum(request_units)                     AS request_units,
    count(*) FILTER (WHERE max_mode)::bigint    AS max_mode_events,
    count(*) FILTER (WHERE is_headless)::bigint AS headless_events
FROM usage_events
GROUP BY 1, 2, 3, 4
WITH NO DATA;

SELECT add_continuous_aggregate_policy('usage_hourly',
    start_offset => INTERVAL '3 days',
    end_offset => INTERVAL '1 hour',
    schedule_interval => INTERVAL '15 minutes');
