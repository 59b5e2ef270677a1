-- The read-only role Grafana connects as. Created NOLOGIN here; `spendwatch migrate` gives it
-- LOGIN and a password when GRAFANA_DB_PASSWORD is set (a migration file has no secrets).
-- Roles are cluster-wide: the role may already exist (another database on the server, a
-- concurrent migration, or made by hand), and the migrating user may lack CREATEROLE (a
-- managed database): then this only says so, and grafana/README.md shows the manual steps.
-- Same on plain PostgreSQL and TimescaleDB (grants on a hypertable or a continuous aggregate
-- reach its chunks and its materialization).

-- The team budget for the dashboards, without giving Grafana the `settings` table itself
-- (a view reads with its owner's rights).
CREATE VIEW team_budget AS
SELECT
    (value #>> '{static_caps,team_cycle_budget_usd}')::numeric      AS budget_usd,
    (value #>> '{static_caps,team_budget_critical_ratio}')::numeric AS critical_ratio
FROM settings
WHERE key = 'detection';

DO $$
DECLARE
    may_create boolean;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'grafana_reader') THEN
        SELECT rolsuper OR rolcreaterole INTO may_create FROM pg_roles WHERE rolname = current_user;
        IF NOT may_create THEN
            RAISE NOTICE 'grafana_reader not created: % lacks CREATEROLE (see grafana/README.md)',
                current_user;
            RETURN;
        END IF;
        BEGIN
            CREATE ROLE grafana_reader NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- created at the same moment by a migration of another database
        END;
    END IF;

    BEGIN
        EXECUTE format('GRANT CONNECT ON DATABASE %I TO grafana_reader', current_database());
    EXCEPTION WHEN insufficient_privilege THEN
        RAISE NOTICE 'cannot grant CONNECT on % to grafana_reader', current_database();
    END;
    GRANT USAGE ON SCHEMA public TO grafana_reader;
    GRANT SELECT ON ALL TABLES IN SCHEMA public TO grafana_reader;  -- tables and views
    -- Bearer-token hashes, the raw settings and who changed them are not for dashboards.
    REVOKE ALL ON api_tokens, settings, settings_audit FROM grafana_reader;
    -- Tables and views that later migrations create (they run as this same user).
    ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO grafana_reader;

    -- A second guard besides the grants, and a bound on a runaway panel query.
    BEGIN
        ALTER ROLE grafana_reader SET default_transaction_read_only = on;
        ALTER ROLE grafana_reader SET statement_timeout = '30s';
    EXCEPTION WHEN insufficient_privilege THEN
        RAISE NOTICE 'cannot set grafana_reader defaults: % does not administer the role',
            current_user;
    END;
END
$$;
