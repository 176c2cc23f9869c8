-- API keys: shown once, stored as SHA-256 of the whole key (keys are 256-bit random, so a fast hash is
-- enough), found by their public prefix. Each key is bound to one tenant and one role.
CREATE TABLE api_keys (
    id           text PRIMARY KEY,              -- the public prefix, e.g. 'mk_3f9a1c2b'
    key_hash     bytea NOT NULL,
    tenant_id    text NOT NULL REFERENCES tenants (id),
    role         text NOT NULL CHECK (role IN ('admin', 'operator', 'forestry', 'viewer', 'partner')),
    name         text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX api_keys_tenant_idx ON api_keys (tenant_id);

-- Administrative actions: who, what, when.
CREATE TABLE audit_log (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    actor      text NOT NULL,                   -- key id, or 'cli:<os user>'
    action     text NOT NULL,
    target     text,
    detail     jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_at_idx ON audit_log (at);
