"""A cached view of the device registry, so validation costs no query per message."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from devices import DeviceRecord, MetricSpec, all_devices, metric_specs


@dataclass
class RegistrySnapshot:
    devices: dict[str, DeviceRecord] = field(default_factory=dict)
    specs: dict[str, dict[str, MetricSpec]] = field(default_factory=dict)

    def specs_for(self, device: DeviceRecord) -> dict[str, MetricSpec]:
        return self.specs.get(device.device_type, {})


class RegistryCache:
    """Reloads the whole registry at most every ``max_age_s`` seconds.

    Retiring a device or registering a new one reaches ingest within that age; a message from a device the
    cache does not know forces an early reload (rate-limited) so a just-registered device is not refused.
    """

    def __init__(self, pool: ConnectionPool, max_age_s: float = 5.0, miss_reload_s: float = 1.0) -> None:
        self._pool = pool
        self._max_age = max_age_s
        self._miss_reload = miss_reload_s
        self._lock = threading.Lock()
        self._snapshot = RegistrySnapshot()
        self._loaded_at = float("-inf")

    def _load(self) -> None:
        with self._pool.connection() as conn:
            devices = {d.id: d for d in all_devices(conn)}
            specs = metric_specs(conn)
        self._snapshot = RegistrySnapshot(devices, specs)
        self._loaded_at = time.monotonic()

    def snapshot(self, wanted: set[str] | None = None) -> RegistrySnapshot:
        """The current registry; reloaded when stale, or when ``wanted`` names a device it lacks."""
        with self._lock:
            age = time.monotonic() - self._loaded_at
            missing = bool(wanted) and not wanted.issubset(self._snapshot.devices)  # type: ignore[union-attr]
            if age > self._max_age or (missing and age > self._miss_reload):
                try:
                    self._load()
                except (psycopg.OperationalError, PoolTimeout):
                    if self._loaded_at == float("-inf"):
                        raise  # never loaded: nothing to fall back on, the caller retries
                    # The database is away: validate against the registry we have; the write waits anyway.
                    self._loaded_at = time.monotonic() - self._max_age + self._miss_reload
            return self._snapshot

    def invalidate(self) -> None:
        with self._lock:
            self._loaded_at = float("-inf")
