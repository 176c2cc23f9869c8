"""Tenants, device types and their metrics, devices (the registry)."""

from devices.broker import BrokerAdmin, DeviceCredentials
from devices.catalogue import DeviceType, MetricSpec, load_catalogue
from devices.importer import ImportReport
from devices.manage import Caller
from devices.queries import (
    DeviceFilter,
    DeviceInfo,
    DeviceRecord,
    all_devices,
    catalogue_from_db,
    get_device_record,
    latest_readings,
    metric_specs,
    sync_catalogue,
    upsert_device,
    upsert_tenant,
)
from devices.validation import DeviceSpec, DeviceStatus

__all__ = [
    "BrokerAdmin",
    "Caller",
    "DeviceCredentials",
    "DeviceFilter",
    "DeviceInfo",
    "DeviceRecord",
    "DeviceSpec",
    "DeviceStatus",
    "DeviceType",
    "ImportReport",
    "MetricSpec",
    "all_devices",
    "catalogue_from_db",
    "get_device_record",
    "latest_readings",
    "load_catalogue",
    "metric_specs",
    "sync_catalogue",
    "upsert_device",
    "upsert_tenant",
]
