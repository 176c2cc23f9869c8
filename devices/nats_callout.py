"""NATS auth callout for devices: client-id binding on the NATS path (MIMAMORI_NATS_AUTH=callout).

An accounts file cannot tie a user to an MQTT client id; NATS's auth callout can. With it, every node asks this
service (``$SYS.REQ.USER.AUTH``) before it accepts a connection of anyone but the hub's own users (the ingestor,
the system user, this service; the callout's ``auth_users``, which the accounts file still authenticates). The
request carries the user name, password and, for MQTT, the client id (``client_info.mqtt_id``); the service
accepts a device only with its password and only under its own device id as client id, and answers with a user
JWT holding the same subject permissions as the accounts file (devices/nats_auth.py). The users come from the
same store the hub provisions (devices/nats_accounts.py), reread when it changes.

Several instances may run (a queue group): a node waits for any one of them. Pure functions first (claims and
their signing), then the service.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import threading
from pathlib import Path
from typing import Any

import bcrypt
import nats
import nats.errors
import nkeys

from devices import nats_auth
from devices.nats_accounts import CALLOUT_USER, StoredUser, read_accounts

log = logging.getLogger(__name__)

AUTH_SUBJECT = "$SYS.REQ.USER.AUTH"
QUEUE = "mimamori-callout"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_issuer_seed(raw: bytes) -> bytes:
    """An account nkey seed (``SA…``) from 32 random bytes: it signs the service's answers."""
    return nkeys.encode_seed(raw, nkeys.PREFIX_BYTE_ACCOUNT)


def issuer_public_key(seed: bytes) -> str:
    """What each node's ``auth_callout { issuer: … }`` names."""
    return nkeys.from_seed(seed).public_key.decode()


def encode_jwt(claims: dict[str, Any], seed: bytes, now: int) -> str:
    """A NATS JWT (``ed25519-nkey``) of ``claims``, issued and signed by ``seed``'s account key at ``now``."""
    kp = nkeys.from_seed(seed)
    body = dict(claims, iss=kp.public_key.decode(), iat=now)
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).digest()
    body["jti"] = base64.b32encode(digest).decode().rstrip("=")
    header = _b64(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
    payload = _b64(json.dumps(body).encode())
    return f"{header}.{payload}.{_b64(kp.sign(f'{header}.{payload}'.encode()))}"


def decode_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT (the node's request); its signature is the node's, over a subject only nodes publish."""
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("not a JWT")
    claims = json.loads(_unb64(parts[1]))
    if not isinstance(claims, dict):
        raise ValueError("JWT claims are not an object")
    return claims


def decide(request: dict[str, Any], users: dict[str, StoredUser], password_ok: bool) -> tuple[StoredUser | None, str]:
    """Whether to admit the connection a node asks about: the user, or None with the reason. ``password_ok`` is the
    password's check against the user's hash, done by the caller (it is the slow part)."""
    info = request.get("client_info", {})
    options = request.get("connect_opts", {})
    username = options.get("user")
    user = users.get(username) if isinstance(username, str) else None
    if user is None or not user.enabled:
        return None, "unknown or disabled user"
    if not password_ok:
        return None, "bad password"
    mqtt_id = info.get("mqtt_id")
    if user.permissions.mqtt_only and (info.get("type") != "mqtt" or mqtt_id != user.username):
        # The binding Mosquitto's dynamic security gives a device account: its own device id as client id only.
        return None, f"client id {str(mqtt_id)[:128]!r} is not the account's own"
    return user, "ok"


def user_claims(user: StoredUser, user_nkey: str, account: str = nats_auth.ACCOUNT) -> dict[str, Any]:
    perms = user.permissions.as_conf()
    nats_claims: dict[str, Any] = {
        "pub": perms["permissions"]["publish"],  # type: ignore[index]
        "sub": perms["permissions"]["subscribe"],  # type: ignore[index]
        "type": "user",
        "version": 2,
        "subs": -1,
        "data": -1,
        "payload": -1,
    }
    if user.permissions.mqtt_only:
        nats_claims["allowed_connection_types"] = ["MQTT"]
    return {"sub": user_nkey, "aud": account, "name": user.username, "nats": nats_claims}


def response_claims(request: dict[str, Any], user_jwt: str | None, error: str | None) -> dict[str, Any]:
    nats_claims: dict[str, Any] = {"type": "authorization_response", "version": 2}
    if user_jwt is not None:
        nats_claims["jwt"] = user_jwt
    else:
        nats_claims["error"] = error or "not authorised"
    return {"sub": request["user_nkey"], "aud": request["server_id"]["id"], "nats": nats_claims}


class CalloutService:
    """Answers the nodes' authorisation requests until ``stop`` is set; run it in a thread of its own."""

    def __init__(self, servers: list[str], password: str, seed: bytes, accounts_file: Path) -> None:
        self._servers = servers
        self._password = password
        self._seed = seed
        self._file = accounts_file
        self._users: dict[str, StoredUser] = {}
        self._mtime = -1.0
        self.ready = threading.Event()
        self.refused = 0
        self.admitted = 0

    def run(self, stop: threading.Event) -> None:
        asyncio.run(self._run(stop))

    def _current_users(self) -> dict[str, StoredUser]:
        source = self._file.with_suffix(".json")
        mtime = source.stat().st_mtime
        if mtime != self._mtime:
            self._users = {u.username: u for u in read_accounts(self._file)[0]}
            self._mtime = mtime
        return self._users

    async def _run(self, stop: threading.Event) -> None:
        nc = await nats.connect(
            servers=self._servers,
            user=CALLOUT_USER,
            password=self._password,
            max_reconnect_attempts=-1,
            reconnect_time_wait=1.0,
        )
        await nc.subscribe(AUTH_SUBJECT, queue=QUEUE, cb=self._answer)
        await nc.flush()  # subscribed at the nodes before anyone is told the service is up
        self.ready.set()
        try:
            while not stop.is_set():
                await asyncio.sleep(0.1)
        finally:
            with contextlib.suppress(nats.errors.Error):
                await nc.close()

    async def _answer(self, msg: Any) -> None:
        import time

        try:
            request = decode_claims(msg.data.decode())["nats"]
            users = self._current_users()
            options = request.get("connect_opts", {})
            user = users.get(options.get("user", ""))
            password = options.get("pass") or ""
            ok = user is not None and await asyncio.to_thread(
                bcrypt.checkpw, password.encode(), user.password_hash.encode()
            )
            admitted, reason = decide(request, users, bool(ok))
            now = int(time.time())
            user_jwt = None
            if admitted is not None:
                user_jwt = encode_jwt(user_claims(admitted, request["user_nkey"]), self._seed, now)
                self.admitted += 1
            else:
                self.refused += 1
                log.info("NATS connection refused for %r: %s", str(options.get("user"))[:128], reason)
            await msg.respond(encode_jwt(response_claims(request, user_jwt, reason), self._seed, now).encode())
        except (
            ValueError,
            KeyError,
            TypeError,
            OSError,
        ) as exc:  # a request we cannot read: no answer, the node refuses
            log.warning("unreadable NATS authorisation request: %s", exc)
