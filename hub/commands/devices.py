"""`mimamori devices`: the device registry and the devices' broker credentials."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import psycopg
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from hub.commands import plain
from mimamori.errors import MimamoriError
from mimamori.settings import Settings, load_settings

if TYPE_CHECKING:
    from devices.manage import BrokerFactory


class _SomeRowsBad(MimamoriError):
    exit_code = 4


app = typer.Typer(
    help="The device registry: list, add, update, retire, import; broker credentials.", no_args_is_help=True
)
out = Console()


@contextmanager
def _conn() -> Iterator[tuple[Settings, psycopg.Connection]]:
    from mimamori.db import connect

    settings = load_settings()
    with connect(settings.dsn) as conn:
        yield settings, conn


def _broker(settings: Settings) -> BrokerFactory:
    from devices import broker_admin

    return lambda: broker_admin(settings)


def _metadata(pairs: list[str] | None, as_json: str | None) -> dict[str, Any] | None:
    if pairs is None and as_json is None:
        return None
    from mimamori.errors import ValidationError

    meta: dict[str, Any] = {}
    if as_json:
        try:
            meta.update(json.loads(as_json))
        except (ValueError, TypeError):
            raise ValidationError("--metadata-json must be a JSON object") from None
    for pair in pairs or []:
        key, eq, value = pair.partition("=")
        if not eq:
            raise ValidationError(f"--meta takes KEY=VALUE, got {pair!r}")
        try:
            meta[key] = json.loads(value)  # numbers and booleans as such
        except ValueError:
            meta[key] = value
    return meta


@app.command("list")
def list_(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's devices.")] = None,
    device_type: Annotated[str | None, typer.Option("--type", help="Only this device type.")] = None,
    status: Annotated[str | None, typer.Option(help="active, maintenance or retired.")] = None,
    search: Annotated[str | None, typer.Option(help="Text in the id or name.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 200,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table.")] = False,
) -> None:
    """Devices with their type, status, place and whether they have broker credentials."""
    from devices.manage import Caller, list_devices
    from devices.queries import DeviceFilter

    with _conn() as (_, conn):
        found = list_devices(conn, Caller.cli(), DeviceFilter(tenant, device_type, status, None, search, limit, 0))
    if as_json:
        for d in found:
            print(
                json.dumps(
                    {
                        **d.registry_row(),
                        "installed_on": str(d.installed_on) if d.installed_on else None,
                        "created_at": d.created_at.isoformat(),
                        "updated_at": d.updated_at.isoformat(),
                    },
                    ensure_ascii=False,
                )
            )
        return
    table = Table("id", "tenant", "type", "name", "status", "lon", "lat", "every", "credentials")
    for d in found:
        table.add_row(
            plain(d.id),
            plain(d.tenant_id),
            plain(d.device_type),
            plain(d.name),
            d.status,
            f"{d.lon:.5f}" if d.lon is not None else "",
            f"{d.lat:.5f}" if d.lat is not None else "",
            f"{d.expected_interval_s}s",
            "yes" if d.has_credentials else "",
        )
    out.print(table)
    out.print(f"{len(found)} device(s)")


@app.command("add")
def add(
    device_id: str,
    tenant: Annotated[str, typer.Option(help="Owning tenant id.")],
    device_type: Annotated[str, typer.Option("--type", help="Device type id from the catalogue.")],
    name: Annotated[str, typer.Option()] = "",
    lon: Annotated[float | None, typer.Option()] = None,
    lat: Annotated[float | None, typer.Option()] = None,
    interval_s: Annotated[int, typer.Option(help="Expected reporting interval in seconds.")] = 600,
    installed_on: Annotated[str | None, typer.Option(help="Installation date, YYYY-MM-DD.")] = None,
    meta: Annotated[list[str] | None, typer.Option(help="Site metadata KEY=VALUE (repeatable).")] = None,
    metadata_json: Annotated[str | None, typer.Option(help="Site metadata as a JSON object.")] = None,
) -> None:
    """Register a new device (validated against the catalogue, site metadata included)."""
    from devices.manage import Caller, create_device
    from devices.validation import DeviceSpec

    spec = DeviceSpec(
        device_id,
        tenant,
        device_type,
        name,
        lon,
        lat,
        expected_interval_s=interval_s,
        installed_on=date.fromisoformat(installed_on) if installed_on else None,
        metadata=_metadata(meta, metadata_json) or {},
    )
    with _conn() as (_, conn):
        create_device(conn, Caller.cli(), spec)
        conn.commit()
    out.print(f"device {plain(device_id)} added")


@app.command("update")
def update(
    device_id: str,
    name: Annotated[str | None, typer.Option()] = None,
    device_type: Annotated[str | None, typer.Option("--type")] = None,
    lon: Annotated[float | None, typer.Option()] = None,
    lat: Annotated[float | None, typer.Option()] = None,
    status: Annotated[str | None, typer.Option(help="active, maintenance or retired.")] = None,
    interval_s: Annotated[int | None, typer.Option()] = None,
    installed_on: Annotated[str | None, typer.Option()] = None,
    meta: Annotated[list[str] | None, typer.Option(help="Replace site metadata: KEY=VALUE (repeatable).")] = None,
    metadata_json: Annotated[str | None, typer.Option(help="Replace site metadata with this JSON object.")] = None,
) -> None:
    """Change some of a device's fields (id and tenant stay)."""
    from devices.manage import Caller, update_device

    changes: dict[str, object] = {
        k: v
        for k, v in {
            "name": name,
            "device_type": device_type,
            "lon": lon,
            "lat": lat,
            "status": status,
            "expected_interval_s": interval_s,
            "installed_on": date.fromisoformat(installed_on) if installed_on else None,
        }.items()
        if v is not None
    }
    metadata = _metadata(meta, metadata_json)
    if metadata is not None:
        changes["metadata"] = metadata
    with _conn() as (settings, conn):
        update_device(conn, Caller.cli(), device_id, changes, _broker(settings))
        conn.commit()
    out.print(f"device {plain(device_id)} updated ({', '.join(sorted(changes)) or 'nothing to change'})")


