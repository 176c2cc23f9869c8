"""Registry operations as the API and the CLI call them: one function per action, confined to the caller's
tenant, validated against the catalogue, audited, and kept in step with the broker's device accounts."""

from __future__ import annotations

import getpass
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import psycopg

from devices import queries
from devices.broker import BrokerAdmin, DeviceCredentials
from devices.importer import ImportReport, RawRow, import_devices
from devices.keys import Principal, audit
from devices.nats_accounts import NatsAccounts
from devices.validation import DeviceSpec, DeviceStatus, device_problems
from mimamori.errors import Forbidden, NotFound, ValidationError

BrokerFactory = Callable[[], AbstractContextManager[BrokerAdmin | NatsAccounts]]

# Fields a caller may change on an existing device (id and tenant are fixed: the tenant is part of the device's
# MQTT topics and ACL, so a device "moves" only by retiring it and creating another).
UPDATABLE = ("device_type", "name", "lon", "lat", "status", "expected_interval_s", "installed_on", "metadata")


@dataclass(frozen=True, slots=True)
class Caller:
    """Who acts (for the audit log) and which tenant they are confined to (None: every tenant)."""

    actor: str
    tenant: str | None

    @classmethod
    def from_principal(cls, who: Principal) -> Caller:
        return cls(who.key_id, None if who.sees_all_tenants else who.tenant_id)

    @classmethod
    def cli(cls) -> Caller:
        return cls(f"cli:{getpass.getuser()}", None)


def _not_found(device_id: str) -> NotFound:
    # The same answer whether the device does not exist or belongs to another tenant: nothing leaks.
    return NotFound(f"device {device_id!r} not found")


def _spec_of(info: queries.DeviceInfo) -> DeviceSpec:
    return DeviceSpec(
        id=info.id,
        tenant_id=info.tenant_id,
        device_type=info.device_type,
        name=info.name,
        lon=info.lon,
        lat=info.lat,
        status=DeviceStatus(info.status),
        expected_interval_s=info.expected_interval_s,
        installed_on=info.installed_on,
        metadata=dict(info.metadata),
    )


def _check(conn: psycopg.Connection, spec: DeviceSpec) -> None:
    problems = device_problems(spec, queries.catalogue_from_db(conn))
    if problems:
        raise ValidationError("; ".join(problems))


def get_device(conn: psycopg.Connection, caller: Caller, device_id: str) -> queries.DeviceInfo:
    found = queries.get_device(conn, device_id, caller.tenant)
    if found is None:
        raise _not_found(device_id)
    return found


def list_devices(conn: psycopg.Connection, caller: Caller, f: queries.DeviceFilter) -> list[queries.DeviceInfo]:
    return queries.list_devices(conn, caller.tenant, f)


def create_device(conn: psycopg.Connection, caller: Caller, spec: DeviceSpec) -> queries.DeviceInfo:
    if caller.tenant is not None and spec.tenant_id != caller.tenant:
        raise Forbidden("a partner key may create devices only in its own tenant")
    _check(conn, spec)
    with conn.transaction():
        if spec.tenant_id not in queries.tenant_ids(conn):
            raise ValidationError(f"unknown tenant {spec.tenant_id!r}")
        if queries.device_owners(conn, [spec.id]):
            raise ValidationError(f"device id {spec.id!r} is already taken")
        queries.write_devices(conn, [spec])
        audit(conn, caller.actor, "device.create", spec.id, {"tenant": spec.tenant_id, "type": spec.device_type})
    return get_device(conn, caller, spec.id)


def update_device(
    conn: psycopg.Connection,
    caller: Caller,
    device_id: str,
    changes: dict[str, object],
    broker: BrokerFactory | None = None,
) -> queries.DeviceInfo:
    """Change some fields; retiring this way also revokes the device's broker account."""
    unknown = set(changes) - set(UPDATABLE) - {"tenant_id"}
    if unknown:
        raise ValidationError(f"cannot change {', '.join(sorted(unknown))}")
    with conn.transaction():
        current = get_device(conn, caller, device_id)
        if "tenant_id" in changes and changes["tenant_id"] != current.tenant_id:
            raise ValidationError("a device cannot move to another tenant; retire it and create a new one")
        updates = {k: v for k, v in changes.items() if k in UPDATABLE}
        if "status" in updates:
            try:
                updates["status"] = DeviceStatus(str(updates["status"]))
            except ValueError:
                raise ValidationError(f"status must be one of {', '.join(DeviceStatus)}") from None
        spec = _spec_of(current).with_changes(**updates)
        _check(conn, spec)
        changed = queries.write_devices(conn, [spec])
        if spec.status is DeviceStatus.retired and current.has_credentials:
            _revoke(conn, device_id, broker)
        if changed:
            audit(conn, caller.actor, "device.update", device_id, {"fields": sorted(updates)})
    return get_device(conn, caller, device_id)


