"""Which broker account each client id belongs to, pure: the hub's own logins and the plan that binds an
installation's accounts to their client ids (``mimamori broker migrate``).

The dynamic-security plugin binds an account to one client id, so a hub kind (ingest, alerts) with several
processes has one account per client id, each named after its id and sharing the kind's password (they are one
principal: every process of the kind reads the same ``MIMAMORI_MQTT_PASSWORD``). The kind's original account
(``mimamori-ingest``, ``mimamori-alerts``) is bound to the first id, so a configuration that names it keeps
working for that process.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from devices import dynsec

INGEST = "ingest"
ALERTS = "alerts"
ROLES = {INGEST: dynsec.INGEST_ROLE, ALERTS: dynsec.ALERTS_ROLE}


@dataclass(frozen=True, slots=True)
class HubLogin:
    """One broker account a hub process logs in with, and the one client id it may use."""

    username: str
    client_id: str
    kind: str  # INGEST or ALERTS

    @property
    def role(self) -> str:
        return ROLES[self.kind]


def worker_client_id(client_id: str, n: int) -> str:
    """Client id of worker ``n`` of ``mimamori ingest --workers N`` (worker 1 is the process itself)."""
    return client_id if n == 1 else f"{client_id}-{n}"


def ingest_client_ids(client_id: str, workers: int = 1, extra: Iterable[str] = ()) -> list[str]:
    """The ingestors' client ids: ``client_id``'s workers 1…``workers`` and any further ids (other hosts' units)."""
    return _unique([worker_client_id(client_id, n) for n in range(1, workers + 1)] + list(extra))


def hub_logins(username: str, client_ids: Sequence[str], kind: str) -> list[HubLogin]:
    """The accounts of one kind: ``username`` bound to the first id, and an account named after every id."""
    if not client_ids:
        return []
    logins = [HubLogin(username, client_ids[0], kind)]
    logins += [HubLogin(cid, cid, kind) for cid in client_ids if cid != username]
    return logins


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


# -- binding an installation ------------------------------------------------------------------------------

BIND = "bind"  # modifyClient: set the account's client id
CREATE = "create"  # createClient: a hub login that does not exist yet (the kind's password)
DISABLE = "disable"  # a device account whose id is one of the hub's client ids: it could take the hub's place
KEEP = "keep"  # already bound as it should be (or the admin account, left unbound on purpose)


@dataclass(frozen=True, slots=True)
class Step:
    action: str
    username: str
    client_id: str | None
    why: str
    kind: str | None = None  # for CREATE: the hub kind whose role and password the account gets

    def line(self) -> str:
        target = f" → {self.client_id}" if self.client_id else ""
        return f"{self.action:7} {self.username}{target}  ({self.why})"


def plan_bindings(clients: Sequence[dict[str, Any]], logins: Sequence[HubLogin], admin_username: str) -> list[Step]:
    """What binds every account of ``clients`` (the plugin's ``listClients`` answer) to its client id.

    Hub logins get their configured id (created when missing); device accounts (role ``device:<id>``) their
    device id, which is their username; any other account (gateways, publishers) its username, the client id
    ``mimamori broker add-publisher`` tells it to use. The admin account stays unbound: every process that
    administers the broker connects under a fresh id, and the account may rewrite any binding anyway.
    """
    by_name = {c["username"]: c for c in clients}
    hub_ids = {login.client_id for login in logins}
    steps: list[Step] = []
    for login in logins:
        current = by_name.get(login.username)
        if current is not None and _is_device(current):
            continue  # a device holding a hub login's name: disabled below, never given a hub client id
        if current is None:
            steps.append(Step(CREATE, login.username, login.client_id, f"{login.kind} process", login.kind))
        else:
            steps.append(_bind(login.username, current.get("clientid"), login.client_id, f"{login.kind} process"))
    planned = {login.username for login in logins}
    for client in clients:
        name = client["username"]
        if name in planned and not _is_device(client):
            continue
        if name == admin_username:
            steps.append(Step(KEEP, name, None, "hub admin: unbound, connects under a fresh id each time"))
            continue
        is_device = _is_device(client)
        if is_device and (name in hub_ids or name in planned or name.startswith(dynsec.HUB_CLIENT_ID_PREFIX)):
            done = bool(client.get("disabled"))
            why = "device id is reserved for the hub's own client ids" + (": already disabled" if done else "")
            steps.append(Step(KEEP if done else DISABLE, name, None, why))
            continue
        steps.append(_bind(name, client.get("clientid"), name, "device" if is_device else _what(client)))
    return steps


def _what(client: dict[str, Any]) -> str:
    roles = {r.get("rolename") for r in client.get("roles", [])}
    for kind, role in ROLES.items():
        if role in roles:
            return f"{kind} process"
    return "publisher"


def _is_device(client: dict[str, Any]) -> bool:
    return any(r.get("rolename", "").startswith(dynsec.DEVICE_ROLE_PREFIX) for r in client.get("roles", []))


def _bind(username: str, current: str | None, wanted: str, what: str) -> Step:
    if current == wanted:
        return Step(KEEP, username, wanted, f"{what}: already bound")
    was = f"was bound to {current}" if current else "was unbound"
    return Step(BIND, username, wanted, f"{what}: {was}")
