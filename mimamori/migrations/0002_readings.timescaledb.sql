-- Readings on TimescaleDB (2.13+ syntax): a hypertable compressed per device and metric,
-- with continuous aggregates for the buckets the API serves. Retention and compression
-- ages are settings, applied by `mimamori db migrate` after the migrations.
CREATE EXTENSION IF NOT EXISTS timescaledb;

CREATE TABLE readings (
    time         timestamptz NOT NULL,
    device_id    text NOT NULL,
    metric       text NOT NULL,
    value        double precision NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, metric, time)
);
SELECT create_hypertable('readings', by_range('time', INTERVAL '1 day'));
-- create_hypertable has already made this index, under this name (TimescaleDB's default time index).
CREATE INDEX IF NOT EXISTS readings_time_idx ON readings (time DESC);

ALTER TABLE readings SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'device_id, metric',
    timescaledb.compress_orderby = 'time DESC'
);

CREATE MATERIALIZED VIEW readings_10m
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '10 minutes', time) AS bucket, device_id, metric,
       avg(value) AS avg, min(value) AS min, max(value) AS max, sum(value) AS sum,
       count(*) AS count, last(value, time) AS last
FROM readings
GROUP BY bucket, device_id, metric
WITH NO DATA;

CREATE MATERIALIZED VIEW readings_1h
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 hour', time) AS bucket, device_id, metric,
       avg(value) AS avg, min(value) AS min, max(value) AS max, sum(value) AS sum,
       count(*) AS count, last(value, time) AS last
FROM readings
GROUP BY bucket, device_id, metric
WITH NO DATA;

CREATE MATERIALIZED VIEW readings_1d
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 day', time) AS bucket, device_id, metric,
       avg(value) AS avg, min(value) AS min, max(value) AS max, sum(value) AS sum,
       count(*) AS count, last(value, time) AS last
FROM readings
GROUP BY bucket, device_id, metric
WITH NO DATA;

SELECT add_continuous_aggregate_policy('readings_10m',
    start_offset => INTERVAL '2 days', end_offset => INTERVAL '10 minutes',
    schedule_interval => INTERVAL '5 minutes');
SELECT add_continuous_aggregate_policy('readings_1h',
    start_offset => INTERVAL '7 days', end_offset => INTERVAL '1 hour',
    schedule_interval => INTERVAL '30 minutes');
SELECT add_continuous_aggregate_policy('readings_1d',
    start_offset => INTERVAL '60 days', end_offset => INTERVAL '1 day',
    schedule_interval => INTERVAL '6 hours');
