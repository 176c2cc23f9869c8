-- Core registry and dead letters. PostGIS is required.
CREATE EXTENSION IF NOT EXISTS postgis;

CREATE TABLE tenants (
    id          text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    name        text NOT NULL,
    kind        text NOT NULL DEFAULT 'partner' CHECK (kind IN ('operator', 'partner')),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Device types and their metrics: the catalogue that validation and the rules read.
CREATE TABLE device_types (
    id           text PRIMARY KEY,
    name         text NOT NULL,
    name_ja      text,
    description  text,
    site_schema  jsonb NOT NULL DEFAULT '{}'::jsonb  -- which site metadata keys this type expects
);

CREATE TABLE device_type_metrics (
    device_type  text NOT NULL REFERENCES device_types (id) ON DELETE CASCADE,
    metric       text NOT NULL,
    unit         text NOT NULL,
    min_value    double precision,
    max_value    double precision,
    -- other units a device may send, with the factor that converts them to ``unit``: {"cm": 0.01}
    alt_units    jsonb NOT NULL DEFAULT '{}'::jsonb,
    description  text,
    PRIMARY KEY (device_type, metric)
);

CREATE TABLE devices (
    id                  text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$'),
    tenant_id           text NOT NULL REFERENCES tenants (id),
    device_type         text NOT NULL REFERENCES device_types (id),
    name                text NOT NULL DEFAULT '',
    location            geometry (Point, 4326),
    status              text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'maintenance', 'retired')),
    expected_interval   interval NOT NULL DEFAULT interval '10 minutes',
    installed_on        date,
    metadata            jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX devices_tenant_idx ON devices (tenant_id);
CREATE INDEX devices_type_idx ON devices (device_type);
CREATE INDEX devices_location_idx ON devices USING gist (location);

-- Liveness is written in batches by the ingestor, never once per reading.
CREATE TABLE device_liveness (
    device_id    text PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    last_seen    timestamptz NOT NULL,
    last_reading timestamptz,
    online       boolean,
    battery      double precision,
    signal       double precision,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- Newest value per device and metric, kept by the ingestor once per batch (maps, /latest, liveness).
CREATE TABLE latest_readings (
    device_id  text NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    metric     text NOT NULL,
    time       timestamptz NOT NULL,
    value      double precision NOT NULL,
    PRIMARY KEY (device_id, metric)
);

-- Every message or reading the hub refused, with the reason. Nothing is dropped silently.
CREATE TABLE dead_letters (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at  timestamptz NOT NULL DEFAULT now(),
    source       text NOT NULL CHECK (source IN ('mqtt', 'http')),
    topic        text,
    device_id    text,
    tenant_id    text,
    reason       text NOT NULL,
    detail       text,
    payload      bytea,
    -- identifies the message, so a redelivered message does not dead-letter twice
    message_key  text
);
CREATE INDEX dead_letters_received_idx ON dead_letters (received_at);
CREATE INDEX dead_letters_reason_idx ON dead_letters (reason);
CREATE UNIQUE INDEX dead_letters_message_key_idx ON dead_letters (message_key, reason, coalesce(detail, ''))
    WHERE message_key IS NOT NULL;
