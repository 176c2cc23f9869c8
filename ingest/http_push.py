"""HTTP push for partners without MQTT: the same contract, validation and exactly-once store as MQTT."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from ingest.contract import Reason, telemetry_topic
from ingest.observe import record_batch
from ingest.pipeline import DeadLetter, Message, PipelineConfig, process_safely
from ingest.registry import RegistryCache
from ingest.writer import BatchWriter
from mimamori.errors import UnreachableError


@dataclass(frozen=True, slots=True)
class PushResult:
    received: int  # readings accepted by validation
    stored: int  # of those, new
    duplicates: int  # of those, already stored
    rejected: list[dict[str, str | int | None]]  # one entry per reason: reason, its first detail, count


def push(
    writer: BatchWriter,
    registry: RegistryCache,
    cfg: PipelineConfig,
    *,
    tenant_id: str | None,
    device_id: str,
    payload: bytes,
    content_type: str | None,
    give_up_after_s: float = 10.0,
) -> PushResult:
    """Store one pushed payload for ``device_id``.

    ``tenant_id`` is the caller's tenant (a partner pushes as itself); None lets an admin push for any
    device, under the device's own tenant.
    """
    snapshot = registry.snapshot({device_id})
    if tenant_id is None:
        device = snapshot.devices.get(device_id)
        tenant_id = device.tenant_id if device else "-"
    topic = telemetry_topic(cfg.topic_prefix, tenant_id, device_id)
    message = Message("http", topic, payload, datetime.now(UTC), content_type)
    outcome = process_safely(message, snapshot, cfg)
    # A request must not hang while the database is away: give up, store nothing, and let the partner retry
    # (a retried reading is stored once).
    result = writer.write([outcome], give_up_after_s=give_up_after_s)
    if result is None:
        raise UnreachableError("the database is unavailable: not everything was stored, retry later")
    record_batch("http", [message], [outcome], result, datetime.now(UTC))
    return PushResult(
        received=len(outcome.readings),
        stored=result.stored,
        duplicates=result.duplicates,
        rejected=[_as_seen_by_caller(r, device_id, tenant_id) for d in outcome.dead for r in _by_reason(d)],
    )


def _by_reason(dead: DeadLetter) -> list[tuple[str, str, int]]:
    """Reason, first detail and count of each reason a message was refused for."""
    if not dead.reasons:
        return [(str(dead.reason), dead.detail, dead.rejected)]
    return [(reason, info["first"][0], info["count"]) for reason, info in dead.reasons.items()]  # type: ignore[index]


def _as_seen_by_caller(refusal: tuple[str, str, int], device_id: str, tenant_id: str) -> dict[str, str | int | None]:
    reason, detail, count = refusal
    # A partner must not learn that another tenant's device exists: to the caller it is simply unknown.
    # The dead letter keeps the true reason for the city's operators.
    if reason == Reason.tenant_mismatch:
        reason, detail = str(Reason.unknown_device), f"device {device_id!r} is not registered for {tenant_id}"
    return {"reason": reason, "detail": detail, "count": count}
