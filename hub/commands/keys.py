"""`mimamori keys`: API keys for people and partner systems."""

from __future__ import annotations

import getpass
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from hub.commands import plain
from mimamori.settings import load_settings

app = typer.Typer(help="API keys (shown once, stored hashed).", no_args_is_help=True)
out = Console()


@app.command("create")
def create(
    tenant: Annotated[str, typer.Option(help="Tenant the key acts for.")],
    role: Annotated[str, typer.Option(help="admin, operator, forestry, viewer or partner.")],
    name: Annotated[
        str,
        typer.Option(
            help="The person who holds the key (required for admin, operator and forestry keys: alert history"
            " shows it), or what a viewer or partner key is for."
        ),
    ] = "",
) -> None:
    """Create a key and print its secret once."""
    from devices.keys import Role, audit, create_key, key_name
    from mimamori.db import connect
    from mimamori.errors import ValidationError

    try:
        chosen = Role(role)
    except ValueError:
        raise ValidationError(f"unknown role {role!r}; choose one of {', '.join(Role)}") from None
    name = key_name(chosen, name)
    with connect(load_settings().dsn) as conn:
        key_id, secret = create_key(conn, tenant, chosen, name)
        audit(conn, f"cli:{getpass.getuser()}", "key.create", key_id, {"tenant": tenant, "role": role})
        conn.commit()
    out.print(f"key {key_id} ({chosen} of {tenant}). Its secret, shown only now:")
    print(secret)


@app.command("list")
def list_(tenant: Annotated[str | None, typer.Option(help="Only this tenant's keys.")] = None) -> None:
    """Keys with their tenant, role and last use (never their secrets)."""
    from devices.keys import list_keys
    from mimamori.db import connect

    with connect(load_settings().dsn) as conn:
        keys = list_keys(conn, tenant)
    table = Table("id", "tenant", "role", "name", "created", "last used", "revoked")
    for k in keys:
        table.add_row(
            plain(k.id),
            plain(k.tenant_id),
            k.role,
            plain(k.name),
            f"{k.created_at:%Y-%m-%d %H:%M}",
            f"{k.last_used_at:%Y-%m-%d %H:%M}" if k.last_used_at else "-",
            f"{k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "",
        )
    out.print(table)


@app.command("revoke")
def revoke(key_id: str) -> None:
    """Revoke a key at once."""
    from devices.keys import audit, revoke_key
    from mimamori.db import connect
    from mimamori.errors import NotFound

    with connect(load_settings().dsn) as conn:
        if not revoke_key(conn, key_id):
            raise NotFound(f"no active key {key_id!r}")
        audit(conn, f"cli:{getpass.getuser()}", "key.revoke", key_id, {})
        conn.commit()
    out.print(f"key {key_id} revoked")
