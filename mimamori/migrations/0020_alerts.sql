-- Alerts (alerts/): API-managed rules, one alert per (rule, subject) while it lasts, every change an event,
-- webhook subscriptions with their delivery log, and the cursors of the distributors (MQTT, webhooks).

-- Rules managed through the API; the rule folder's YAML files are the other source. A rule here with the id of a
-- file rule overrides it.
CREATE TABLE alert_rules (
    id          text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_.-]{0,63}$'),
    body        jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text NOT NULL
);

CREATE TABLE alerts (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rule_id          text NOT NULL,
    subject          text NOT NULL,            -- a device id, or a composite rule's group
    rule_kind        text NOT NULL,
    hazard           text NOT NULL,
    title_en         text NOT NULL,
    title_ja         text NOT NULL DEFAULT '',
    device_id        text REFERENCES devices (id) ON DELETE SET NULL,
    -- the owning tenant of the subject's devices: partners see only their own (enforced in every query)
    tenant_id        text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    state            text NOT NULL CHECK (state IN ('open', 'acknowledged', 'resolved', 'closed')),
    level            smallint NOT NULL CHECK (level BETWEEN 1 AND 5),  -- current (or last active) level
    peak_level       smallint NOT NULL CHECK (peak_level BETWEEN 1 AND 5),
    value            double precision,          -- the judged quantity at the last change
    device_time      timestamptz,               -- device time of the last change
    opened_at        timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    acknowledged_at  timestamptz,
    acknowledged_by  text,
    resolved_at      timestamptz,
    resolved_by      text,
    closed_at        timestamptz,
    location         geometry (Point, 4326),
    area             geometry (Geometry, 4326)   -- affected area: a configured polygon or a buffer
);
-- One alert per (rule, subject) while it lasts.
CREATE UNIQUE INDEX alerts_active_uniq ON alerts (rule_id, subject) WHERE state IN ('open', 'acknowledged');
CREATE INDEX alerts_state_level_idx ON alerts (state, level);
CREATE INDEX alerts_tenant_idx ON alerts (tenant_id);
CREATE INDEX alerts_opened_idx ON alerts (opened_at DESC);
CREATE INDEX alerts_location_idx ON alerts USING gist (location);
CREATE INDEX alerts_area_idx ON alerts USING gist (area);

-- Every change of an alert. The id orders the live stream (SSE Last-Event-ID) and the distributors' cursors.
CREATE TABLE alert_events (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id        bigint NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    kind            text NOT NULL CHECK (kind IN ('raised', 'escalated', 'deescalated', 'acknowledged', 'resolved',
                                                  'closed')),
    at              timestamptz NOT NULL DEFAULT clock_timestamp(),
    device_time     timestamptz,
    level           smallint NOT NULL,
    previous_level  smallint,
    state           text NOT NULL,              -- the alert's state after the change
    value           double precision,
    actor           text NOT NULL,              -- 'rule:<id>' or the API key id of a person
    note            text
);
CREATE INDEX alert_events_alert_idx ON alert_events (alert_id, id);

CREATE TABLE alert_webhooks (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id     text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    all_tenants   boolean NOT NULL DEFAULT false,   -- the city's subscriptions; partners' stay on their tenant
    url           text NOT NULL CHECK (url ~ '^https?://'),
    secret        text NOT NULL,                    -- HMAC key: needed in clear to sign; never returned or logged
    min_level     smallint NOT NULL DEFAULT 1 CHECK (min_level BETWEEN 1 AND 5),
    hazards       text[],                           -- NULL: every hazard
    bbox          geometry (Polygon, 4326),         -- NULL: everywhere
    active        boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    created_by    text NOT NULL
);

CREATE TABLE alert_webhook_deliveries (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id       bigint NOT NULL REFERENCES alert_webhooks (id) ON DELETE CASCADE,
    event_id         bigint NOT NULL REFERENCES alert_events (id) ON DELETE CASCADE,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_attempt_at  timestamptz,
    response_status  integer,
    error            text,
    delivered_at     timestamptz,
    UNIQUE (webhook_id, event_id)
);
CREATE INDEX alert_webhook_deliveries_due_idx ON alert_webhook_deliveries (next_attempt_at) WHERE status = 'pending';

-- How far each distributor has got through alert_events.
CREATE TABLE alert_dispatch_cursors (
    consumer       text PRIMARY KEY,
    last_event_id  bigint NOT NULL DEFAULT 0,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
