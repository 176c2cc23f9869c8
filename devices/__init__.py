"""Tenants, device types and their metrics, devices (the registry)."""

from devices.catalogue import DeviceType, MetricSpec, load_catalogue
from devices.queries import (
    DeviceRecord,
    all_devices,
    get_device_record,
    latest_readings,
    metric_specs,
    sync_catalogue,
    upsert_device,
    upsert_tenant,
)

__all__ = [
    "DeviceRecord",
    "DeviceType",
    "MetricSpec",
    "all_devices",
    "get_device_record",
    "latest_readings",
    "load_catalogue",
    "metric_specs",
    "sync_catalogue",
    "upsert_device",
    "upsert_tenant",
]
