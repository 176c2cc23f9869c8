"""TimescaleDB cannot run here, so its migrations are checked as text for what is known to break them."""

from __future__ import annotations

import re

from mimamori.migrate import load_migrations

_HYPERTABLE = re.compile(
    r"create_hypertable\(\s*'(?P<table>\w+)'\s*,\s*by_range\(\s*'(?P<column>\w+)'(?P<rest>[^;]*);", re.I | re.S
)


def test_no_migration_creates_again_the_time_index_create_hypertable_made():
    # create_hypertable makes an index on (time DESC) named <table>_<column>_idx unless told not to
    # (create_default_indexes => false); a plain CREATE INDEX of that name then fails the whole migration.
    checked = 0
    for m in load_migrations():
        if m.mode != "timescaledb":
            continue
        for found in _HYPERTABLE.finditer(m.sql):
            if "create_default_indexes" in found["rest"].lower():
                continue
            default = f"{found['table']}_{found['column']}_idx"
            clashing = re.search(rf"CREATE\s+INDEX\s+(?!IF\s+NOT\s+EXISTS){default}\b", m.sql, re.I)
            assert clashing is None, f"{m.version}_{m.name}: {clashing.group(0)} clashes with TimescaleDB's own"
            checked += 1
    assert checked >= 1  # the readings hypertable at least
