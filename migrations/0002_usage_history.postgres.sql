-- Plain PostgreSQL: long-range history is a view over usage_events with the same columns as
-- the TimescaleDB continuous aggregate. No retention (there is no policy engine); see README.

CREATE VIEW usage_hourly AS
SELECT
    date_trunc('hour', occurred_at)        AS hour,
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
GROUP BY 1, 2, 3, 4;