def retire_device(
    conn: psycopg.Connection, caller: Caller, device_id: str, broker: BrokerFactory | None = None
) -> queries.DeviceInfo:
    """Mark the device retired (its readings are refused from now on) and delete its broker account at once."""
    with conn.transaction():
        current = get_device(conn, caller, device_id)
        queries.set_device_status(conn, device_id, DeviceStatus.retired, caller.tenant)
        if current.has_credentials:
            _revoke(conn, device_id, broker)
        audit(conn, caller.actor, "device.retire", device_id, {"tenant": current.tenant_id})
    return get_device(conn, caller, device_id)


def _revoke(conn: psycopg.Connection, device_id: str, broker: BrokerFactory | None) -> None:
    # Runs inside the caller's transaction: when the broker cannot be reached the whole change is rolled back,
    # so the registry never claims a device is retired while its account still works.
    if broker is None:
        raise ValidationError("the device has a broker account and no broker connection is configured to revoke it")
    with broker() as admin:
        admin.revoke_device(device_id)
    queries.forget_credentials(conn, device_id)


def provision_device(
    conn: psycopg.Connection, caller: Caller, device_id: str, broker: BrokerFactory
) -> DeviceCredentials:
    """Create the device's broker account; the returned password is shown once and stored nowhere by the hub."""
    with conn.transaction():
        current = get_device(conn, caller, device_id)
        if current.status == DeviceStatus.retired:
            raise ValidationError(f"device {device_id!r} is retired")
        if current.has_credentials:
            raise ValidationError(f"device {device_id!r} already has credentials; rotate them instead")
        with broker() as admin:
            creds = admin.provision_device(current.tenant_id, device_id)
        queries.mark_credentials(conn, device_id, creds.username)
        audit(conn, caller.actor, "device.credentials.provision", device_id, {"username": creds.username})
    return creds


def rotate_credentials(
    conn: psycopg.Connection, caller: Caller, device_id: str, broker: BrokerFactory
) -> DeviceCredentials:
    with conn.transaction():
        current = get_device(conn, caller, device_id)
        if not current.has_credentials:
            raise ValidationError(f"device {device_id!r} has no credentials; provision it first")
        with broker() as admin:
            creds = admin.rotate_password(current.tenant_id, device_id)
        queries.mark_credentials(conn, device_id, creds.username, rotated=True)
        audit(conn, caller.actor, "device.credentials.rotate", device_id, {})
    return creds


def revoke_credentials(conn: psycopg.Connection, caller: Caller, device_id: str, broker: BrokerFactory) -> None:
    with conn.transaction():
        current = get_device(conn, caller, device_id)
        if not current.has_credentials:
            raise ValidationError(f"device {device_id!r} has no credentials")
        _revoke(conn, device_id, broker)
        audit(conn, caller.actor, "device.credentials.revoke", device_id, {})


def create_tenant(conn: psycopg.Connection, caller: Caller, tenant_id: str, name: str, kind: str) -> None:
    from devices.validation import tenant_id_problem

    if caller.tenant is not None:
        raise Forbidden("only the city's administrators manage tenants")
    if problem := tenant_id_problem(tenant_id):
        raise ValidationError(problem)
    if kind not in ("operator", "partner"):
        raise ValidationError("kind must be operator or partner")
    with conn.transaction():
        queries.upsert_tenant(conn, tenant_id, name or tenant_id, kind)
        audit(conn, caller.actor, "tenant.save", tenant_id, {"name": name, "kind": kind})


def list_tenants(conn: psycopg.Connection, caller: Caller) -> list[queries.TenantInfo]:
    return queries.list_tenants(conn, caller.tenant)


def import_rows(
    conn: psycopg.Connection,
    caller: Caller,
    rows: list[RawRow],
    *,
    broker: BrokerFactory | None = None,
    default_tenant: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Bulk import; devices the file retires lose their broker accounts once the import has committed."""
    report = import_devices(
        conn, rows, actor=caller.actor, tenant_scope=caller.tenant, default_tenant=default_tenant, progress=progress
    )
    for device_id in report.retired:
        info = queries.get_device(conn, device_id, caller.tenant)
        if info is not None and info.has_credentials:
            with conn.transaction():
                _revoke(conn, device_id, broker)
                audit(conn, caller.actor, "device.credentials.revoke", device_id, {"by": "import"})
    return report
