"""The top of the house: the `mimamori` command and the one place that composes the hub's processes.

Nothing imports this package; it imports every other one (ground: mimamori/; domain: devices/, ingest/, alerts/,
geo/, simulators/, dashboards/; the HTTP layer: api/)."""
