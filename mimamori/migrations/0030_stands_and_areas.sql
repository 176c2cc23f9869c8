-- Forest stands (森林簿: one row per 林小班 sub-compartment polygon) and configured areas (river reaches,
-- slopes, districts, evacuation zones). Geometry is stored in EPSG:4326; the file's CRS is kept as metadata.
CREATE TABLE stands (
    stand_id            text PRIMARY KEY,          -- 林班[.枝番]-小班[.枝番], e.g. '12-3' or '12-3.1'
    rinpan              integer NOT NULL,          -- 林班 (compartment)
    rinpan_branch       integer NOT NULL DEFAULT 0,
    shohan              integer NOT NULL,          -- 小班 (sub-compartment)
    shohan_branch       integer NOT NULL DEFAULT 0,
    species_1           text,                      -- 樹種1..3
    species_2           text,
    species_3           text,
    age_1               integer CHECK (age_1 >= 0),  -- 林齢1..3, as of age_reference_year
    age_2               integer CHECK (age_2 >= 0),
    age_3               integer CHECK (age_3 >= 0),
    age_reference_year  integer,
    age_class           integer CHECK (age_class >= 1),  -- 齢級 (5-year classes)
    area_ha             double precision CHECK (area_ha >= 0),
    volume_m3           double precision CHECK (volume_m3 >= 0),
    forest_type         text,                      -- 林種
    ownership           text CHECK (ownership IN ('national', 'prefectural', 'municipal', 'property_ward', 'private')),
    protection_forest   text[] NOT NULL DEFAULT '{}',  -- 保安林 designations
    site_index          integer,                   -- 地位
    density             text,                      -- 疎密度
    height_m            double precision,          -- 樹高
    slope_deg           double precision,          -- 傾斜
    elevation_m         double precision,          -- 標高
    attributes          jsonb NOT NULL DEFAULT '{}'::jsonb,  -- the register's other columns, kept verbatim
    source_file         text,
    source_crs          text,
    imported_at         timestamptz NOT NULL DEFAULT now(),
    geom                geometry (MultiPolygon, 4326) NOT NULL
);
CREATE INDEX stands_geom_idx ON stands USING gist (geom);
CREATE INDEX stands_species_idx ON stands (species_1);
CREATE INDEX stands_ownership_idx ON stands (ownership);
CREATE INDEX stands_protection_idx ON stands USING gin (protection_forest);

CREATE TABLE areas (
    id          text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$'),
    kind        text NOT NULL CHECK (kind IN ('river_reach', 'slope', 'district', 'evacuation_zone', 'other')),
    name        text NOT NULL DEFAULT '',
    tenant_id   text REFERENCES tenants (id) ON DELETE CASCADE,  -- NULL: the city's, visible to its roles
    properties  jsonb NOT NULL DEFAULT '{}'::jsonb,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    geom        geometry (Geometry, 4326) NOT NULL
);
CREATE INDEX areas_geom_idx ON areas USING gist (geom);
CREATE INDEX areas_kind_idx ON areas (kind);
