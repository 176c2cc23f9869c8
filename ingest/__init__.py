"""Ingest: the device contract, payload codecs, validation, batched exactly-once writes, MQTT and HTTP entry."""

from ingest.contract import Reading, Reason, status_topic, subscription_filters, telemetry_topic
from ingest.http_push import PushResult, push
from ingest.mqtt_consumer import MqttIngestor, batch_writer, pipeline_config
from ingest.nats_consumer import NatsIngestor, make_ingestor
from ingest.registry import RegistryCache
from ingest.stats import IngestStats
from ingest.writer import BatchWriter, CommittedReadings

__all__ = [
    "BatchWriter",
    "CommittedReadings",
    "IngestStats",
    "MqttIngestor",
    "NatsIngestor",
    "PushResult",
    "Reading",
    "Reason",
    "RegistryCache",
    "batch_writer",
    "make_ingestor",
    "pipeline_config",
    "push",
    "status_topic",
    "subscription_filters",
    "telemetry_topic",
]
