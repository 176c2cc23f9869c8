"""SQL of open data: the ``open_datasets`` table (migration 0062), parameterised; every anonymous read asks for
published rows only. (The evacuation sites are geo/'s table, read by geo.evacuation.)"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

from opendata.rules import Dataset, DatasetDraft, Kind

_COLUMNS = (
    "id, kind, tenant_id, title_ja, title_en, description, licence, attribution, published, published_by,"
    " published_at, updated_at"
)


def _dataset(r: tuple[Any, ...]) -> Dataset:
    return Dataset(r[0], Kind(r[1]), *r[2:])


def published_datasets(conn: psycopg.Connection, kind: Kind | None = None) -> list[Dataset]:
    """Every published dataset (of one kind), by id: what anyone may read."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM open_datasets WHERE published AND (%(kind)s::text IS NULL OR kind = %(kind)s)"
        " ORDER BY id",
        {"kind": None if kind is None else str(kind)},
    ).fetchall()
    return [_dataset(r) for r in rows]


def published_dataset(conn: psycopg.Connection, dataset_id: str) -> Dataset | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM open_datasets WHERE id = %s AND published", (dataset_id,)).fetchone()
    return _dataset(row) if row else None


def get_dataset(conn: psycopg.Connection, dataset_id: str) -> Dataset | None:
    """A dataset, published or not (for the keys that manage it)."""
    row = conn.execute(f"SELECT {_COLUMNS} FROM open_datasets WHERE id = %s", (dataset_id,)).fetchone()
    return _dataset(row) if row else None


def list_datasets(conn: psycopg.Connection, tenant_id: str | None) -> list[Dataset]:
    """Every dataset, published or not, of one tenant (None: all)."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM open_datasets WHERE %(t)s::text IS NULL OR tenant_id = %(t)s ORDER BY id",
        {"t": tenant_id},
    ).fetchall()
    return [_dataset(r) for r in rows]


def save_dataset(conn: psycopg.Connection, d: DatasetDraft) -> None:
    """Insert or update a dataset's description; its publication is left as it was (a new one is unpublished)."""
    conn.execute(
        "INSERT INTO open_datasets (id, kind, tenant_id, title_ja, title_en, description, licence, attribution)"
        " VALUES (%(id)s, %(kind)s, %(tenant)s, %(ja)s, %(en)s, %(desc)s, %(licence)s, %(attr)s)"
        " ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, tenant_id = excluded.tenant_id,"
        " title_ja = excluded.title_ja, title_en = excluded.title_en, description = excluded.description,"
        " licence = excluded.licence, attribution = excluded.attribution, updated_at = now()",
        {
            "id": d.id,
            "kind": str(d.kind),
            "tenant": d.tenant_id,
            "ja": d.title_ja,
            "en": d.title_en,
            "desc": d.description,
            "licence": d.licence,
            "attr": d.attribution,
        },
    )


def set_published(conn: psycopg.Connection, dataset_id: str, published: bool, by: str) -> bool:
    cur = conn.execute(
        "UPDATE open_datasets SET published = %(p)s, published_by = CASE WHEN %(p)s THEN %(by)s END,"
        " published_at = CASE WHEN %(p)s THEN now() END, updated_at = now() WHERE id = %(id)s",
        {"p": published, "by": by, "id": dataset_id},
    )
    return cur.rowcount == 1


def delete_dataset(conn: psycopg.Connection, dataset_id: str) -> bool:
    return conn.execute("DELETE FROM open_datasets WHERE id = %s", (dataset_id,)).rowcount == 1


def evacuation_sites_exist(conn: psycopg.Connection) -> bool:
    """Whether migration 0063 made geo's evacuation_sites (an installation may run this before it)."""
    row = conn.execute("SELECT to_regclass('evacuation_sites') IS NOT NULL").fetchone()
    return bool(row and row[0])


def newest_change(conn: psycopg.Connection) -> datetime | None:
    row = conn.execute("SELECT max(updated_at) FROM open_datasets WHERE published").fetchone()
    return row[0] if row else None
