"""The alert engine: committed readings in, alert transitions stored. Runs where readings are committed.

One thread owns all evaluation state. Readings arrive through ``on_readings`` (subscribed to the ingestor's
``CommittedReadings``, or fed by ``alerts.feed`` in a separate process) into a bounded queue, so ingest never
waits for alerts; if the queue ever overflows, the engine rebuilds its state from the database instead of
dropping readings silently. Every ``alerts_tick_s`` it checks silence, and reloads rules and devices when they
changed (rule files need no restart). On start, state is rebuilt from the database: the window readings and the
levels of active alerts, so a restart neither misses nor repeats an alert.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from alerts import store
from alerts.binding import Binding, bind
from alerts.evaluate import Observation, SubjectState, Transition, evaluate, evaluate_silence, rebuild
from alerts.lifecycle import StaleTransition, apply_transition
from alerts.rulefiles import RuleFileError, load_rule_dir, parse_rule, rules_directory, rules_fingerprint
from alerts.ruleset import AnyRule, SilenceRule, lookback
from devices.queries import active_devices
from devices.records import DeviceRecord
from devices.silence import LEVEL_METRIC, SilencePolicy, reporting_interval
from mimamori import metrics
from mimamori.committed import CommittedReading
from mimamori.settings import Settings

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class EngineStats:
    batches: int = 0
    readings: int = 0
    transitions: int = 0
    rebuilds: int = 0
    overflows: int = 0
    errors: int = 0
    last_error: str | None = None
    bindings: int = 0
    rules: int = 0

    def snapshot(self) -> dict[str, object]:
        return dict(self.__dict__)


@dataclass
class _Index:
    bindings: dict[tuple[str, str], Binding] = field(default_factory=dict)
    by_device: dict[str, list[Binding]] = field(default_factory=lambda: defaultdict(list))
    silence: list[Binding] = field(default_factory=list)


def load_rules(settings: Settings, conn: psycopg.Connection) -> list[AnyRule]:
    """File rules, overridden (same id) or extended by rules saved through the API."""
    rules = {r.id: r for r in load_rule_dir(rules_directory(settings))}
    for rule_id, body, _at, _by in store.api_rules(conn):
        try:
            rules[rule_id] = parse_rule(body)
        except RuleFileError as exc:  # saved bodies were validated; a model change could still break one
            log.error("stored rule %s no longer valid, skipped: %s", rule_id, exc)
    return list(rules.values())


class AlertEngine:
    def __init__(self, settings: Settings, pool: ConnectionPool, *, clock: Clock = _utcnow) -> None:
        self.settings = settings
        self.stats = EngineStats()
        self._pool = pool
        self._clock = clock
        self._queue: queue.Queue[list[Observation]] = queue.Queue(maxsize=settings.alerts_queue_max)
        self._resync = threading.Event()
        self._index = _Index()
        self._states: dict[tuple[str, str], SubjectState] = {}
        self._version: object = None
        self._devices: dict[str, DeviceRecord] = {}
        self.ready = threading.Event()  # state rebuilt, evaluating

    # -- input ------------------------------------------------------------------------------------

    def on_readings(self, readings: Iterable[CommittedReading]) -> None:
        """Committed readings, as ingest hands them on (``mimamori.committed``). Never blocks the caller."""
        batch = [Observation(r.device_id, r.metric, r.time, r.value) for r in readings]
        if not batch:
            return
        try:
            self._queue.put_nowait(batch)
        except queue.Full:
            self.stats.overflows += 1
            if not self._resync.is_set():
                log.warning("alert queue full: state will be rebuilt from the database")
            self._resync.set()

    def request_resync(self) -> None:
        self._resync.set()

    @property
    def resync_pending(self) -> bool:
        """A rebuild from the database is due at the loop's next turn."""
        return self._resync.is_set()

    # -- the loop ---------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        tick = self.settings.alerts_tick_s
        next_tick = 0.0
        delay = 0.5
        needs_rebuild = True
        while not stop.is_set():
            try:
                if needs_rebuild or self._resync.is_set():
                    self._resync.clear()
                    self._drain()  # the rebuild reads everything these hold from the database
                    self.reload(force=True)
                    needs_rebuild = False
                    self.ready.set()
                batch = self._take(min(0.5, max(0.0, next_tick - time.monotonic())))
                if batch:
                    self.evaluate_batch(batch)
                if time.monotonic() >= next_tick:
                    self.reload()
                    self.check_silence()
                    next_tick = time.monotonic() + tick
                delay = 0.5
            except (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout) as exc:
                self.stats.errors += 1
                self.stats.last_error = str(exc).strip()[:200]
                log.warning("alert engine: database unavailable, rebuilding when it is back: %s", self.stats.last_error)
                needs_rebuild = True
                stop.wait(delay)
                delay = min(delay * 2, 10.0)

    def _take(self, timeout: float) -> list[Observation]:
        try:
            batch = self._queue.get(timeout=timeout)
        except queue.Empty:
            return []
        # whatever else is waiting joins this batch: one transaction for many readings under load
        while len(batch) < 50_000:
            try:
                batch.extend(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _drain(self) -> None:
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return

    # -- rules, devices, state --------------------------------------------------------------------

    def reload(self, *, force: bool = False) -> None:
        """Reload rules and devices when they changed (or when forced), rebuilding the state of what changed."""
        with self._pool.connection() as conn:
            directory = rules_directory(self.settings)
            try:
                fingerprint = rules_fingerprint(directory)
            except OSError:
                fingerprint = ()
            devices = active_devices(conn)
            version = (fingerprint, store.api_rules_version(conn), sorted((d.id, repr(d)) for d in devices))
            if not force and version == self._version:
                return
            try:
                rules = load_rules(self.settings, conn)
            except RuleFileError as exc:
                if self._version is not None and not force:
                    log.error("rule files have problems, keeping the rules in force: %s", exc)
                    self._version = version
                    return
                raise
            bindings = bind(rules, devices)
            self._devices = {d.id: d for d in devices}
            self._install(conn, bindings, rebuild_all=force)
            self._version = version
            self.stats.rules = len(rules)
            self.stats.bindings = len(bindings)
            log.info("alert rules in force: %d rules on %d subjects", len(rules), len(bindings))

    def _install(self, conn: psycopg.Connection, bindings: list[Binding], *, rebuild_all: bool) -> None:
        index = _Index()
        for b in bindings:
            index.bindings[b.key] = b
            if isinstance(b.rule, SilenceRule):
                index.silence.append(b)
            else:
                for device in b.devices:
                    index.by_device[device].append(b)
        old = self._index.bindings
        changed = [b for b in bindings if rebuild_all or old.get(b.key) != b]
        states = {k: s for k, s in self._states.items() if k in index.bindings and not rebuild_all}
        levels = store.active_levels(conn)
        transitions: list[tuple[Binding, Transition]] = []
        for b in changed:
            if isinstance(b.rule, SilenceRule):
                states[b.key] = SubjectState(level=levels.get(b.key, 0))
                continue
            history = store.window_readings(conn, list(b.devices), sorted(b.rule.metrics), lookback(b.rule))
            result = rebuild(b.rule, b.steps, levels.get(b.key, 0), history)
            states[b.key] = result.state
            transitions += [(b, t) for t in result.transitions]
        self._index = index
        self._states = states
        self.stats.rebuilds += 1
        if transitions:
            log.info("rebuild found %d alert change(s) due while not evaluating", len(transitions))
            self._store(transitions)

    # -- evaluation -------------------------------------------------------------------------------

    def evaluate_batch(self, batch: list[Observation]) -> int:
        """Judge one batch of committed readings; returns how many alert changes it made."""
        with metrics.ALERT_EVALUATION_SECONDS.time():
            changes = self._evaluate_batch(batch)
        metrics.ALERT_EVALUATIONS.inc()
        metrics.ALERT_READINGS.inc(len(batch))
        return changes

    def _evaluate_batch(self, batch: list[Observation]) -> int:
        by_binding: dict[tuple[str, str], list[Observation]] = defaultdict(list)
        for o in batch:
            for b in self._index.by_device.get(o.device_id, ()):
                if o.metric in b.rule.metrics:
                    by_binding[b.key].append(o)
        transitions: list[tuple[Binding, Transition]] = []
        for key, observations in by_binding.items():
            b = self._index.bindings[key]
            result = evaluate(b.rule, b.steps, self._states.get(key, SubjectState()), observations)
            self._states[key] = result.state
            transitions += [(b, t) for t in result.transitions]
        # a silent device that speaks again resolves its silence alert at once, not at the next tick
        now = self._clock()
        newest: dict[str, datetime] = {}
        for o in batch:
            if o.device_id not in newest or o.time > newest[o.device_id]:
                newest[o.device_id] = o.time
        for b in self._index.silence:
            state = self._states.get(b.key)
            if state is not None and state.level > 0 and b.devices[0] in newest:
                assert isinstance(b.rule, SilenceRule)
                device = self._devices.get(b.devices[0])
                if device is None:
                    continue
                result = evaluate_silence(b.rule, state, newest[b.devices[0]], device.expected_interval, now, False)
                self._states[b.key] = result.state
                transitions += [(b, t) for t in result.transitions]
        self.stats.batches += 1
        self.stats.readings += len(batch)
        if transitions:
            self._store(transitions)
        return len(transitions)

    def check_silence(self) -> int:
        """The periodic check: devices silent for too long, worse near an active alert of another rule."""
        silence = self._index.silence
        if not silence:
            return 0
        now = self._clock()
        device_ids = sorted({b.devices[0] for b in silence})
        with self._pool.connection() as conn:
            last = store.last_reading_times(conn, device_ids)
            levels = store.latest_values(conn, device_ids, LEVEL_METRIC)
            devices = {d.id: d for d in active_devices(conn)}
            located = (devices[i] for i in device_ids if i in devices)
            places = {d.id: (d.lon, d.lat) for d in located if d.lon is not None and d.lat is not None}
            near: dict[tuple[float, str], set[str]] = {}
            for b in silence:
                assert isinstance(b.rule, SilenceRule)
                k = (b.rule.nearby_m, b.rule.id)
                if k not in near:
                    near[k] = store.devices_near_active_alerts(conn, places, b.rule.nearby_m, b.rule.id)
        policy = SilencePolicy.from_settings(self.settings)
        transitions: list[tuple[Binding, Transition]] = []
        for b in silence:
            assert isinstance(b.rule, SilenceRule)
            device = devices.get(b.devices[0])
            if device is None:
                continue
            nearby = b.devices[0] in near[(b.rule.nearby_m, b.rule.id)]
            state = self._states.get(b.key, SubjectState())
            # The devices' one rule of when a device must be heard from (a crisis gauge in dry weather reports
            # daily): a silence alert for what the map shows as merely quiet would be a false alarm.
            interval = reporting_interval(device.expected_interval, device.metadata, levels.get(device.id), policy)
            result = evaluate_silence(b.rule, state, last.get(b.devices[0]), interval, now, nearby)
            self._states[b.key] = result.state
            transitions += [(b, t) for t in result.transitions]
        if transitions:
            self._store(transitions)
        return len(transitions)

    def _store(self, transitions: list[tuple[Binding, Transition]]) -> None:
        stale: list[str] = []
        with self._pool.connection() as conn, conn.transaction():
            for b, t in transitions:
                try:
                    apply_transition(
                        conn,
                        rule_id=b.rule.id,
                        rule_kind=b.rule.kind,
                        hazard=str(b.rule.hazard),
                        title_en=b.rule.title.en,
                        title_ja=b.rule.title.ja,
                        subject=b.subject,
                        place=b.place,
                        transition=t,
                    )
                except StaleTransition as exc:  # raised before any write: the rest of the batch is stored
                    stale.append(str(exc))
        if stale:
            # the store changed under the evaluator (not by a hand resolve, which reopens): start again from it
            log.warning("alert state differs from the store, rebuilding: %s", "; ".join(stale[:3]))
            self.request_resync()
        stored = len(transitions) - len(stale)
        self.stats.transitions += stored
        metrics.ALERT_TRANSITIONS.inc(stored)

    # -- for tests and tools ----------------------------------------------------------------------

    def state_of(self, rule_id: str, subject: str) -> SubjectState | None:
        return self._states.get((rule_id, subject))
