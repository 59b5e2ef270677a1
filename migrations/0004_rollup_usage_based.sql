-- The rollup counts what went past the included plan (kind 'usage_based'), so plan exhaustion
-- and on-demand spend per cycle are read from it instead of scanning raw events.
ALTER TABLE usage_daily_user_model
    ADD COLUMN usage_based_events bigint NOT NULL DEFAULT 0,
    ADD COLUMN usage_based_micros bigint NOT NULL DEFAULT 0;

-- Existing rows: a row's events are exactly the user's events of that provider and model between
-- its first and last event (days do not overlap), whatever timezone defined the day.
UPDATE usage_daily_user_model AS r
SET usage_based_events = u.events, usage_based_micros = u.micros
FROM (
    SELECT r2.day, r2.user_email, r2.provider, r2.model,
           count(*) AS events, sum(e.cost_micros) AS micros
    FROM usage_daily_user_model AS r2
    JOIN usage_events AS e
      ON e.user_email = r2.user_email AND e.provider = r2.provider AND e.model = r2.model
     AND e.occurred_at BETWEEN r2.first_event_at AND r2.last_event_at
    WHERE e.kind = 'usage_based'
    GROUP BY 1, 2, 3, 4
) AS u
WHERE r.day = u.day AND r.user_email = u.user_email AND r.provider = u.provider
  AND r.model = u.model;
