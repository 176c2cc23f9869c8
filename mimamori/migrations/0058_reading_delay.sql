-- How long after its own time a reading reached the hub, in hundredths of a second, for the series layout of 0060:
-- four bytes that fill the row's alignment padding (plain) and compress to about one and a third (TimescaleDB),
-- where a second timestamp cost eight and four. Hundredths, because the time of receipt is the batch's (it waits
-- up to MIMAMORI_INGEST_BATCH_MS, 50 ms by default): finer figures would be noise, and noise does not compress.
-- Saturates at ±248 days: a reading later than that is shown as 248 days late.
CREATE FUNCTION reading_delay_cs(reading_time timestamptz, received timestamptz DEFAULT now())
RETURNS integer
LANGUAGE sql STABLE PARALLEL SAFE
RETURN least(greatest(round(extract(epoch FROM received - reading_time) * 100), -2147483648), 2147483647)::integer;
