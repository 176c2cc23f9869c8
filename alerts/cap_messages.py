"""The CAP messages of each alert (table ``cap_messages``, migration 0056): which changes are messages, their
identifiers, sent times and place names, fixed when the change is stored. Pure: the rules are here, the SQL that
stores and reads the messages is in alerts/store.py.

A CAP message is immutable once sent: aggregators dedupe on (sender, identifier, sent) and chain a later message
to the earlier ones through ``references``. So each message's identifier and ``sent`` are written in the same
transaction as the alert event they tell, and served as stored ever after (rendering: alerts/cap.py).

Which changes are messages, and of which type:

- raised: ``Alert``, the first message of the alert;
- escalated / de-escalated: ``Update``, referencing every earlier message of the alert;
- resolved (by the rule's clear condition or by hand): ``Update`` with responseType AllClear and urgency Past.
  Not ``Cancel``: CAP 1.2 defines Cancel as withdrawing the referenced messages and lets it carry no ``info``;
  consumers commonly read it as "issued in error" and just drop the alert, so residents would never be told the
  danger has passed. An Update supersedes the referenced messages just as well and says, in both languages, that
  it is over.
- acknowledged and closed: no message. They are the operators' bookkeeping; nothing the public acts on (level,
  area, urgency) changes. (CAP's ``Ack`` acknowledges receipt of a message, which is something else.)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

MSG_TYPE_OF_EVENT = {"raised": "Alert", "escalated": "Update", "deescalated": "Update", "resolved": "Update"}


@dataclass(frozen=True, slots=True)
class CapMessage:
    """One stored CAP message with the event it tells."""

    alert_id: int
    seq: int
    identifier: str
    sent: datetime
    msg_type: str
    area_ja: str
    area_en: str
    kind: str  # the event: raised, escalated, deescalated, resolved
    level: int  # the level after the change (0: all clear)
    previous_level: int | None
    state: str  # the alert's state after the change
    value: float | None

    @property
    def all_clear(self) -> bool:
        return self.kind == "resolved"


def identifier_for(alert_id: int, seq: int, sent: datetime) -> str:
    # The sent time (UTC) keeps identifiers unique when a rebuilt database numbers alerts from 1 again; the
    # sender (settings) is not part of it, as CAP scopes identifiers by sender. No spaces, commas, < or &.
    return f"mimamori.alert.{alert_id}.{seq}.{sent.astimezone(UTC):%Y%m%dT%H%M%SZ}"


def group_place(subject: str) -> str:
    """A composite rule's group as a place: 'area:Asahi' -> 'Asahi', 'river=Yahagi' -> 'Yahagi' (binding.py)."""
    group = subject.rpartition("@")[0] if "@" in subject else subject  # '<group>@<tenant>' across tenants
    if group.startswith("area:"):
        return group[len("area:") :]
    return group.partition("=")[2] if "=" in group else ""


def place_names(row: dict[str, Any]) -> tuple[str, str]:
    """(ja, en) name of where the alert is: the device's name (metadata name_ja / name_en when given), the group
    of a composite rule, else the tenant's name. The device id only when the device has no name at all."""
    if row["device_id"] is not None:
        meta = row["metadata"] or {}
        name = (row["device_name"] or "").strip() or row["device_id"]
        ja = str(meta.get("name_ja") or "").strip() or name
        en = str(meta.get("name_en") or "").strip() or name
        return ja, en
    place = group_place(row["subject"]) or (row["tenant_name"] or "").strip() or row["subject"]
    return place, place
