"""Webhooks: subscriptions with a filter, HMAC-SHA256-signed bodies, retries with back-off, a delivery log.

Deliveries are rows: an event is fanned out to the subscriptions it matches, then sent by a pool of senders with a
short timeout. A dead endpoint costs only its own retries; evaluation and ingest never wait for it. Each delivery
goes only to an address alerts/destinations.py admits, checked at the moment of sending.

Signature: ``X-Mimamori-Signature: sha256=<hex>`` over ``<X-Mimamori-Timestamp>.<body>`` with the subscription's
secret, so a receiver can check the body and refuse replays of old timestamps.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import httpx
import psycopg
from psycopg_pool import ConnectionPool

from alerts import outbox, store
from alerts.destinations import DestinationRefused, WebhookDestinations
from alerts.stream import event_json
from mimamori import metrics
from mimamori.settings import Settings

log = logging.getLogger(__name__)

CONSUMER = "webhooks"
SIGNATURE_HEADER = "X-Mimamori-Signature"
TIMESTAMP_HEADER = "X-Mimamori-Timestamp"


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={mac}"


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """For receivers (and our tests): does ``signature`` match?"""
    try:
        expected = sign(secret, int(timestamp), body)
    except ValueError:
        return False
    return hmac.compare_digest(expected, signature)


def backoff(settings: Settings, attempts: int) -> timedelta:
    """Delay before the next try after ``attempts`` failed ones: base x 2^(n-1), at most an hour."""
    return timedelta(seconds=min(settings.alerts_webhook_backoff_s * 2 ** max(attempts - 1, 0), 3600))


NotificationFormat = Callable[[dict[str, Any], Mapping[str, Any]], bytes]
"""A subscription's own body for an event (the event row with its alert, the delivery with its subscription): the
composition root registers them by format name (NGSI-LD's is api/ngsi_ld/subscriptions.py's); the hub's own event
JSON is the default."""


class WebhookDispatcher:
    def __init__(
        self,
        settings: Settings,
        pool: ConnectionPool,
        *,
        senders: int = 4,
        batch: int = 50,
        destinations: WebhookDestinations | None = None,
        formats: Mapping[str, NotificationFormat] | None = None,
    ) -> None:
        self.settings = settings
        self.formats = dict(formats or {})
        self.destinations = destinations or WebhookDestinations.from_settings(settings)
        self._pool = pool
        self._batch = batch
        self._senders = senders
        self.delivered = 0
        self.failed_attempts = 0

    def run(self, stop: threading.Event) -> None:
        poll = self.settings.alerts_stream_poll_ms / 1000
        with (
            httpx.Client(timeout=self.settings.alerts_webhook_timeout_s, follow_redirects=False) as http,
            ThreadPoolExecutor(self._senders, thread_name_prefix="webhook") as senders,
        ):
            while not stop.is_set():
                try:
                    busy = self.fan_out() + self.deliver_due(http, senders)
                except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                    log.warning("webhooks: database unavailable: %s", str(exc).strip()[:200])
                    stop.wait(2.0)
                    continue
                if not busy:
                    stop.wait(poll)

    def fan_out(self) -> int:
        """Queue deliveries for the events after the cursor."""
        with self._pool.connection() as conn, conn.transaction():
            after = outbox.lock_cursor(conn, CONSUMER)
            newest = store.newest_event_id(conn)
            if newest <= after:
                return 0
            queued = outbox.fan_out_deliveries(conn, after, newest)
            outbox.move_cursor(conn, CONSUMER, newest)
        return queued

    def deliver_due(self, http: httpx.Client, senders: ThreadPoolExecutor) -> int:
        with self._pool.connection() as conn, conn.transaction():
            due = outbox.claim_due_deliveries(conn, self._batch)
            if not due:
                return 0
            bodies = {}
            for d in due:
                row = outbox.event_with_alert(conn, d["event_id"])
                render = self.formats.get(d.get("format") or "mimamori")
                if row is None:
                    bodies[d["id"]] = b"{}"
                elif render is not None:
                    bodies[d["id"]] = render(row, d)
                else:
                    bodies[d["id"]] = event_json(row).encode()
            # Sent while the rows stay locked (SKIP LOCKED keeps other senders off them); the timeout bounds it.
            results = list(senders.map(lambda d: self._send(http, d, bodies[d["id"]]), due))
            for d, (ok, status, error) in zip(due, results, strict=True):
                attempts = d["attempts"] + 1
                give_up = not ok and attempts >= self.settings.alerts_webhook_max_attempts
                outbox.record_attempt(
                    conn,
                    d["id"],
                    delivered=ok,
                    give_up=give_up,
                    retry_in=backoff(self.settings, attempts),
                    response_status=status,
                    error=error,
                )
                if ok:
                    self.delivered += 1
                else:
                    self.failed_attempts += 1
                metrics.WEBHOOK_DELIVERIES.labels("delivered" if ok else "given_up" if give_up else "failed").inc()
        return len(due)

    def _send(self, http: httpx.Client, d: dict[str, Any], body: bytes) -> tuple[bool, int | None, str | None]:
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "mimamori-webhooks/1",
            "X-Mimamori-Event-Id": str(d["event_id"]),
            "X-Mimamori-Delivery-Id": str(d["id"]),
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(d["secret"], timestamp, body),
        }
        try:
            # Checked now, not only at registration: the name may resolve elsewhere since (DNS rebinding), and
            # the connection goes to the address checked here, never to a second lookup's answer.
            target = self.destinations.check(d["url"])
        except DestinationRefused as exc:
            return False, None, f"refused: {exc}"
        headers["Host"] = target.host_header
        extensions = {"sni_hostname": target.host} if d["url"].lower().startswith("https:") else {}
        try:
            response = http.post(target.pinned_url, content=body, headers=headers, extensions=extensions)
        except httpx.HTTPError as exc:
            return False, None, f"{type(exc).__name__}: {str(exc)[:200]}"
        if 200 <= response.status_code < 300:
            return True, response.status_code, None
        return False, response.status_code, f"HTTP {response.status_code}"
