"""HTTP push for partners without MQTT: the same contract, validation and exactly-once store as MQTT."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from ingest.contract import Reason, telemetry_topic
from ingest.observe import record_batch
from ingest.pipeline import Message, PipelineConfig, process_safely
from ingest.registry import RegistryCache
from ingest.writer import BatchWriter
from mimamori.errors import UnreachableError


@dataclass(frozen=True, slots=True)
class PushResult:
    received: int  # readings accepted by validation
    stored: int  # of those, new
    duplicates: int  # of those, already stored
    rejected: list[dict[str, str | None]]


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
        raise UnreachableError("the database is unavailable: nothing was stored, retry later")
    record_batch("http", [message], [outcome], result, datetime.now(UTC))
    return PushResult(
        received=len(outcome.readings),
        stored=result.stored,
        duplicates=result.duplicates,
        rejected=[_as_seen_by_caller(d.reason, d.detail, device_id, tenant_id) for d in outcome.dead],
    )


def _as_seen_by_caller(reason: Reason, detail: str, device_id: str, tenant_id: str) -> dict[str, str | None]:
    # A partner must not learn that another tenant's device exists: to the caller it is simply unknown.
    # The dead letter keeps the true reason for the city's operators.
    if reason is Reason.tenant_mismatch:
        return {
            "reason": str(Reason.unknown_device),
            "detail": f"device {device_id!r} is not registered for {tenant_id}",
        }
    return {"reason": str(reason), "detail": detail}
