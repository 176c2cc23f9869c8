-- Tenant ids that are words of the hub's own MQTT topics ({prefix}/alerts/{tenant}/{id}/events, …/telemetry,
-- …/status) would make the alert publisher's topics parse as a tenant's readings: refused for new tenants.
-- NOT VALID: an installation that already has such a tenant keeps it (ingest refuses its topics; rename it).
ALTER TABLE tenants
    ADD CONSTRAINT tenants_id_not_a_topic_word
    CHECK (id NOT IN ('telemetry', 'status', 'alerts', 'events')) NOT VALID;
