"""Tenants, device types and their metrics, devices (the registry), the one read model of a device, the one
rule of its silence and a device's time series (devices/series.py)."""

from devices.broker import BrokerAdmin, DeviceCredentials
from devices.catalogue import DeviceType, MetricSpec, load_catalogue
from devices.importer import ImportReport
from devices.manage import Caller
from devices.nats_accounts import NatsAccounts, broker_admin
from devices.nats_auth import stream_subjects as nats_stream_subjects
from devices.nats_auth import subject_to_topic, topic_to_subject
from devices.queries import (
    LATEST_PREFIX,
    DeviceFilter,
    StateFilter,
    active_devices,
    all_devices,
    catalogue_from_db,
    device_state,
    device_states,
    device_states_within,
    get_device_record,
    latest_readings,
    metric_specs,
    sync_catalogue,
    upsert_device,
    upsert_tenant,
)
from devices.records import DeviceInfo, DeviceRecord, DeviceState, Liveness
from devices.silence import Silence, SilencePolicy
from devices.validation import DeviceSpec, DeviceStatus

__all__ = [
    "LATEST_PREFIX",
    "BrokerAdmin",
    "Caller",
    "DeviceCredentials",
    "DeviceFilter",
    "DeviceInfo",
    "DeviceRecord",
    "DeviceSpec",
    "DeviceState",
    "DeviceStatus",
    "DeviceType",
    "ImportReport",
    "Liveness",
    "MetricSpec",
    "NatsAccounts",
    "Silence",
    "SilencePolicy",
    "StateFilter",
    "active_devices",
    "all_devices",
    "broker_admin",
    "catalogue_from_db",
    "device_state",
    "device_states",
    "device_states_within",
    "get_device_record",
    "latest_readings",
    "load_catalogue",
    "metric_specs",
    "nats_stream_subjects",
    "subject_to_topic",
    "sync_catalogue",
    "topic_to_subject",
    "upsert_device",
    "upsert_tenant",
]
