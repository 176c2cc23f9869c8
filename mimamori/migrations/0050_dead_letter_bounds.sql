-- One dead letter per message (ingest/rejections.py): the payload once, and per reason a count and the first details.
ALTER TABLE dead_letters
    ADD COLUMN reasons jsonb,
    ADD COLUMN rejected integer NOT NULL DEFAULT 1;

-- A device over its dead-letter quota (ingest/dead_letter_quota.py): its further refused messages are counted here,
-- one row per device, reason and hour, instead of each keeping a row and a payload. So one device cannot fill the
-- disk, and every refused message is still accounted for: rows in dead_letters plus messages here.
CREATE TABLE dead_letter_overflow (
    window_start     timestamptz NOT NULL,
    source           text NOT NULL CHECK (source IN ('mqtt', 'http')),
    device_id        text NOT NULL,  -- '' when the message named no device
    tenant_id        text,
    reason           text NOT NULL,
    messages         bigint NOT NULL,
    bytes            bigint NOT NULL,  -- payload bytes not kept
    last_message_key text,
    PRIMARY KEY (window_start, source, device_id, reason)
);
