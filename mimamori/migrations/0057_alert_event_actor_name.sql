-- Who acted on an alert, as a person: the name of the API key at the time of the action (keys held by people carry
-- the person's name). Stored with the event, not joined at read time, so the audit trail keeps the name the key had
-- then. NULL for rules and for keys without a name (the map then shows the key id of `actor`).
ALTER TABLE alert_events ADD COLUMN actor_name text;
