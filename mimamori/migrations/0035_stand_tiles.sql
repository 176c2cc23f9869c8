-- Fast stand tiles. Below the stand-detail zoom a tile would hold tens of thousands of stands (seconds to render,
-- megabytes to send), so low zooms draw compartments (林班) dissolved from their stands instead, kept here by
-- triggers whatever writes the stands. Rendered stand tiles are cached in the database (shared by every API
-- process); each change to the stands bumps the layer's version, so a cached tile is only served for the data it
-- was rendered from — even one rendered from an older snapshot and stored after the change.

CREATE TABLE stand_compartments (
    rinpan          integer NOT NULL,           -- 林班
    rinpan_branch   integer NOT NULL DEFAULT 0,
    stands          integer NOT NULL,           -- sub-compartments (林小班) in it
    area_ha         double precision,           -- their registered area
    species_1       text,                       -- the main species covering most of its area
    protected       boolean NOT NULL,           -- any of its stands is protection forest (保安林)
    -- Web Mercator (tiles need nothing else), simplified by 5 m: about one tile unit at zoom 11, the finest
    -- zoom drawn from this table by default.
    geom            geometry (MultiPolygon, 3857) NOT NULL,
    PRIMARY KEY (rinpan, rinpan_branch)
);
CREATE INDEX stand_compartments_geom_idx ON stand_compartments USING gist (geom);

CREATE TABLE tile_layer_versions (
    layer   text PRIMARY KEY,
    version bigint NOT NULL
);
INSERT INTO tile_layer_versions (layer, version) VALUES ('stands', 1);

CREATE TABLE tile_cache (
    layer       text NOT NULL,
    version     bigint NOT NULL,
    z           integer NOT NULL,
    x           integer NOT NULL,
    y           integer NOT NULL,
    body        bytea NOT NULL,                 -- empty: an empty tile (answered 204)
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (layer, version, z, x, y)
);

-- Rebuild the given compartments from their stands (a compartment without stands disappears).
CREATE FUNCTION refresh_stand_compartments(keys jsonb) RETURNS void LANGUAGE sql AS $$
    DELETE FROM stand_compartments c
    USING (SELECT (e ->> 0)::int AS rinpan, (e ->> 1)::int AS rinpan_branch FROM jsonb_array_elements(keys) e) k
    WHERE c.rinpan = k.rinpan AND c.rinpan_branch = k.rinpan_branch;
    INSERT INTO stand_compartments (rinpan, rinpan_branch, stands, area_ha, species_1, protected, geom)
    SELECT s.rinpan, s.rinpan_branch, count(*), sum(s.area_ha),
           (array_agg(s.species_1 ORDER BY ST_Area(s.geom) DESC) FILTER (WHERE s.species_1 IS NOT NULL))[1],
           bool_or(cardinality(s.protection_forest) > 0),
           ST_Multi(ST_SimplifyPreserveTopology(ST_Union(ST_Transform(s.geom, 3857)), 5))
    FROM stands s
    JOIN (SELECT DISTINCT (e ->> 0)::int AS rinpan, (e ->> 1)::int AS rinpan_branch FROM jsonb_array_elements(keys) e) k
      ON s.rinpan = k.rinpan AND s.rinpan_branch = k.rinpan_branch
    GROUP BY s.rinpan, s.rinpan_branch
    -- A concurrent import may have rebuilt the same compartment first: the later rebuild wins.
    ON CONFLICT (rinpan, rinpan_branch) DO UPDATE SET
        stands = excluded.stands, area_ha = excluded.area_ha, species_1 = excluded.species_1,
        protected = excluded.protected, geom = excluded.geom;
$$;

CREATE FUNCTION stands_invalidate_tiles() RETURNS void LANGUAGE sql AS $$
    UPDATE tile_layer_versions SET version = version + 1 WHERE layer = 'stands';
    DELETE FROM tile_cache WHERE layer = 'stands';
$$;

-- Transition tables allow one event per trigger, hence one small function per event.
CREATE FUNCTION stands_after_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM refresh_stand_compartments((SELECT jsonb_agg(DISTINCT jsonb_build_array(rinpan, rinpan_branch)) FROM changed));
    PERFORM stands_invalidate_tiles();
    RETURN NULL;
END $$;

CREATE FUNCTION stands_after_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM refresh_stand_compartments((
        SELECT jsonb_agg(DISTINCT jsonb_build_array(rinpan, rinpan_branch))
        FROM (SELECT rinpan, rinpan_branch FROM changed UNION SELECT rinpan, rinpan_branch FROM before) k
    ));
    PERFORM stands_invalidate_tiles();
    RETURN NULL;
END $$;

CREATE FUNCTION stands_after_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM refresh_stand_compartments((SELECT jsonb_agg(DISTINCT jsonb_build_array(rinpan, rinpan_branch)) FROM before));
    PERFORM stands_invalidate_tiles();
    RETURN NULL;
END $$;

CREATE FUNCTION stands_after_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM stand_compartments;
    PERFORM stands_invalidate_tiles();
    RETURN NULL;
END $$;

CREATE TRIGGER stands_tiles_insert AFTER INSERT ON stands
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION stands_after_insert();
CREATE TRIGGER stands_tiles_update AFTER UPDATE ON stands
    REFERENCING OLD TABLE AS before NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION stands_after_update();
CREATE TRIGGER stands_tiles_delete AFTER DELETE ON stands
    REFERENCING OLD TABLE AS before FOR EACH STATEMENT EXECUTE FUNCTION stands_after_delete();
CREATE TRIGGER stands_tiles_truncate AFTER TRUNCATE ON stands
    FOR EACH STATEMENT EXECUTE FUNCTION stands_after_truncate();

-- Stands already imported.
SELECT refresh_stand_compartments(
    (SELECT coalesce(jsonb_agg(DISTINCT jsonb_build_array(rinpan, rinpan_branch)), '[]'::jsonb) FROM stands)
);
