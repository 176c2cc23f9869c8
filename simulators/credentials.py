"""How each simulated device logs in to the broker, as a real device would: its own account, or a shared one.

Sources, in order: a mapping handed in by the caller (e.g. passwords just provisioned through
``devices.broker``), a credentials file, a shared account (``default``; a load account or the test publisher),
or none (anonymous, for a broker that allows it). Passwords are never logged or shown in a repr.

A credentials file is JSON or YAML, either ``{"devices": {"<id>": {"username": .., "password": ..}},
"default": {"username": .., "password": ..}}`` or a list of ``{"device_id", "username", "password"}`` records.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from simulators.errors import FleetError


@dataclass(frozen=True, slots=True)
class Login:
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        return f"Login(username={self.username!r}, password={'***' if self.password else None})"


@dataclass(frozen=True, slots=True)
class Credentials:
    devices: Mapping[str, Login] = field(default_factory=dict)
    default: Login | None = None

    def for_device(self, device_id: str) -> Login:
        return self.devices.get(device_id) or self.default or Login()

    def merged(self, other: Credentials) -> Credentials:
        """These credentials, with ``other``'s taking precedence."""
        return Credentials({**self.devices, **other.devices}, other.default or self.default)


def _login(doc: Any, where: str) -> Login:
    if not isinstance(doc, dict) or not isinstance(doc.get("username"), str):
        raise FleetError(f"{where}: expected an object with a username (and password)")
    password = doc.get("password")
    return Login(doc["username"], None if password is None else str(password))


def load_credentials(path: Path) -> Credentials:
    try:
        text = path.read_text("utf-8")
        doc = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except OSError as exc:
        raise FleetError(f"cannot read credentials file {path}: {exc.strerror}") from None
    except (ValueError, yaml.YAMLError) as exc:
        raise FleetError(f"credentials file {path} is not valid JSON/YAML: {str(exc)[:120]}") from None
    if isinstance(doc, list):
        records = {}
        for i, rec in enumerate(doc):
            if not isinstance(rec, dict) or "device_id" not in rec:
                raise FleetError(f"credentials file {path}: record {i} has no device_id")
            records[str(rec["device_id"])] = _login(rec, f"{path} record {i}")
        return Credentials(records)
    if not isinstance(doc, dict):
        raise FleetError(f"credentials file {path}: expected a mapping or a list of records")
    devices = {str(k): _login(v, f"{path} device {k}") for k, v in (doc.get("devices") or {}).items()}
    default = _login(doc["default"], f"{path} default") if doc.get("default") else None
    return Credentials(devices, default)
