-- Readings on plain PostgreSQL: one row per (device, metric, time), stored once.
CREATE TABLE readings (
    time         timestamptz NOT NULL,
    device_id    text NOT NULL,
    metric       text NOT NULL,
    value        double precision NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, metric, time)
);
-- Time-range scans across devices (maps, alert windows, retention jobs).
CREATE INDEX readings_time_brin ON readings USING brin (time);
CREATE INDEX readings_time_idx ON readings (time DESC);
