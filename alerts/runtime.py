"""Starting the alert services in a process: the engine, the MQTT publisher and the webhook sender, one thread
each, all stopped by one event."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from psycopg_pool import ConnectionPool

from alerts.engine import AlertEngine, Clock
from alerts.mqtt_publish import MqttAlertPublisher
from alerts.sta_mqtt import StaObservationPublisher
from alerts.webhooks import NotificationFormat, WebhookDispatcher
from mimamori.committed import CommittedReading
from mimamori.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class AlertServices:
    engine: AlertEngine
    publisher: MqttAlertPublisher | None
    webhooks: WebhookDispatcher | None
    sta: StaObservationPublisher | None = None
    threads: list[threading.Thread] = field(default_factory=list)

    def on_readings(self, readings: Iterable[CommittedReading]) -> None:
        """The committed-readings listener of these services: the engine, and the STA MQTT publisher."""
        batch = list(readings)
        self.engine.on_readings(batch)
        if self.sta is not None:
            self.sta.on_readings(batch)

    def join(self, timeout: float = 10.0) -> None:
        for t in self.threads:
            t.join(timeout)


def start_alert_services(
    settings: Settings,
    pool: ConnectionPool,
    stop: threading.Event,
    *,
    mqtt: bool = True,
    webhooks: bool = True,
    clock: Clock | None = None,
    notification_formats: Mapping[str, NotificationFormat] | None = None,
) -> AlertServices:
    """Start the engine and the distributors; feed them with ``services.on_readings``.

    ``clock`` replaces the wall clock for silence checks: a simulated scenario's own timeline, so a storm played
    at 360× is judged on its time (its devices are not "silent" because their device time runs behind).
    """
    services = AlertServices(
        AlertEngine(settings, pool) if clock is None else AlertEngine(settings, pool, clock=clock),
        MqttAlertPublisher(settings, pool) if mqtt else None,
        WebhookDispatcher(settings, pool, formats=notification_formats) if webhooks else None,
    )
    if services.publisher is not None:
        services.sta = StaObservationPublisher(settings, pool, services.publisher.client)
    for name, target in (
        ("alerts-engine", services.engine.run),
        ("alerts-mqtt", services.publisher.run if services.publisher else None),
        ("alerts-webhooks", services.webhooks.run if services.webhooks else None),
        ("alerts-sta-mqtt", services.sta.run if services.sta else None),
    ):
        if target is None:
            continue
        thread = threading.Thread(target=target, args=(stop,), name=name, daemon=True)
        thread.start()
        services.threads.append(thread)
    return services
