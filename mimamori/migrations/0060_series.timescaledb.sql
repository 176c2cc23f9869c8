-- Readings keyed by a series number (device and metric, stored once in `series`) instead of two texts on every
-- row, on TimescaleDB: the hypertable `series_readings` is compressed per series, its continuous aggregates are
-- grouped by series, and `readings`, `readings_10m`, `readings_1h` and `readings_1d` become views of the same
-- columns as before (so every reader keeps its SQL). Chunks of 7 days: a compressed batch then holds up to 1,000
-- readings of a 10-minute gauge instead of 144, which is most of what compression saves. Series rows are never
-- deleted: their numbers are remembered by the writers.
DROP MATERIALIZED VIEW readings_1d;
DROP MATERIALIZED VIEW readings_1h;
DROP MATERIALIZED VIEW readings_10m;

CREATE TABLE series (
    series_id  integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id  text NOT NULL,
    metric     text NOT NULL,
    UNIQUE (device_id, metric)
);
INSERT INTO series (device_id, metric) SELECT DISTINCT device_id, metric FROM readings ORDER BY 1, 2;

-- Column order is storage order: the two 8-byte columns, then the two 4-byte ones, so no padding is left.
CREATE TABLE series_readings (
    time       timestamptz NOT NULL,
    value      double precision NOT NULL,
    series_id  integer NOT NULL,
    delay_cs   integer NOT NULL,
    PRIMARY KEY (series_id, time)
);
SELECT create_hypertable('series_readings', by_range('time', INTERVAL '7 days'), create_default_indexes => false);
ALTER TABLE series_readings SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'series_id',
    timescaledb.compress_orderby = 'time DESC'
);
INSERT INTO series_readings (time, value, series_id, delay_cs)
SELECT r.time, r.value, s.series_id, reading_delay_cs(r.time, r.received_at)
FROM readings r JOIN series s USING (device_id, metric)
ORDER BY r.time, s.series_id;
DROP TABLE readings;
-- Ranges of time across series (counts by time in Grafana) within a chunk: a BRIN index is a few pages, where
-- TimescaleDB's default btree on time would cost a third of each insert. The primary key serves each series.
CREATE INDEX series_readings_time_brin ON series_readings USING brin (time);

CREATE VIEW readings AS
SELECT r.time, s.device_id, s.metric, r.value, r.time + r.delay_cs * INTERVAL '10 milliseconds' AS received_at
FROM series_readings r JOIN series s USING (series_id);

CREATE MATERIALIZED VIEW series_readings_10m
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '10 minutes', time) AS bucket, series_id,
       avg(value) AS avg, min(value) AS min, max(value) AS max, sum(value) AS sum,
       count(*) AS count, last(value, time) AS last
FROM series_readings
GROUP BY bucket, series_id
WITH NO DATA;

CREATE MATERIALIZED VIEW series_readings_1h
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 hour', time) AS bucket, series_id,
       avg(value) AS avg, min(value) AS min, max(value) AS max, sum(value) AS sum,
       count(*) AS count, last(value, time) AS last
FROM series_readings
GROUP BY bucket, series_id
WITH NO DATA;

CREATE MATERIALIZED VIEW series_readings_1d
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 day', time) AS bucket, series_id,
       avg(value) AS avg, min(value) AS min, max(value) AS max, sum(value) AS sum,
       count(*) AS count, last(value, time) AS last
FROM series_readings
GROUP BY bucket, series_id
WITH NO DATA;

-- The aggregates as readers knew them (Grafana, operators' own SQL); the API reads the series aggregates itself.
CREATE VIEW readings_10m AS
SELECT a.bucket, s.device_id, s.metric, a.avg, a.min, a.max, a.sum, a.count, a.last
FROM series_readings_10m a JOIN series s USING (series_id);
CREATE VIEW readings_1h AS
SELECT a.bucket, s.device_id, s.metric, a.avg, a.min, a.max, a.sum, a.count, a.last
FROM series_readings_1h a JOIN series s USING (series_id);
CREATE VIEW readings_1d AS
SELECT a.bucket, s.device_id, s.metric, a.avg, a.min, a.max, a.sum, a.count, a.last
FROM series_readings_1d a JOIN series s USING (series_id);
