"""Managing rules and webhook subscriptions (what the API and the CLI call)."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

import psycopg

from alerts import outbox, store
from alerts.destinations import DestinationRefused, WebhookDestinations
from alerts.engine import load_rules
from alerts.rulefiles import parse_rule
from alerts.ruleset import AnyRule
from alerts.webhooks import new_secret
from devices.keys import Principal, audit
from mimamori.errors import NotFound, ValidationError
from mimamori.settings import Settings

log = logging.getLogger(__name__)


def rule_json(rule: AnyRule) -> dict[str, Any]:
    return rule.model_dump(mode="json", by_alias=True, exclude_none=True)


def rules_in_force(settings: Settings, conn: psycopg.Connection) -> list[dict[str, Any]]:
    """The rules the engine evaluates: files, overridden or extended by rules saved through the API."""
    saved = {row[0] for row in store.api_rules(conn)}
    return [{**rule_json(r), "source": "api" if r.id in saved else "file"} for r in load_rules(settings, conn)]


def save_rule(conn: psycopg.Connection, rule_id: str, body: dict[str, Any], who: Principal) -> dict[str, Any]:
    """Validate and store a rule; the engine picks it up at its next tick, without a restart."""
    rule = parse_rule({**body, "id": rule_id})
    stored = rule_json(rule)
    with conn.transaction():
        store.save_api_rule(conn, rule_id, stored, who.key_id)
        audit(conn, who.key_id, "alert_rule.save", rule_id, {"kind": rule.kind})
    return stored


def delete_rule(conn: psycopg.Connection, rule_id: str, who: Principal) -> None:
    with conn.transaction():
        if not store.delete_api_rule(conn, rule_id):
            raise NotFound(f"no rule {rule_id!r} saved through the API (file rules are edited in their files)")
        audit(conn, who.key_id, "alert_rule.delete", rule_id, {})


def subscribe_webhook(
    conn: psycopg.Connection,
    who: Principal,
    *,
    url: str,
    min_level: int = 1,
    hazards: list[str] | None = None,
    bbox: tuple[float, float, float, float] | None = None,
    all_tenants: bool = False,
    destinations: WebhookDestinations,
    format: str = "mimamori",
    subscription: dict[str, Any] | None = None,
) -> tuple[int, str]:
    """A new subscription; returns (id, signing secret). The secret is shown once, here.

    The URL must pass ``destinations`` (public addresses, or the administrator's allowlist); it is checked
    again at every delivery."""
    if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
        raise ValidationError("url must be an http:// or https:// URL")
    try:
        destinations.check(url)
    except DestinationRefused as exc:
        # The reason stays in the log: a partner learns no more of the hub's own network than "not allowed".
        log.info("webhook url refused for %s: %s", who.key_id, exc)
        raise ValidationError(
            "url must point at public addresses: its host is on a private, loopback, link-local or reserved"
            " network, or does not resolve (an internal receiver must be allowed by the administrator:"
            " MIMAMORI_ALERTS_WEBHOOK_ALLOW)"
        ) from None
    if all_tenants and not who.sees_all_tenants:
        raise ValidationError("a partner's subscription covers only its own tenant")
    secret = new_secret()
    with conn.transaction():
        webhook_id = outbox.create_webhook(
            conn,
            tenant_id=who.tenant_id,
            all_tenants=all_tenants,
            url=url,
            secret=secret,
            min_level=min_level,
            hazards=hazards,
            bbox=bbox,
            actor=who.key_id,
            format=format,
            subscription=subscription,
        )
        audit(conn, who.key_id, "alert_webhook.create", str(webhook_id), {"min_level": min_level, "format": format})
    return webhook_id, secret
