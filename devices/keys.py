"""API keys bound to a tenant and a role. The secret is shown once and stored only as a hash."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import psycopg

from mimamori.errors import ValidationError


class Role(StrEnum):
    admin = "admin"  # the city's IT
    operator = "operator"  # disaster-response staff: acknowledge alerts
    forestry = "forestry"  # forestry officers: stand data
    viewer = "viewer"  # read-only
    partner = "partner"  # a partner company: its own tenant's devices and data only, and HTTP push


# Keys of these roles act (acknowledge, resolve, administer) and are held by people: they carry the person's name,
# which alert history shows. Viewer keys may drive a wall screen and partner keys a system: a name is optional.
PERSON_ROLES = frozenset({Role.admin, Role.operator, Role.forestry})
NAME_MAX = 200


def key_name(role: Role, name: str) -> str:
    """The name a new key is stored with; a person's key must name the person."""
    name = " ".join(name.split())  # no newlines or tabs in a name that logs and history show
    if len(name) > NAME_MAX:
        raise ValidationError(f"a key's name is at most {NAME_MAX} characters")
    if not name and role in PERSON_ROLES:
        raise ValidationError(
            f"a {role} key is held by a person: give the person's name (alert history shows who acted by it)"
        )
    return name


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    tenant_id: str
    role: Role
    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key's id, its tenant and role."""

    key_id: str
    tenant_id: str
    role: Role

    @property
    def sees_all_tenants(self) -> bool:
        """Only partners are confined to their own tenant; the city's roles see the whole hub."""
        return self.role is not Role.partner


_PREFIX = "mk_"


def _hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def create_key(conn: psycopg.Connection, tenant_id: str, role: Role, name: str = "") -> tuple[str, str]:
    """A new key; returns (key id, full secret). The secret cannot be recovered later."""
    key_id = _PREFIX + secrets.token_hex(8)  # 64 bits: ids never collide, even in a hub with millions of keys
    secret = f"{key_id}.{secrets.token_urlsafe(32)}"
    conn.execute(
        "INSERT INTO api_keys (id, key_hash, tenant_id, role, name) VALUES (%s, %s, %s, %s, %s)",
        (key_id, _hash(secret), tenant_id, str(role), name),
    )
    return key_id, secret


def authenticate(conn: psycopg.Connection, secret: str) -> Principal | None:
    """The principal a presented key stands for, or None when it is unknown, malformed or revoked."""
    key_id, dot, _ = secret.partition(".")
    if not dot or not key_id.startswith(_PREFIX) or len(secret) > 200:
        return None
    presented = _hash(secret)
    # One round trip per request: the look-up, and last_used_at at minute resolution (no write per request) for a
    # key whose hash matches; the hash is compared again below in constant time.
    row = conn.execute(
        "WITH used AS (UPDATE api_keys SET last_used_at = now() WHERE id = %(id)s AND key_hash = %(hash)s"
        " AND revoked_at IS NULL AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute'))"
        " SELECT key_hash, tenant_id, role FROM api_keys WHERE id = %(id)s AND revoked_at IS NULL",
        {"id": key_id, "hash": presented},
    ).fetchone()
    if row is None or not hmac.compare_digest(bytes(row[0]), presented):
        return None
    return Principal(key_id, row[1], Role(row[2]))


def list_keys(conn: psycopg.Connection, tenant_id: str | None = None) -> list[ApiKey]:
    rows = conn.execute(
        "SELECT id, tenant_id, role, name, created_at, last_used_at, revoked_at FROM api_keys"
        " WHERE %(t)s::text IS NULL OR tenant_id = %(t)s ORDER BY created_at",
        {"t": tenant_id},
    ).fetchall()
    return [ApiKey(r[0], r[1], Role(r[2]), r[3], r[4], r[5], r[6]) for r in rows]


def revoke_key(conn: psycopg.Connection, key_id: str) -> bool:
    cur = conn.execute("UPDATE api_keys SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL", (key_id,))
    return cur.rowcount == 1


def audit(conn: psycopg.Connection, actor: str, action: str, target: str | None, detail: dict[str, object]) -> None:
    from psycopg.types.json import Jsonb

    conn.execute(
        "INSERT INTO audit_log (actor, action, target, detail) VALUES (%s, %s, %s, %s)",
        (actor, action, target, Jsonb(detail)),
    )
