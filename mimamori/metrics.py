"""Prometheus metrics of every Mimamori process, declared in one place so operators find them all here.

Labels never carry tenant, device or key identities: a scrape must not leak who sends what (and unbounded label
values would grow the series without end). Labels are closed sets: a reason, a source, a route template.

The objects live in prometheus_client's default registry, as its exposition and ``start_http_server`` expect;
they hold counters only, no connections, so declaring them at import is harmless.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections import Counter as Tally
from collections.abc import Sequence

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest, start_http_server

# Seconds from well under a batch (50 ms) to a long outage (an hour): lag is tiny normally and huge after one.
_LAG_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
_BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
_FAST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

# -- ingest (MQTT and HTTP push) ------------------------------------------------------------------------------

MESSAGES_RECEIVED = Counter(
    "mimamori_ingest_messages_received", "Messages (MQTT) or payloads (HTTP push) taken into a batch.", ["source"]
)
READINGS_STORED = Counter(
    "mimamori_ingest_readings_stored", "Readings committed for the first time (new rows).", ["source"]
)
READINGS_DUPLICATE = Counter(
    "mimamori_ingest_readings_duplicate",
    "Readings already stored (redelivery, a retried request): harmless, counted to show redelivery.",
    ["source"],
)
DEAD_LETTERS = Counter(
    "mimamori_ingest_dead_letters",
    "Messages refused and kept in dead_letters (one per message, by its most frequent reason).",
    ["source", "reason"],
)
DEAD_LETTERS_OVER_QUOTA = Counter(
    "mimamori_ingest_dead_letters_over_quota",
    "Refused messages of devices over their dead-letter quota: counted in dead_letter_overflow, payload not kept.",
    ["source", "reason"],
)
BATCHES_SPLIT = Counter(
    "mimamori_ingest_batches_split",
    "Batches the database refused for a reason other than a lost connection, split to find the message at fault.",
)
MESSAGES_STORE_FAILED = Counter(
    "mimamori_ingest_messages_store_failed",
    "Messages the database refused on their own, dead-lettered as store_failed.",
    ["source"],
)
MESSAGES_LOST = Counter(
    "mimamori_ingest_messages_lost",
    "Messages that could be neither stored nor dead-lettered (logged with their key); should stay 0.",
    ["source"],
)
QUEUED_BYTES = Gauge(
    "mimamori_ingest_queued_bytes",
    "Estimated memory of the messages received and not yet acknowledged (bounded by MIMAMORI_INGEST_MAX_QUEUED_BYTES).",
)
BATCH_MESSAGES = Histogram(
    "mimamori_ingest_batch_messages", "Messages per committed database transaction.", buckets=_BATCH_BUCKETS
)
COMMIT_SECONDS = Histogram(
    "mimamori_ingest_commit_seconds",
    "Time to commit one batch, retries during an outage included.",
    buckets=_LAG_BUCKETS,
)
RECEIVE_TO_COMMIT_SECONDS = Histogram(
    "mimamori_ingest_receive_to_commit_seconds",
    "From a message's arrival at the hub to the commit of its readings (the hub's own part of the lag).",
    ["source"],
    buckets=_LAG_BUCKETS,
)
DEVICE_TO_COMMIT_SECONDS = Histogram(
    "mimamori_ingest_device_to_commit_seconds",
    "From a reading's device time to its commit: publish-to-commit lag for live devices (includes clock skew, "
    "and the age of store-and-forward backlogs).",
    ["source"],
    buckets=_LAG_BUCKETS,
)
TIMESCALEDB_JOB_LAST_SUCCESS = Gauge(
    "mimamori_timescaledb_job_last_success_timestamp_seconds",
    "When each TimescaleDB job (compression, retention, aggregate refresh) last succeeded; 0 if never.",
    ["job", "proc"],
)
TIMESCALEDB_JOB_LAST_FAILURE = Gauge(
    "mimamori_timescaledb_job_last_failure_timestamp_seconds",
    "When each TimescaleDB job last failed (its error: `mimamori db info`); 0 if never.",
    ["job", "proc"],
)
TIMESCALEDB_JOB_FAILING = Gauge(
    "mimamori_timescaledb_job_failing", "1 while a TimescaleDB job's last run failed.", ["job", "proc"]
)
BROKER_CONNECTED = Gauge("mimamori_ingest_broker_connected", "1 while the ingestor holds a broker connection.")
BROKER_CONNECTS = Counter("mimamori_ingest_broker_connects", "Broker connections made (first one and reconnects).")
NATS_REDELIVERED = Counter(
    "mimamori_ingest_nats_redelivered",
    "NATS path: messages delivered more than once (an ingestor stopped or was too slow before acknowledging them).",
)
DATABASE_AVAILABLE = Gauge(
    "mimamori_ingest_database_available", "0 while a batch is held back because PostgreSQL does not answer."
)
QUEUED_MESSAGES = Gauge(
    "mimamori_ingest_queued_messages",
    "Messages received, not yet committed and acknowledged (bounded by the MQTT receive maximum).",
)

# -- alerts ---------------------------------------------------------------------------------------------------

ALERT_EVALUATIONS = Counter("mimamori_alerts_evaluations", "Batches of committed readings judged by the rules.")
ALERT_EVALUATION_SECONDS = Histogram(
    "mimamori_alerts_evaluation_seconds", "Time to judge one batch and store its alert changes.", buckets=_FAST_BUCKETS
)
ALERT_READINGS = Counter("mimamori_alerts_readings_evaluated", "Readings judged by the rules.")
ALERT_TRANSITIONS = Counter("mimamori_alerts_transitions", "Alert changes stored (raised, escalated, resolved …).")
WEBHOOK_DELIVERIES = Counter("mimamori_alerts_webhook_deliveries", "Webhook delivery attempts by outcome.", ["outcome"])
ALERT_MQTT_PUBLISHED = Counter("mimamori_alerts_mqtt_published", "Alert events published on MQTT.")
STA_MQTT_PUBLISHED = Counter("mimamori_sta_mqtt_published", "Observations published on SensorThings MQTT topics.")
STA_MQTT_DROPPED = Counter(
    "mimamori_sta_mqtt_dropped", "Committed readings not published on SensorThings MQTT (queue full, broker away)."
)

# -- API ------------------------------------------------------------------------------------------------------

API_REQUEST_SECONDS = Histogram(
    "mimamori_api_request_seconds",
    "Time to the first byte of the answer (a live stream counts until its headers), by route template.",
    ["method", "route", "status"],
    buckets=_FAST_BUCKETS,
)

_server_lock = threading.Lock()
_served_on: tuple[str, int] | None = None


def exposition() -> tuple[bytes, str]:
    """The current metrics in the Prometheus text format, and its content type."""
    return generate_latest(), CONTENT_TYPE_LATEST


def serve_metrics(host: str, port: int) -> None:
    """Serve /metrics on its own port in a daemon thread (for processes without the API, e.g. ingest)."""
    global _served_on
    with _server_lock:
        if _served_on is not None:
            return  # one exporter per process
        start_http_server(port, addr=host)
        _served_on = (host, port)


def observe_many(histogram: Histogram, values: Sequence[float]) -> None:
    """``histogram.observe(v)`` for every value, with one update per bucket touched instead of per value (ingest
    observes each message of a batch: thousands a batch, each observation taking two locks). Uses
    prometheus_client's private bucket fields; without them (another version) each value is observed by the
    public call. Exemplars are not set, as ingest sets none."""
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if not values:
        return
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for v in values:
            histogram.observe(v)
        return
    histogram._raise_if_not_observable()  # a labelled parent refuses, as observe() does
    total.inc(sum(values))
    for i, n in Tally([bisect_left(bounds, v) for v in values]).items():
        if i < len(buckets):  # past the last bound only a NaN, which observe() counts in no bucket either
            buckets[i].inc(n)