@app.command("retire")
def retire(device_id: str) -> None:
    """Retire a device: its readings are refused from now on and its broker account is deleted at once."""
    from devices.manage import Caller, retire_device

    with _conn() as (settings, conn):
        retire_device(conn, Caller.cli(), device_id, _broker(settings))
        conn.commit()
    out.print(f"device {plain(device_id)} retired")


@app.command("import")
def import_(
    path: Path,
    tenant: Annotated[str | None, typer.Option(help="Tenant for rows that do not name one.")] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="csv or geojson (default: by file name).")] = None,
    report: Annotated[Path | None, typer.Option(help="Write the bad rows (row, id, reason) to this CSV.")] = None,
) -> None:
    """Import devices from CSV or GeoJSON. Good rows are created or updated (equal rows left alone), every bad
    row is reported with its reason. Exit code 4 when some rows were bad."""
    from devices.importer import bad_rows_csv, format_of, read_rows
    from devices.manage import Caller, import_rows
    from mimamori.errors import ValidationError

    try:
        rows = read_rows(path.read_text("utf-8"), fmt or format_of(path.name))
    except (OSError, ValueError) as exc:
        raise ValidationError(f"cannot read {path}: {exc}") from None
    with _conn() as (settings, conn):
        progress = Progress(
            TextColumn("importing {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=out,
            transient=True,
        )
        with progress:
            task = progress.add_task(path.name, total=len(rows))
            result = import_rows(
                conn,
                Caller.cli(),
                rows,
                broker=_broker(settings),
                default_tenant=tenant,
                progress=lambda n: progress.advance(task, n),
            )
    out.print(
        f"{plain(path.name)}: {result.created} created, {result.updated} updated, {result.unchanged} unchanged, "
        f"{len(result.bad)} bad row(s)"
    )
    if result.bad:
        table = Table("row", "id", "reason", title="rows not imported")
        for bad in result.bad[:50]:
            table.add_row(str(bad.row), plain(bad.device_id or ""), plain(bad.reason))
        out.print(table)
        if len(result.bad) > 50:
            out.print(f"… and {len(result.bad) - 50} more" + ("" if report else " (use --report FILE for all)"))
        if report:
            report.write_text(bad_rows_csv(result.bad), "utf-8")
            out.print(f"all bad rows written to {plain(report)}")
        raise _SomeRowsBad(f"{len(result.bad)} row(s) of {path.name} were not imported")


def _write_secrets(path: Path, rows: list[list[str]]) -> None:
    import csv
    import io

    buf = io.StringIO()
    csv.writer(buf).writerows([["device_id", "username", "password", "telemetry_topic", "status_topic"], *rows])
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # never readable by others, not even briefly
    with os.fdopen(fd, "w") as f:
        f.write(buf.getvalue())
    os.chmod(path, 0o600)


def _credentials_command(device_ids: list[str], output: Path | None, rotate: bool) -> None:
    from devices.manage import Caller, provision_device, rotate_credentials

    action = rotate_credentials if rotate else provision_device
    rows: list[list[str]] = []
    with _conn() as (settings, conn), Progress(console=out, transient=True) as progress:
        task = progress.add_task("rotating" if rotate else "provisioning", total=len(device_ids))
        for device_id in device_ids:
            creds = action(conn, Caller.cli(), device_id, _broker(settings))
            conn.commit()
            rows.append([creds.device_id, creds.username, creds.password, creds.telemetry_topic, creds.status_topic])
            progress.advance(task)
    if output:
        _write_secrets(output, rows)
        out.print(
            f"{len(rows)} credential(s) written to {plain(output)} (mode 0600); they are not stored anywhere else"
        )
        return
    out.print("credentials, shown only now (the hub does not keep the passwords):")
    for device_id, username, password, telemetry, _status in rows:
        print(f"{device_id}\tusername={username}\tpassword={password}\ttopic={telemetry}")


@app.command("provision")
def provision(
    device_ids: list[str],
    output: Annotated[Path | None, typer.Option(help="Write the credentials to this CSV (mode 0600).")] = None,
) -> None:
    """Create broker accounts for devices. Each password is shown (or written to --output) once."""
    _credentials_command(device_ids, output, rotate=False)


@app.command("rotate")
def rotate(
    device_ids: list[str],
    output: Annotated[Path | None, typer.Option(help="Write the credentials to this CSV (mode 0600).")] = None,
) -> None:
    """New passwords for devices; the old ones stop working at once."""
    _credentials_command(device_ids, output, rotate=True)


@app.command("revoke")
def revoke(device_id: str) -> None:
    """Delete a device's broker account now (the device stays registered)."""
    from devices.manage import Caller, revoke_credentials

    with _conn() as (settings, conn):
        revoke_credentials(conn, Caller.cli(), device_id, _broker(settings))
        conn.commit()
    out.print(f"credentials of {plain(device_id)} revoked")


@app.command("types")
def types() -> None:
    """The device-type catalogue: metrics, units, ranges and site metadata."""
    from devices.queries import catalogue_from_db

    with _conn() as (_, conn):
        catalogue = catalogue_from_db(conn)
    table = Table("type", "name", "metrics", "site metadata")
    for t in catalogue.values():
        # Escaped: Rich would read "[m]", "[mm]" or "[dBm]" as markup tags and drop them.
        table.add_row(
            plain(t.id),
            plain(f"{t.name} {t.name_ja or ''}"),
            plain(", ".join(f"{m.metric} [{m.unit}]" for m in t.metrics.values())),
            plain(", ".join(f"{k}: {v}" for k, v in t.site_schema.items())),
        )
    out.print(table)
