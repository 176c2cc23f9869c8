"""`mimamori tenants`: the city (operator of the hub) and partner companies."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from hub.commands import plain
from mimamori.settings import load_settings

app = typer.Typer(help="Tenants: the city and partner companies.", no_args_is_help=True)
out = Console()


@app.command("add")
def add(
    tenant_id: str,
    name: Annotated[str, typer.Option(help="Display name.")] = "",
    kind: Annotated[str, typer.Option(help="operator or partner.")] = "partner",
) -> None:
    """Create or rename a tenant."""
    from devices.manage import Caller, create_tenant
    from mimamori.db import connect

    with connect(load_settings().dsn) as conn:
        create_tenant(conn, Caller.cli(), tenant_id, name, kind)
        conn.commit()
    out.print(f"tenant {plain(tenant_id)} saved")


@app.command("list")
def list_() -> None:
    """Tenants with their kind and number of devices."""
    from devices.manage import Caller, list_tenants
    from mimamori.db import connect

    with connect(load_settings().dsn) as conn:
        tenants = list_tenants(conn, Caller.cli())
    table = Table("id", "name", "kind", "devices", "since")
    for t in tenants:
        table.add_row(plain(t.id), plain(t.name), t.kind, str(t.devices), f"{t.created_at:%Y-%m-%d}")
    out.print(table)
