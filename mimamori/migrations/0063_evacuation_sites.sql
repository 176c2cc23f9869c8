-- Designated emergency evacuation sites (指定緊急避難場所) and designated shelters (指定避難所), imported from the
-- standard open-data set format (自治体標準オープンデータセット). The columns up to imported_at are a contract read by
-- the citizens' page: add columns, never rename. Geometry in EPSG:4326 (the set's 緯度/経度, JGD2011 ≈ WGS 84).
CREATE TABLE evacuation_sites (
  id text PRIMARY KEY,                 -- '<municipality code>-<kind>-<ID or NO>'
  kind text NOT NULL CHECK (kind IN ('emergency_site','shelter')),
  name text NOT NULL, name_kana text, name_en text,
  address text, phone text,
  hazards text[] NOT NULL DEFAULT '{}',  -- of: flood, landslide, storm_surge, earthquake, tsunami, large_fire, inland_flood, volcano
  capacity integer, elevation_m double precision,
  attributes jsonb NOT NULL DEFAULT '{}',  -- every other column of the standard set, by its Japanese header
  geom geometry(Point, 4326) NOT NULL,
  source_file text, imported_at timestamptz NOT NULL DEFAULT now(),
  -- Added beyond the contract: what export needs to write the file back as it came.
  municipality_code text,              -- 全国地方公共団体コード (6 digits)
  site_no text,                        -- the set's ID / NO within the municipality
  source_headers text[] NOT NULL DEFAULT '{}'  -- the file's headers, in order
);
ALTER TABLE evacuation_sites ADD CONSTRAINT evacuation_sites_hazards_known CHECK (hazards <@ ARRAY[
  'flood', 'landslide', 'storm_surge', 'earthquake', 'tsunami', 'large_fire', 'inland_flood', 'volcano']::text[]);
CREATE INDEX evacuation_sites_geom_idx ON evacuation_sites USING gist (geom);
-- Nearest sites by true distance: KNN (<->) on geography uses this index.
CREATE INDEX evacuation_sites_geog_idx ON evacuation_sites USING gist ((geom::geography));
CREATE INDEX evacuation_sites_hazards_idx ON evacuation_sites USING gin (hazards);
CREATE INDEX evacuation_sites_kind_idx ON evacuation_sites (kind);
