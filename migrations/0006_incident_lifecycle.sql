-- Incidents: which anomalies each one has absorbed (so a redelivered anomaly is a no-op), the
-- window it is about, what it cost, and an outbox flag on transitions (events are published
-- after commit; a crash in between is caught up by republishing unpublished rows).
CREATE TABLE incident_anomalies (
    anomaly_id    uuid        PRIMARY KEY,
    incident_id   uuid        NOT NULL REFERENCES incidents ON DELETE CASCADE,
    kind          text        NOT NULL CHECK (kind IN ('detected', 'cleared')),
    applied_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX incident_anomalies_incident ON incident_anomalies (incident_id);

ALTER TABLE incidents
    ADD COLUMN window_start timestamptz,
    ADD COLUMN window_end timestamptz,
    ADD COLUMN cost_micros bigint;
CREATE INDEX incidents_fingerprint ON incidents (fingerprint, resolved_at DESC);

-- `incident` is the snapshot the transition's event carries, so a late republish is exact.
ALTER TABLE incident_transitions ADD COLUMN incident jsonb, ADD COLUMN published_at timestamptz;
CREATE INDEX incident_transitions_unpublished ON incident_transitions (transition_id)
    WHERE published_at IS NULL;

-- MTTD = detected - evidence_first_at, MTTI = acknowledged - alerted, MTTR = resolved -
-- detected, in seconds (NULL until both ends exist). One place for the API and Grafana.
CREATE VIEW incident_metrics AS
SELECT incident_id, fingerprint, detector, subject, severity, state, resolution, detected_at,
       extract(epoch FROM detected_at - evidence_first_at)::double precision AS mttd_seconds,
       extract(epoch FROM acknowledged_at - alerted_at)::double precision AS mtti_seconds,
       extract(epoch FROM resolved_at - detected_at)::double precision AS mttr_seconds,
       cost_micros
FROM incidents;

-- MTTD/MTTI/MTTR aggregated over incidents detected in [since, until): per detector and overall
-- (detector NULL), count, mean, p50 and p90 in seconds. One definition for the API and Grafana.
CREATE FUNCTION incident_mtt_summary(since timestamptz, until timestamptz)
RETURNS TABLE (
    detector text, incidents bigint,
    mttd_mean double precision, mttd_p50 double precision, mttd_p90 double precision,
    mtti_mean double precision, mtti_p50 double precision, mtti_p90 double precision,
    mttr_mean double precision, mttr_p50 double precision, mttr_p90 double precision,
    cost_micros numeric
)
LANGUAGE sql STABLE AS $$
    SELECT m.detector, count(*),
           avg(m.mttd_seconds),
           percentile_cont(0.5) WITHIN GROUP (ORDER BY m.mttd_seconds),
           percentile_cont(0.9) WITHIN GROUP (ORDER BY m.mttd_seconds),
           avg(m.mtti_seconds),
           percentile_cont(0.5) WITHIN GROUP (ORDER BY m.mtti_seconds),
           percentile_cont(0.9) WITHIN GROUP (ORDER BY m.mtti_seconds),
           avg(m.mttr_seconds),
           percentile_cont(0.5) WITHIN GROUP (ORDER BY m.mttr_seconds),
           percentile_cont(0.9) WITHIN GROUP (ORDER BY m.mttr_seconds),
           sum(m.cost_micros)
    FROM incident_metrics AS m
    WHERE m.detected_at >= since AND m.detected_at < until
    GROUP BY GROUPING SETS ((m.detector), ())
$$;
