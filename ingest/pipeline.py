"""One message in, its outcome out: readings to store, dead letters, a liveness update. Pure."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import datetime

from ingest.codecs import decode_status, decode_telemetry
from ingest.contract import STATUS, Reading, Reason, Rejection, Status, parse_topic
from ingest.registry import RegistrySnapshot
from ingest.rejections import summarise
from ingest.validation import Limits, check_device, validate_readings

log = logging.getLogger(__name__)


@dataclass(slots=True)  # one per message: not frozen, which is cheaper to build; never mutated
class Message:
    """A message as it arrived, from MQTT or HTTP."""

    source: str  # "mqtt" or "http"
    topic: str
    payload: bytes
    received: datetime
    content_type: str | None = None

    @property
    def key(self) -> str:
        """Identity of the message, so a redelivery does not dead-letter twice."""
        digest = hashlib.sha256(self.topic.encode("utf-8", "replace") + b"\0" + self.payload)
        return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One refused message: at most one per message, its payload kept once (see ingest/rejections.py)."""

    source: str
    topic: str
    device_id: str | None
    tenant_id: str | None
    reason: Reason
    detail: str
    payload: bytes | None  # None: not kept (the device is over its dead-letter quota)
    message_key: str
    reasons: dict[str, object] | None = None  # per reason: count and first details
    rejected: int = 1  # readings (or whole-message problems) refused
    over_quota_bytes: int | None = None  # set when the device is over its quota: counted, not kept (payload size)


@dataclass(slots=True)  # one per message, like Message
class Liveness:
    device_id: str
    seen: datetime  # hub time the device was last heard
    last_reading: datetime | None = None
    online: bool | None = None
    battery: float | None = None
    signal: float | None = None


@dataclass(slots=True)
class Outcome:
    readings: list[Reading] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)  # at most one
    liveness: Liveness | None = None
    message: Message | None = None  # what it came from: a batch that fails to store is isolated to it


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    topic_prefix: str
    max_payload_bytes: int
    limits: Limits


def process(msg: Message, registry: RegistrySnapshot, cfg: PipelineConfig) -> Outcome:
    out = Outcome(message=msg)
    topic = parse_topic(cfg.topic_prefix, msg.topic) if msg.topic else None
    if topic is None:
        detail = f"topic {msg.topic[:200]!r} is not {cfg.topic_prefix}/<tenant>/<device>/..."
        out.dead.append(dead_letter(msg, [Rejection(Reason.bad_topic, detail)]))
        return out
    if len(msg.payload) > cfg.max_payload_bytes:
        detail = f"{len(msg.payload)} bytes > {cfg.max_payload_bytes} (payload truncated)"
        rej = Rejection(Reason.oversized, detail)
        out.dead.append(dead_letter(msg, [rej], topic.device, topic.tenant, msg.payload[: cfg.max_payload_bytes]))
        return out
    device = registry.devices.get(topic.device)
    bad_device = check_device(device, topic.tenant, topic.device)
    if bad_device or device is None:
        rej = bad_device or Rejection(Reason.unknown_device, topic.device)
        out.dead.append(dead_letter(msg, [rej], topic.device, topic.tenant))
        return out

    if topic.kind == STATUS:
        status = decode_status(msg.payload, msg.received)
        if isinstance(status, Rejection):
            out.dead.append(dead_letter(msg, [status], device.id, device.tenant_id))
        else:
            out.liveness = _liveness_from_status(device.id, msg.received, status)
        return out

    decoded = decode_telemetry(msg.payload, msg.content_type, msg.received)
    accepted, rejected = validate_readings(
        device.id, decoded.readings, registry.specs_for(device), msg.received, cfg.limits
    )
    if decoded.rejections or rejected:
        out.dead.append(dead_letter(msg, decoded.rejections + rejected, device.id, device.tenant_id))
    out.readings = accepted
    out.liveness = _liveness_from_readings(device.id, msg.received, accepted)
    return out


def dead_letter(
    msg: Message,
    rejections: list[Rejection],
    device_id: str | None = None,
    tenant_id: str | None = None,
    payload: bytes | None = None,
) -> DeadLetter:
    """The one dead letter of a message, summarising all its rejections."""
    s = summarise(rejections)
    kept = msg.payload if payload is None else payload
    return DeadLetter(
        msg.source, msg.topic, device_id, tenant_id, s.reason, s.detail, kept, msg.key, s.reasons, s.rejected
    )


def process_safely(msg: Message, registry: RegistrySnapshot, cfg: PipelineConfig) -> Outcome:
    """``process``, but a bug in it dead-letters the message instead of killing the caller's loop.

    The MQTT network thread calls this: an exception escaping there would silently stop the ingestor receiving.
    """
    try:
        return process(msg, registry, cfg)
    except Exception as exc:  # the boundary of the hot loop: record, keep the message, carry on
        log.exception("ingest pipeline failed on a message from %s", msg.topic[:200])
        detail = f"{type(exc).__name__}: {str(exc)[:200]}"
        return Outcome(dead=[dead_letter(msg, [Rejection(Reason.internal_error, detail)])], message=msg)


def _liveness_from_status(device_id: str, received: datetime, status: Status) -> Liveness:
    return Liveness(device_id, received, None, status.online, status.battery, status.signal)


def _liveness_from_readings(device_id: str, received: datetime, readings: list[Reading]) -> Liveness:
    # One pass: this runs for every message in the network thread.
    newest: datetime | None = None
    battery_at = signal_at = None
    battery = signal = None
    for r in readings:
        t = r.time
        if newest is None or t > newest:
            newest = t
        metric = r.metric
        if metric == "battery" and (battery_at is None or t > battery_at):
            battery_at, battery = t, r.value
        elif metric == "signal" and (signal_at is None or t > signal_at):
            signal_at, signal = t, r.value
    return Liveness(device_id, received, newest, True, battery, signal)


def merge_liveness(updates: list[Liveness]) -> list[Liveness]:
    """One row per device for a whole batch: the newest of each field (a field's latest non-null value; the
    first of equal times wins over a null only). Merged in place into one copy per device: this runs for every
    message of a batch, mostly from a few devices."""
    merged: dict[str, Liveness] = {}
    for u in updates:
        m = merged.get(u.device_id)
        if m is None:
            merged[u.device_id] = Liveness(u.device_id, u.seen, u.last_reading, u.online, u.battery, u.signal)
            continue
        newer = u.seen >= m.seen
        if newer:
            m.seen = u.seen
        if u.last_reading is not None and (m.last_reading is None or u.last_reading > m.last_reading):
            m.last_reading = u.last_reading
        if u.online is not None and (newer or m.online is None):
            m.online = u.online
        if u.battery is not None and (newer or m.battery is None):
            m.battery = u.battery
        if u.signal is not None and (newer or m.signal is None):
            m.signal = u.signal
    return list(merged.values())
