-- CAP 1.2 messages (alerts/cap_messages.py): one per public change of an alert (raised, level changed, all
-- clear). Identifier, sent time and message type are fixed when the change is stored, so every fetch serves the
-- same message and later messages can reference it (aggregators dedupe and chain on sender, identifier, sent).
-- The place names are kept as they were told, so a device renamed later does not rewrite an old message.
CREATE TABLE cap_messages (
    alert_id    bigint NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    seq         integer NOT NULL CHECK (seq >= 1),        -- 1: the Alert; then each Update, in order
    event_id    bigint NOT NULL UNIQUE REFERENCES alert_events (id) ON DELETE CASCADE,
    -- CAP forbids spaces, commas and the restricted characters < and & in identifiers
    identifier  text NOT NULL UNIQUE CHECK (identifier ~ '^[^[:space:],<&]+$'),
    sent        timestamptz NOT NULL CHECK (sent = date_trunc('second', sent)),  -- CAP times have no fractions
    msg_type    text NOT NULL CHECK (msg_type IN ('Alert', 'Update', 'Cancel')),
    area_ja     text NOT NULL,
    area_en     text NOT NULL,
    PRIMARY KEY (alert_id, seq),
    CHECK ((seq = 1) = (msg_type = 'Alert'))
);

-- Alerts stored before this migration get their messages from their history, as the hub now records them.
INSERT INTO cap_messages (alert_id, seq, event_id, identifier, sent, msg_type, area_ja, area_en)
SELECT e.alert_id, e.seq, e.id,
       'mimamori.alert.' || e.alert_id || '.' || e.seq || '.'
           || to_char(e.sent AT TIME ZONE 'UTC', 'YYYYMMDD"T"HH24MISS"Z"'),
       e.sent,
       CASE WHEN e.seq = 1 THEN 'Alert' ELSE 'Update' END,
       coalesce(nullif(d.metadata ->> 'name_ja', ''), nullif(d.name, ''), a.subject),
       coalesce(nullif(d.metadata ->> 'name_en', ''), nullif(d.name, ''), a.subject)
FROM (
    SELECT id, alert_id, date_trunc('second', at) AS sent,
           row_number() OVER (PARTITION BY alert_id ORDER BY id) AS seq
    FROM alert_events WHERE kind IN ('raised', 'escalated', 'deescalated', 'resolved')
) e
JOIN alerts a ON a.id = e.alert_id
LEFT JOIN devices d ON d.id = a.device_id;
