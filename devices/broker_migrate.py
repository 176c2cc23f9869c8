"""Bringing an installed broker's accounts in line with this version, over the control topic, idempotently:
every account bound to its client id (devices keep their passwords: nothing is re-provisioned), one account per
hub client id, and the alert publisher's role narrowed to what it publishes. ``mimamori broker migrate``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from devices import dynsec
from devices.broker import BrokerAdmin
from devices.hub_accounts import ALERTS, BIND, CREATE, DISABLE, INGEST, HubLogin, Step, plan_bindings

log = logging.getLogger(__name__)


@dataclass
class MigrationReport:
    steps: list[Step] = field(default_factory=list)
    role_changes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def changed(self) -> int:
        return sum(s.action in (BIND, CREATE, DISABLE) for s in self.steps) + len(self.role_changes)


def hub_roles(prefix: str) -> dict[str, tuple[dynsec.Acl, ...]]:
    return {dynsec.INGEST_ROLE: dynsec.ingest_acls(prefix), dynsec.ALERTS_ROLE: dynsec.alerts_acls(prefix)}


def migrate_broker(
    admin: BrokerAdmin,
    logins: Sequence[HubLogin],
    passwords: dict[str, str | None],
    *,
    prefix: str,
    admin_username: str,
    dry_run: bool = False,
) -> MigrationReport:
    """Apply (or, with ``dry_run``, only plan) what binds every account; ``passwords``: each hub kind's password
    (``INGEST``, ``ALERTS``), needed only to create a hub login that is missing."""
    report = MigrationReport()
    report.role_changes = _sync_roles(admin, hub_roles(prefix), {login.kind for login in logins}, dry_run)
    steps = plan_bindings(admin.list_clients(), logins, admin_username)
    changes: list[Step] = []
    for step in steps:
        if step.action == CREATE and not passwords.get(step.kind or ""):
            var = "MIMAMORI_MQTT_PASSWORD" if step.kind == INGEST else "MIMAMORI_ALERTS_MQTT_PASSWORD"
            report.problems.append(f"cannot create {step.username}: {var} is not set (the {step.kind} password)")
            continue
        report.steps.append(step)
        if step.action in (BIND, CREATE, DISABLE):
            changes.append(step)
    # A city's fleet is thousands of accounts: a batch of commands per control message, not a round trip each.
    # Small batches: the plugin rewrites its whole file after every change, on the broker's one thread, so a
    # batch holds up the broker's other traffic for about (batch × fleet size × 30 µs); 20 keeps that short.
    for start in range(0, 0 if dry_run else len(changes), _BATCH):
        batch = changes[start : start + _BATCH]
        admin.execute([_command(step, passwords) for step in batch])
        for step in batch:
            log.info("broker account %s", step.line())
    return report


_BATCH = 20


def _command(step: Step, passwords: dict[str, str | None]) -> dict[str, Any]:
    if step.action == BIND:
        assert step.client_id
        return dynsec.set_client_id(step.username, step.client_id)
    if step.action == CREATE:
        role = dynsec.INGEST_ROLE if step.kind == INGEST else dynsec.ALERTS_ROLE
        password = passwords[step.kind or ""] or ""
        text = "Mimamori ingestor" if step.kind == INGEST else "Mimamori alert publisher"
        return dynsec.create_client(step.username, password, [role], text, client_id=step.client_id)
    return dynsec.disable_client(step.username)


def _sync_roles(
    admin: BrokerAdmin, wanted: dict[str, tuple[dynsec.Acl, ...]], kinds: set[str], dry_run: bool
) -> list[str]:
    """Each hub role holds exactly its ACLs of this version (created when an older broker lacks it)."""
    changes: list[str] = []
    for kind, role in ((INGEST, dynsec.INGEST_ROLE), (ALERTS, dynsec.ALERTS_ROLE)):
        if kind not in kinds:
            continue
        answer = admin.execute([{"command": "getRole", "rolename": role}], tolerate=("not found",))[0]
        if "error" in answer:
            changes.append(f"create role {role}")
            if not dry_run:
                admin.execute([dynsec.create_role(role, wanted[role])])
            continue
        have = {_key(a): a for a in answer["data"]["role"].get("acls", [])}
        want = {_key(a.as_json()): a.as_json() for a in wanted[role]}
        removed = [acl for key, acl in have.items() if key not in want]
        added = [acl for key, acl in want.items() if key not in have]
        commands = [
            {"command": "removeRoleACL", "rolename": role, "acltype": acl["acltype"], "topic": acl["topic"]}
            for acl in removed
        ] + [{"command": "addRoleACL", "rolename": role, **acl} for acl in added]
        for verb, acls in (("remove", removed), ("add", added)):
            for acl in acls:
                rule = "allow" if acl.get("allow") else "deny"
                changes.append(f"{role}: {verb} {acl['acltype']} {acl['topic']} ({rule})")
        # Removals first: a changed priority or allow of the same topic is a removal and an addition.
        if commands and not dry_run:
            admin.execute(commands)
    return changes


def _key(acl: dict[str, Any]) -> tuple[str, str, bool, int]:
    return (acl["acltype"], acl["topic"], bool(acl.get("allow", False)), int(acl.get("priority", 0)))
