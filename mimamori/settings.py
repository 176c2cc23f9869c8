"""The hub's single settings object: environment variables ``MIMAMORI_*`` with laptop defaults."""

from __future__ import annotations

import os
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mimamori.errors import ConfigError

_WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})  # noqa: S104 - recognised, never bound to


class TimescaleMode(StrEnum):
    auto = "auto"  # use TimescaleDB when the extension can be created
    on = "on"  # require it
    off = "off"  # plain PostgreSQL even if the extension exists


class BrokerKind(StrEnum):
    mosquitto = "mosquitto"  # one Mosquitto, MQTT 5, shared subscriptions (the default)
    nats = "nats"  # a NATS JetStream cluster: devices speak MQTT 3.1.1 to any node (docs/scaling.md)


class MqttAddress:
    """A parsed ``mqtt://`` or ``mqtts://`` URL."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts"):
            raise ConfigError(f"MIMAMORI_MQTT_URL must start with mqtt:// or mqtts://, got {url!r}")
        if not parts.hostname:
            raise ConfigError(f"MIMAMORI_MQTT_URL has no host: {url!r}")
        self.tls = parts.scheme == "mqtts"
        self.host = parts.hostname
        try:
            self.port = parts.port or (8883 if self.tls else 1883)
        except ValueError as exc:
            raise ConfigError(f"MIMAMORI_MQTT_URL has a bad port: {url!r}") from exc

    def __str__(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


# Written by `make up` (deploy/laptop-hub.sh): the laptop broker's address and the hub's accounts on it, so every
# `mimamori` command run from this checkout while the laptop hub is up talks to that hub, as the docs write them.
LAPTOP_ENV_FILE = Path(__file__).resolve().parent.parent / "var" / "laptop.env"


def env_files() -> tuple[str, ...]:
    """Files read for settings, later ones winning, the environment above all: the laptop hub's, then ./.env.

    MIMAMORI_LAPTOP_ENV_FILE names another laptop file, or none when empty (the tests' own hubs)."""
    laptop = os.environ.get("MIMAMORI_LAPTOP_ENV_FILE", str(LAPTOP_ENV_FILE))
    return (laptop, ".env") if laptop else (".env",)


class Settings(BaseSettings):
    """Every knob of the hub. Read once at start and passed in; no module reads the environment itself."""

    model_config = SettingsConfigDict(env_prefix="MIMAMORI_", env_file=".env", extra="ignore")

    def __init__(self, **values: Any) -> None:
        values.setdefault("_env_file", env_files())
        super().__init__(**values)

    database_url: SecretStr = Field(
        SecretStr("postgresql://postgres@127.0.0.1:5432/mimamori"),
        description="PostgreSQL connection URL (libpq form).",
    )
    db_pool_min: int = Field(1, ge=0)
    db_pool_max: int = Field(10, ge=1)
    db_pool_timeout_s: float = Field(5.0, gt=0, description="Wait this long for a pooled connection, then fail (503).")
    timescaledb: TimescaleMode = Field(TimescaleMode.auto, description="auto, on or off.")
    retention_days: int = Field(3650, ge=1, description="Raw readings kept this long (TimescaleDB only).")
    compress_after_days: int = Field(7, ge=1, description="Chunks older than this are compressed.")
    chunk_days: int = Field(
        7,
        ge=1,
        le=366,
        description="Days of readings per TimescaleDB chunk, for chunks made from now on. Longer chunks compress"
        " better (a compressed batch holds up to 1,000 readings of one series, and every chunk costs a few pages of"
        " its own); the newest chunk's indexes should fit in memory.",
    )

    admin_key_file: str = Field(
        "",
        description="`mimamori up` keeps an admin API key here (mode 0600) so a laptop always has a way in; "
        "`make up` uses ./var/admin-key.",
    )
    mqtt_url: str = Field("mqtt://127.0.0.1:1883", description="Broker URL, mqtt:// or mqtts://.")
    mqtt_username: str | None = None
    mqtt_password: SecretStr | None = None
    mqtt_ca_file: str | None = Field(None, description="CA bundle for mqtts:// (system store when unset).")
    mqtt_client_id: str = Field(
        "mimamori-ingest-1",
        description="Stable id: the broker keeps its session. The broker account may connect under this id only.",
    )
    mqtt_share_group: str = Field("mimamori-ingest", description="Shared-subscription group of ingestors.")
    mqtt_session_expiry_s: int = Field(7 * 24 * 3600, ge=0)
    mqtt_receive_maximum: int = Field(
        10000, ge=1, le=65535, description="Unacknowledged messages the broker may send us (bounds memory)."
    )
    mqtt_topic_prefix: str = "mimamori/v1"
    mqtt_admin_username: str = Field(
        "mimamori-admin", description="Broker account that manages device accounts (dynamic security)."
    )
    mqtt_admin_password: SecretStr | None = Field(None, description="Its password (see `mimamori broker init`).")
    mqtt_admin_timeout_s: float = Field(10.0, gt=0, description="Wait this long for the broker's control answers.")
    simulate_connect_timeout_s: float = Field(
        5.0, gt=0, description="`mimamori simulate` exits (code 3) when the broker takes no connection this long."
    )
    mqtt_dynsec_plugin: str | None = Field(
        None, description="Path of mosquitto_dynamic_security.so when not in the usual places."
    )

    broker: BrokerKind = Field(
        BrokerKind.mosquitto,
        description="mosquitto, or nats: ingestors read a durable JetStream consumer of a NATS cluster whose nodes"
        " take devices' MQTT 3.1.1 (docs/scaling.md, 'NATS JetStream path').",
    )
    nats_urls: str = Field(
        "nats://127.0.0.1:4222", description="NATS path: the cluster's nodes, nats:// URLs separated by commas."
    )
    nats_username: str | None = Field(None, description="NATS path: the ingestor's NATS user.")
    nats_password: SecretStr | None = None
    nats_accounts_file: str | None = Field(
        None,
        description="NATS path: the accounts file every node includes; the hub rewrites it (and its .json beside it)"
        " to provision devices, then reloads every node.",
    )
    nats_system_password: SecretStr | None = Field(
        None, description="NATS path: password of the system user (mimamori-system) the hub reloads the nodes as."
    )
    nats_callout_password: SecretStr | None = Field(
        None, description="NATS path: password of the auth callout service's user (mimamori-callout)."
    )
    nats_callout_seed_file: str | None = Field(
        None,
        description="NATS path: the account nkey seed (mode 0600) the auth callout signs its answers with; each"
        " node's auth_callout names its public key (`mimamori broker nats-init`).",
    )
    nats_stream: str = Field("MIMAMORI_DEVICES", description="NATS path: the JetStream stream of device messages.")
    nats_stream_replicas: int = Field(3, ge=1, le=5, description="NATS path: copies of that stream in the cluster.")
    nats_durable: str = Field(
        "mimamori-ingest", description="NATS path: the durable consumer every ingestor shares (any takes any message)."
    )
    nats_max_ack_pending: int = Field(
        20_000,
        ge=1,
        description="NATS path: messages delivered and not yet acknowledged, across all ingestors (bounds in-flight).",
    )
    nats_ack_wait_s: float = Field(
        30.0, gt=0, description="NATS path: an unacknowledged message goes to another ingestor after this long."
    )

    api_push_rate_per_s: float = Field(50.0, gt=0, description="HTTP push: sustained requests per second per key.")
    api_push_burst: int = Field(200, ge=1, description="HTTP push: requests a key may send in a burst.")
    open_rate_per_s: float = Field(
        5.0, gt=0, description="Open data (/open, no key): sustained requests per second per client address."
    )
    open_burst: int = Field(60, ge=1, description="Open data: requests a client address may send in a burst.")
    open_cache_max_age_s: int = Field(
        60, ge=0, description="Open data: Cache-Control max-age of its answers (seconds; readings change often)."
    )
    open_fresh_s: float = Field(
        2.0,
        ge=0,
        description="Open data and the citizens' page: each anonymous answer is built at most once per this many"
        " seconds per API process and served from memory meanwhile (readings reach citizens at most this late; 0:"
        " every request reads the database).",
    )
    open_cache_mb: int = Field(
        32, ge=1, description="Open data and the citizens' page: memory per API process for those built answers (MB)."
    )
    public_translations: str | None = Field(
        None,
        description="The citizens' page (/public): its translations file (YAML, api/public/translations.yaml's"
        " layout); unset: the packaged one.",
    )
    public_cache_max_age_s: int = Field(
        30, ge=0, description="The citizens' page: Cache-Control max-age (seconds; short, its values change)."
    )
    open_alert_history_hours: int = Field(
        72,
        ge=0,
        description="Open data: an alerts dataset lists alerts ended within this many hours beside active ones.",
    )
    api_push_db_wait_s: float = Field(
        10.0, gt=0, description="An HTTP push waits this long for an unavailable database, then answers 503."
    )

    ingest_batch_max: int = Field(
        2000,
        ge=1,
        # Well under the receive maximum, so the broker keeps sending while a batch commits.
        description="Messages per database transaction, at most.",
    )
    ingest_batch_ms: int = Field(50, ge=1, description="A batch is closed after this many ms.")
    ingest_gc_gen0: int = Field(
        50_000,
        ge=0,
        description="Allocations between young-generation garbage collections in `mimamori ingest` "
        "(0: Python's default, 700); see ingest/gc_tuning.py.",
    )
    ingest_max_payload_bytes: int = Field(256 * 1024, ge=64)
    ingest_max_queued_bytes: int = Field(
        256 * 1024 * 1024,
        ge=1024 * 1024,
        description="Memory for messages received and not yet acknowledged; past it the ingestor stops reading the"
        " broker until a batch commits (see docs/operations.md, 'Memory').",
    )
    ingest_dead_letter_burst_bytes: int = Field(
        2 * 1024 * 1024,
        ge=0,
        description="Dead-letter bytes (payload + 512 per row) a device may write at once; past its quota its"
        " refused messages are only counted, per hour, in dead_letter_overflow.",
    )
    ingest_dead_letter_bytes_per_s: float = Field(
        2048.0, ge=0, description="... and per second, sustained (about 170 MB a day per device at most)."
    )
    ingest_max_future_s: int = Field(300, ge=0, description="Readings further ahead are rejected.")
    ingest_max_past_days: int = Field(365, ge=1, description="Readings older than this are rejected.")

    api_key_cache_s: float = Field(
        2.0,
        ge=0,
        description="An API process trusts a key it has checked for this long: a key revoked by another process or"
        " the CLI is refused within this time (0: look every key up on every request).",
    )
    api_max_body_bytes: int = Field(
        1024 * 1024,
        ge=1024,
        description="Request bodies larger than this are refused with 413 as they arrive (bulk import: below).",
    )
    api_import_max_bytes: int = Field(
        20_000_000, ge=1024, description="`POST /v1/devices/import` bodies, at most (larger files: the CLI)."
    )
    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=1, le=65535)
    api_nice: int = Field(
        19,
        ge=0,
        le=19,
        description="`mimamori api` lowers its own CPU priority by this much (Unix nice) once started: on a machine it"
        " shares with ingest, a stampede of readers waits for the cores and readings do not (bench.public: ingest"
        " lag p99 under the stampede 0.9–2.8 s at 5, 78–178 ms at 19).",
    )

    # Devices (devices/silence.py): when a device counts as silent, for the map, the API and Grafana alike.
    devices_silent_after_intervals: float = Field(
        3.0, gt=1, description="A device is silent after this many reporting intervals without a message."
    )
    devices_quiet_interval_s: int = Field(
        86_400,
        ge=60,
        description="A crisis gauge's reporting interval below its observation-start level (at least daily).",
    )

    # Geo-API and forestry (geo/, OGC API Features, time series, tiles).
    stands_default_crs: str = Field(
        "EPSG:6675", description="CRS of stand registers that do not say (JGD2011 plane-rectangular VII, Aichi)."
    )
    stands_import_chunk: int = Field(2000, ge=1, description="Stands written per transaction on import.")
    stands_species_names: str | None = Field(
        None, description="YAML table of tree species names (register value: other names); geo/species.yaml if unset."
    )
    timeseries_max_points: int = Field(10_000, ge=1, description="Points one time-series request may return.")
    timeseries_default_hours: int = Field(24, ge=1, description="Time range when a request gives no start.")
    timeseries_bucket_origin: str = Field(
        "2000-01-03T00:00:00+09:00", description="Buckets are aligned to this instant: days are JST days."
    )
    ogc_default_limit: int = Field(100, ge=1, description="Features per page when the client does not say.")
    ogc_max_limit: int = Field(10_000, ge=1, description="Most features a client may ask for in one page.")
    tiles_max_features: int = Field(20_000, ge=1, description="Features in one vector tile, at most.")
    tiles_stands_max_age_s: int = Field(3600, ge=0, description="Cache-Control max-age of stand tiles.")
    tiles_live_max_age_s: int = Field(30, ge=0, description="Cache-Control max-age of device and alert tiles.")
    tiles_stands_detail_zoom: int = Field(
        12, ge=0, le=22, description="Stand tiles show each stand from this zoom; below it, compartments (林班)."
    )
    tiles_cache_max_zoom: int = Field(
        14, ge=-1, le=22, description="Stand tiles up to this zoom are cached in the database (-1: no cache)."
    )

    # Alerts (alerts/): rules, evaluation, distribution.
    alerts_rules_dir: str | None = Field(
        None, description="Folder of hazard rule files (*.yaml); the shipped defaults when unset."
    )
    alerts_enabled: bool = Field(True, description="Evaluate rules in `mimamori up` (and `ingest --alerts`).")
    alerts_tick_s: float = Field(10.0, gt=0, description="Silence checks and rule reloads run this often.")
    alerts_queue_max: int = Field(10_000, ge=1, description="Reading batches waiting for evaluation, at most.")
    alerts_stream_poll_ms: int = Field(100, ge=10, description="How often a live stream looks for new events.")
    alerts_stream_keepalive_s: float = Field(15.0, gt=0, description="Comment lines keep idle streams open.")
    alerts_mqtt_client_id: str = Field("mimamori-alerts-1", description="MQTT client id of the alert publisher.")
    alerts_mqtt_username: str | None = Field(
        None,
        description="Broker account of the alert publisher (may publish {prefix}/alerts/<tenant>/<id>[/events], "
        "bound to ALERTS_MQTT_CLIENT_ID); else MQTT_USERNAME.",
    )
    alerts_mqtt_password: SecretStr | None = None
    alerts_webhook_timeout_s: float = Field(5.0, gt=0, description="A webhook endpoint gets this long to answer.")
    alerts_webhook_max_attempts: int = Field(8, ge=1, description="Deliveries are given up after this many tries.")
    alerts_webhook_backoff_s: float = Field(2.0, gt=0, description="First retry delay; doubles each attempt.")
    alerts_webhook_allow: list[str] = Field(
        [],
        description="Webhook receivers on the hub's own networks that may be registered and delivered to despite"
        " the address rules (loopback, private, link-local, metadata …): CIDRs or host names (JSON list).",
    )
    alerts_cap_sender: str = Field("mimamori@city.toyota.example", description="CAP <sender> of our alerts.")
    alerts_feed_ended_hours: float = Field(
        24.0, ge=0, description="The Atom feed keeps an ended alert's all-clear message this long (0: active only)."
    )
    alerts_public_url: str | None = Field(
        None,
        description="The hub's public base URL (http[s]://host[:port][/path]) in CAP <web> and the Atom feed's links;"
        " unset: http://API_HOST:API_PORT (127.0.0.1 when the API listens on every address).",
    )

    # Web map (api/web/, served at /).
    web_basemap: str | None = Field(
        None,
        description="GeoJSON file of base layers (property `layer`: outline, district, river, road, place); "
        "the shipped SYNTHETIC layers when unset.",
    )
    web_basemap_attribution: str = Field("Base layers: see the city's data sources", description="Its credit line.")
    web_refresh_s: float = Field(30.0, ge=5, description="The map reloads device states this often (alerts are live).")
    web_banner_level: int = Field(3, ge=1, le=5, description="New alerts at this level or above: banner and beep.")
    web_history_hours: int = Field(24, ge=1, description="Hours of readings in a device's chart and of ended alerts.")

    # Grafana (dashboards/: `mimamori grafana export|check|sync`).
    grafana_url: str = Field("http://127.0.0.1:3000", description="Grafana that `mimamori grafana sync` pushes to.")
    grafana_token: SecretStr | None = Field(None, description="Its service-account token (an Admin role).")
    grafana_timeout_s: float = Field(10.0, gt=0, description="Grafana gets this long to answer each request.")
    grafana_folder: str = Field("Mimamori", description="Folder the dashboards go in.")
    grafana_datasource_uid: str = Field("mimamori", description="Uid of the PostgreSQL data source the panels use.")
    grafana_datasource_name: str = Field("Mimamori", description="Its name in Grafana.")
    grafana_database_url: SecretStr | None = Field(
        None, description="postgresql:// URL Grafana connects with (a read-only role); the hub's own when unset."
    )
    grafana_database_sslmode: str = Field("disable", description="disable, require, verify-ca or verify-full.")
    grafana_extensometer_rate_mm_h: list[float] = Field(
        [2.0, 4.0, 10.0], description="Displacement-rate bands: warning, evacuate, sliding (JSON list)."
    )
    grafana_tilt_rate_deg_h: list[float] = Field([0.01, 0.1], description="Tilt-rate bands: caution, warning.")
    grafana_rain_hourly_caution_mm: float = Field(20.0, gt=0, description="Hourly rainfall drawn as a caution line.")
    grafana_rain_event_caution_mm: float = Field(100.0, gt=0, description="Rain since the event began: caution.")
    grafana_rain_event_gap_h: float = Field(24.0, gt=0, description="Hours without rain that end a rain event.")
    grafana_map_lat: float = Field(35.15, ge=-90, le=90, description="Centre of the Geomap panel.")
    grafana_map_lon: float = Field(137.30, ge=-180, le=180)
    grafana_map_zoom: float = Field(10.0, ge=0, le=22)

    # Observability (mimamori/metrics.py, mimamori/health.py; docs/operations.md).
    metrics_port: int | None = Field(
        None, ge=1, le=65535, description="`mimamori ingest` / `alerts run` serve /metrics on this port (off: unset)."
    )
    metrics_host: str = Field("127.0.0.1", description="Address of that metrics port (0.0.0.0 inside a container).")
    api_metrics: bool = Field(True, description="The API serves /metrics (keep it off the public proxy).")
    health_timeout_s: float = Field(2.0, gt=0, description="/readyz gives the database and the broker this long.")

    log_level: str = "INFO"
    log_json: bool = False

    @field_validator("database_url")
    @classmethod
    def _check_db_url(cls, value: SecretStr) -> SecretStr:
        scheme = urlsplit(value.get_secret_value()).scheme
        if scheme not in ("postgresql", "postgres"):
            raise ValueError("must be a postgresql:// URL")
        return value

    @field_validator("mqtt_url")
    @classmethod
    def _check_mqtt_url(cls, value: str) -> str:
        try:
            MqttAddress(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from exc
        return value

    @field_validator("alerts_public_url")
    @classmethod
    def _check_public_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError("must be an http:// or https:// URL with a host and no query or fragment")
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError as exc:
            raise ValueError(f"has a bad port: {exc}") from None
        return value.strip().rstrip("/")

    @model_validator(mode="after")
    def _check_retention(self) -> Settings:
        # The aggregates' refresh window reaches ingest_max_past_days + 2 back (mimamori/migrate.py); a refresh over
        # chunks retention has dropped would empty those days of the aggregates too.
        if self.retention_days <= self.ingest_max_past_days + 2:
            raise ValueError(
                f"MIMAMORI_RETENTION_DAYS ({self.retention_days}) must exceed MIMAMORI_INGEST_MAX_PAST_DAYS + 2"
                f" ({self.ingest_max_past_days + 2}): readings are accepted, and aggregates refreshed, that far back"
            )
        return self

    @field_validator("nats_urls")
    @classmethod
    def _check_nats_urls(cls, value: str) -> str:
        urls = [u.strip() for u in value.split(",") if u.strip()]
        if not urls or any(urlsplit(u).scheme not in ("nats", "tls") or not urlsplit(u).hostname for u in urls):
            raise ValueError("must be nats:// (or tls://) URLs with a host, separated by commas")
        return ",".join(urls)

    @property
    def nats_servers(self) -> list[str]:
        return self.nats_urls.split(",")

    @cached_property
    def mqtt(self) -> MqttAddress:
        return MqttAddress(self.mqtt_url)

    @property
    def dsn(self) -> str:
        return self.database_url.get_secret_value()

    @property
    def public_url(self) -> str:
        """Where people and aggregators reach this hub: ALERTS_PUBLIC_URL, else the API's own address."""
        if self.alerts_public_url:
            return self.alerts_public_url.rstrip("/")
        # a wildcard bind is no address to link to; on a laptop the API is reached on loopback
        host = "127.0.0.1" if self.api_host in _WILDCARD_HOSTS else self.api_host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.api_port}"


def redact_url(url: str) -> str:
    """The URL with any password replaced, safe for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return parts._replace(netloc=netloc).geturl()


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment, turning pydantic's report into one ConfigError line."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"MIMAMORI_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"bad configuration: {problems}") from None
