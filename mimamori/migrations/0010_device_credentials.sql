-- Which devices have a broker account. The hub keeps no password, not even a hash: the broker's
-- dynamic-security plugin holds the only (hashed) copy. This table is the registry's marker, so lists can show
-- which devices can connect and retiring a device knows to revoke its account.
CREATE TABLE device_credentials (
    device_id       text PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    mqtt_username   text NOT NULL UNIQUE,
    provisioned_at  timestamptz NOT NULL DEFAULT now(),
    rotated_at      timestamptz
);

-- Registry lists filter by tenant, type and status together.
CREATE INDEX devices_tenant_status_idx ON devices (tenant_id, status);
CREATE INDEX audit_log_actor_idx ON audit_log (actor, at);
