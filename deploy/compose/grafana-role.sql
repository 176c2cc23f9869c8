-- The read-only role Grafana's data source uses (docs/grafana.md), created or updated on every `compose up`
-- by the grafana-role service:  psql -v role=mimamori_grafana -v password_file=/run/secrets/… -f grafana-role.sql
-- The password is read from the file, never written on a command line.
\set ON_ERROR_STOP on
\set password `cat :password_file`

SELECT format('CREATE ROLE %I LOGIN', :'role')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \gexec
ALTER ROLE :"role" LOGIN PASSWORD :'password';
GRANT CONNECT ON DATABASE :"DBNAME" TO :"role";
GRANT USAGE ON SCHEMA public TO :"role";
-- API keys, credentials and webhook secrets are left out on purpose.
GRANT SELECT ON readings, series, latest_readings, devices, device_liveness, dead_letters,
                alerts, alert_events, stands, areas, tenants TO :"role";
-- The continuous aggregates exist in TimescaleDB mode only.
SELECT to_regclass('readings_1d') IS NOT NULL AS timescaledb \gset
\if :timescaledb
GRANT SELECT ON readings_10m, readings_1h, readings_1d TO :"role";
\endif
ALTER ROLE :"role" SET default_transaction_read_only = on;
ALTER ROLE :"role" SET statement_timeout = '30s';
