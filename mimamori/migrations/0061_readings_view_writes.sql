-- Writing through the `readings` view (0060), for operators' bulk loads (`COPY readings FROM …`), scripts and
-- tests: a row at a time, its series made on first use. The hub's ingest writes series_readings directly.
-- A reading already stored is left as it is and not counted, as ingest does (stored once per device, metric, time).
CREATE FUNCTION readings_view_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    sid integer;
BEGIN
    SELECT series_id INTO sid FROM series WHERE device_id = NEW.device_id AND metric = NEW.metric;
    IF sid IS NULL THEN
        INSERT INTO series (device_id, metric) VALUES (NEW.device_id, NEW.metric)
        ON CONFLICT (device_id, metric) DO NOTHING RETURNING series_id INTO sid;
        IF sid IS NULL THEN  -- made meanwhile by another session, committed since this statement began
            SELECT series_id INTO sid FROM series WHERE device_id = NEW.device_id AND metric = NEW.metric;
        END IF;
    END IF;
    INSERT INTO series_readings (time, value, series_id, delay_cs)
    VALUES (NEW.time, NEW.value, sid, reading_delay_cs(NEW.time, coalesce(NEW.received_at, now())))
    ON CONFLICT (series_id, time) DO NOTHING;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER readings_insert INSTEAD OF INSERT ON readings
    FOR EACH ROW EXECUTE FUNCTION readings_view_insert();

CREATE FUNCTION readings_view_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM series_readings r USING series s
    WHERE s.device_id = OLD.device_id AND s.metric = OLD.metric AND r.series_id = s.series_id AND r.time = OLD.time;
    RETURN OLD;
END
$$;
CREATE TRIGGER readings_delete INSTEAD OF DELETE ON readings
    FOR EACH ROW EXECUTE FUNCTION readings_view_delete();
