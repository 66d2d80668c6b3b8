-- What the exporter needs on a ClickHouse server, run once by an administrator:
--   clickhouse-client --multiquery < deploy/clickhouse-setup.sql
-- Replace the database `xeroml` with yours, and the password hash with your own:
--   echo -n "$CLICKHOUSE_PASSWORD" | sha256sum
-- (xeroml_pipelines_tests/test_deploy_files.py checks these statements against the tables and
-- columns the exporter reads.)

-- 1. A read-only user for the exporter. readonly = 2 still lets a query pin its own settings,
--    which every export query does (its output must not change with the server's defaults).
CREATE ROLE IF NOT EXISTS xeroml_exporter;
GRANT SELECT ON xeroml.traces TO xeroml_exporter;
GRANT SELECT ON xeroml.observations TO xeroml_exporter;
GRANT SELECT ON xeroml.scores TO xeroml_exporter;
-- The late-data sensor reads which parts changed since its previous tick; without this grant it
-- recounts every recent partition on every tick.
GRANT SELECT(database, table, partition_id, active, max_block_number, data_version) ON system.parts TO xeroml_exporter;
CREATE USER IF NOT EXISTS xeroml_export
    IDENTIFIED WITH sha256_hash BY '0000000000000000000000000000000000000000000000000000000000000000'  -- yours
    DEFAULT ROLE xeroml_exporter
    SETTINGS readonly = 2;
GRANT xeroml_exporter TO xeroml_export;

-- 2. The index the window queries use. The export selects rows by `event_ts` (the ingestion
--    version), which is not in XeroML's sort key; tables created by `xeroml ddl` already have it.
ALTER TABLE xeroml.traces       ADD INDEX IF NOT EXISTS event_ts_minmax event_ts TYPE minmax GRANULARITY 1;
ALTER TABLE xeroml.observations ADD INDEX IF NOT EXISTS event_ts_minmax event_ts TYPE minmax GRANULARITY 1;
ALTER TABLE xeroml.scores       ADD INDEX IF NOT EXISTS event_ts_minmax event_ts TYPE minmax GRANULARITY 1;
ALTER TABLE xeroml.traces       MATERIALIZE INDEX event_ts_minmax;
ALTER TABLE xeroml.observations MATERIALIZE INDEX event_ts_minmax;
ALTER TABLE xeroml.scores       MATERIALIZE INDEX event_ts_minmax;
