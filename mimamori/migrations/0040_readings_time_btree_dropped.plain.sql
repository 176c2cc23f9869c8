-- Plain PostgreSQL: the btree on readings.time (0002) goes. Every query of readings names its devices, which the
-- primary key (device_id, metric, time) serves, and ranges of time alone are what the BRIN index on time (0002) is
-- for; keeping the btree up to date cost about 18 % of each batch insert (bench.ingest). TimescaleDB keeps its own
-- time index per chunk.
DROP INDEX IF EXISTS readings_time_idx;
