"""The SensorThings API 1.1 (Sensing) view of the registry and the time series: entity sets over the existing
tables (nothing copied), the ``$filter`` compiler, query options and id codecs. api/ renders the documents."""

from devices.sta.ids import ObservationId, decode_cursor, encode_cursor, format_key, parse_key
from devices.sta.model import ENTITY_SETS, EntitySet, Nav
from devices.sta.options import Expand, Options, OrderKey, StaError, options_query, parse_options
from devices.sta.paths import ResourcePath, Step, parse_path
from devices.sta.queries import (
    Many,
    One,
    Page,
    Value,
    datastream_target,
    datastream_tenant,
    fetch_entity,
    fetch_page,
    fetch_related,
    read,
    series_number,
    tenant_datastreams,
)
from devices.sta.render import entity, entity_key, json_value, pairs, self_link

__all__ = [
    "ENTITY_SETS",
    "EntitySet",
    "Expand",
    "Many",
    "Nav",
    "ObservationId",
    "One",
    "Options",
    "OrderKey",
    "Page",
    "ResourcePath",
    "StaError",
    "Step",
    "Value",
    "datastream_target",
    "datastream_tenant",
    "decode_cursor",
    "encode_cursor",
    "entity",
    "entity_key",
    "fetch_entity",
    "fetch_page",
    "fetch_related",
    "format_key",
    "json_value",
    "options_query",
    "pairs",
    "parse_key",
    "parse_options",
    "parse_path",
    "read",
    "self_link",
    "series_number",
    "tenant_datastreams",
]
