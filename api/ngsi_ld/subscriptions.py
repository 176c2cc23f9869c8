"""NGSI-LD subscriptions to Alert entities, carried by the alert webhooks (alerts/): the subscription document
parsed into a webhook's filters, the document answered back, and the Notification a delivery sends. Pure.

A subscription is on ``Alert`` entities; it is notified at every change of an alert it matches (raised, escalated,
de-escalated, acknowledged, resolved, closed), with the alert as an entity. Its ``q`` may say what the webhooks
filter on: ``warningLevel>=N`` (or ``>N``, ``==N``) and ``category=="flood"`` (or a list), joined with ``;``.
Deliveries are the webhooks': signed, retried with back-off, to addresses the allow-list admits.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from api.ngsi_ld import model, qlang
from api.ngsi_ld.problems import bad_request

FORMAT = "ngsi-ld"
ID_PREFIX = "urn:ngsi-ld:Subscription:"
_ACCEPTS = (model.JSON, model.JSONLD)
_KEYS = frozenset(
    {"@context", "id", "type", "subscriptionName", "description", "entities", "watchedAttributes", "q"}
    | {"notification", "isActive"}
)


@dataclass(frozen=True)
class SubscriptionSpec:
    url: str
    min_level: int
    hazards: list[str] | None
    document: dict[str, Any]  # as stored and answered back (without id)


def subscription_id(webhook_id: int) -> str:
    return f"{ID_PREFIX}{webhook_id}"


def webhook_id_of(urn: str) -> int:
    local = urn.removeprefix(ID_PREFIX)
    if not urn.startswith(ID_PREFIX) or not local.isdigit() or len(local) > 18:
        raise bad_request(f"{urn!r} is not a subscription id of this hub (urn:ngsi-ld:Subscription:<number>)")
    return int(local)


def _filters(text: str) -> tuple[int, list[str] | None]:
    tree = qlang.parse_q(text)
    terms = tree.parts if isinstance(tree, qlang.And) else (tree,)
    min_level, hazards = 1, None
    for term in terms:
        if not isinstance(term, qlang.Term):
            raise bad_request("a subscription's q is warningLevel and category terms joined with ;")
        value = term.value
        if term.attribute == "warningLevel" and term.op in (">=", ">", "==") and isinstance(value, int):
            level = value + 1 if term.op == ">" else value
            if not 1 <= level <= 5:
                raise bad_request("warningLevel runs from 1 to 5")
            min_level = max(min_level, level)
        elif term.attribute == "category" and term.op == "==":
            values = list(value) if isinstance(value, tuple) else [value]
            if not all(isinstance(v, str) for v in values):
                raise bad_request('category takes quoted hazards: category=="flood","landslide"')
            hazards = [str(v) for v in values]
        else:
            raise bad_request("a subscription's q may name warningLevel (>=, >, ==) and category (==), joined with ;")
    return min_level, hazards


def parse_subscription(body: Any) -> SubscriptionSpec:
    """A subscription document (clause 5.2.12) as the webhook it becomes; a 400 for what the hub cannot honour."""
    if not isinstance(body, dict):
        raise bad_request("a subscription is a JSON object")
    unknown = set(body) - _KEYS
    if unknown:
        raise bad_request(f"unsupported subscription member(s): {', '.join(sorted(unknown))}")
    if body.get("type") != "Subscription":
        raise bad_request('a subscription has "type": "Subscription"')
    entities = body.get("entities")
    if not isinstance(entities, list) or not entities:
        raise bad_request('entities is required: [{"type": "Alert"}]')
    for selector in entities:
        alert = isinstance(selector, dict) and selector.get("type") in ("Alert", model.ALERT.iri)
        if not alert or set(selector) - {"type"}:
            raise bad_request('subscriptions are on Alert entities: entities [{"type": "Alert"}]')
    watched = body.get("watchedAttributes")
    if watched is not None and (
        not isinstance(watched, list) or not all(isinstance(a, str) and a in model.ALERT.attributes for a in watched)
    ):
        raise bad_request(f"watchedAttributes are Alert attributes: {', '.join(model.ALERT.attributes)}")
    q = body.get("q")
    if q is not None and not isinstance(q, str):
        raise bad_request("q is a string")
    min_level, hazards = _filters(q) if q else (1, None)
    notification = body.get("notification")
    if not isinstance(notification, dict):
        raise bad_request("notification is required, with endpoint.uri")
    endpoint = notification.get("endpoint")
    if not isinstance(endpoint, dict) or not isinstance(endpoint.get("uri"), str):
        raise bad_request("notification.endpoint.uri is required")
    if endpoint.get("accept", model.JSON) not in _ACCEPTS:
        raise bad_request(f"notification.endpoint.accept is one of {', '.join(_ACCEPTS)}")
    if notification.get("format", "normalized") not in ("normalized", "keyValues"):
        raise bad_request("notification.format is normalized or keyValues")
    attributes = notification.get("attributes")
    if attributes is not None:
        if not isinstance(attributes, list) or not all(isinstance(a, str) for a in attributes):
            raise bad_request("notification.attributes is a list of attribute names")
        model.check_attrs(attributes, [model.ALERT], ())
    if body.get("isActive", True) is not True:
        raise bad_request("isActive: a subscription is active; delete it to stop notifications")
    document = {k: v for k, v in body.items() if k not in ("id", "@context")}
    return SubscriptionSpec(endpoint["uri"], min_level, hazards, document)


def subscription_document(row: Mapping[str, Any], context: str | None) -> dict[str, Any]:
    """A stored subscription (a webhook row of format ngsi-ld) as NGSI-LD answers it."""
    stored = {k: v for k, v in (row.get("subscription") or {}).items() if not k.startswith("_")}
    doc: dict[str, Any] = {"id": subscription_id(int(row["id"])), **stored}
    doc["isActive"] = bool(row.get("active", True))
    if context is not None:
        doc["@context"] = [context]
    return doc


def _time(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return value
    return value


def alert_feature(alert: Mapping[str, Any]) -> dict[str, Any]:
    """An alert as the webhooks' event row holds it (row_to_json: times as text) in a feature's shape."""
    dates = {a.source for a in model.ALERT.attributes.values() if a.kind == "date-time"}
    props = {k: _time(v) if k in dates else v for k, v in alert.items()}
    return {"id": alert["id"], "geometry": alert.get("area") or alert.get("location"), "properties": props}


def notification(row: Mapping[str, Any], delivery: Mapping[str, Any], now: datetime | None = None) -> bytes:
    """The body of one delivery: an NGSI-LD Notification with the alert as it is now."""
    doc = delivery.get("subscription") or {}
    notify = doc.get("notification") or {}
    attributes = notify.get("attributes")
    selection = model.Selection(
        frozenset(attributes) if attributes else None, key_values=notify.get("format") == "keyValues"
    )
    entity = model.render(model.ALERT, alert_feature(row["alert"]), selection)
    context = doc.get("_context") if isinstance(doc.get("_context"), str) else None
    if (notify.get("endpoint") or {}).get("accept") == model.JSONLD and context:
        entity["@context"] = [context]
    at = (now or datetime.now(UTC)).astimezone(UTC)
    body = {
        "id": f"urn:ngsi-ld:Notification:{delivery['id']}",
        "type": "Notification",
        "subscriptionId": subscription_id(int(delivery["webhook_id"])),
        "notifiedAt": at.isoformat().replace("+00:00", "Z"),
        "data": [entity],
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


# The webhook bodies other than the hub's own event JSON, by a subscription's format (the hub passes them to the
# alert services' webhook dispatcher).
NOTIFICATION_FORMATS = {FORMAT: notification}
