-- Open data (docs/open-data.md): which of a tenant's data the hub serves to anyone, without a key, at /open.
-- Nothing is public unless a row here says so and is published; a partner's data only when the partner itself
-- published it (the rule is opendata/rules.py, enforced by the API). One table for both storage modes.
CREATE TABLE open_datasets (
  id text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
  kind text NOT NULL CHECK (kind IN ('river_levels','rainfall','alerts','stand_summaries','evacuation_sites')),
  tenant_id text NOT NULL REFERENCES tenants(id),
  title_ja text NOT NULL, title_en text NOT NULL, description text NOT NULL DEFAULT '',
  licence text NOT NULL DEFAULT 'CC-BY-4.0', attribution text NOT NULL,
  published boolean NOT NULL DEFAULT false, published_by text, published_at timestamptz,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX open_datasets_published_idx ON open_datasets (kind, tenant_id) WHERE published;
