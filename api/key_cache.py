"""Keys this API process has checked, trusted for a few seconds, so a request costs no look-up of its key.

Only keys that checked out are kept, by the hash of the secret (never the secret). A key revoked through this
process is dropped at once; one revoked elsewhere (another API process, the CLI) is refused within the cache's
age, ``MIMAMORI_API_KEY_CACHE_S`` (0 turns the cache off).
"""

from __future__ import annotations

import hashlib
import threading
import time

from devices.keys import Principal

_MAX_ENTRIES = 10_000  # far above any city's key count; bounds memory under a flood of distinct valid keys


class KeyCache:
    def __init__(self, max_age_s: float) -> None:
        self._max_age = max_age_s
        self._lock = threading.Lock()
        self._entries: dict[bytes, tuple[float, Principal]] = {}

    @staticmethod
    def _digest(secret: str) -> bytes:
        return hashlib.sha256(secret.encode()).digest()

    def get(self, secret: str) -> Principal | None:
        if self._max_age <= 0:
            return None
        entry = self._entries.get(self._digest(secret))
        if entry is None or time.monotonic() - entry[0] > self._max_age:
            return None
        return entry[1]

    def put(self, secret: str, who: Principal) -> None:
        if self._max_age <= 0:
            return
        with self._lock:
            if len(self._entries) >= _MAX_ENTRIES:
                self._entries.clear()
            self._entries[self._digest(secret)] = (time.monotonic(), who)

    def forget_key(self, key_id: str) -> None:
        """Drop every entry of ``key_id`` (it was revoked)."""
        with self._lock:
            self._entries = {d: e for d, e in self._entries.items() if e[1].key_id != key_id}
