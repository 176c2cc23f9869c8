-- A webhook subscription's notification format: the hub's own event JSON, or an NGSI-LD Notification of the alert
-- as an entity (api/ngsi_ld/subscriptions.py). NGSI-LD subscriptions keep their document (minus the id) to answer
-- GET /ngsi-ld/v1/subscriptions/{id} as they were made.
ALTER TABLE alert_webhooks
    ADD COLUMN format text NOT NULL DEFAULT 'mimamori' CHECK (format IN ('mimamori', 'ngsi-ld')),
    ADD COLUMN subscription jsonb;
