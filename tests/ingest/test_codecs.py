"""Payload codecs and validation: pure functions, tested directly and with hypothesis."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices import load_catalogue
from ingest.codecs import decode_status, decode_telemetry, encode_native, encode_senml, parse_time
from ingest.contract import RawReading, Reason, Rejection, Status, parse_topic, subscription_filters
from ingest.validation import Limits, validate_readings

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
LIMITS = Limits(max_future=timedelta(minutes=5), max_past=timedelta(days=365))
GAUGE = load_catalogue()["river_gauge"].metrics


def reasons(decoded_or_list) -> list[Reason]:
    items = decoded_or_list.rejections if hasattr(decoded_or_list, "rejections") else decoded_or_list
    return [r.reason for r in items]


# --- topics -----------------------------------------------------------------------------------------


def test_topics_name_tenant_device_and_kind():
    t = parse_topic("mimamori/v1", "mimamori/v1/toyota-city/yahagi-takahashi/telemetry")
    assert (t.tenant, t.device, t.kind) == ("toyota-city", "yahagi-takahashi", "telemetry")
    assert parse_topic("mimamori/v1", "mimamori/v1/acme/d1/status").kind == "status"


@pytest.mark.parametrize(
    "topic",
    [
        "other/v1/a/b/telemetry",
        "mimamori/v1/a/telemetry",
        "mimamori/v1/a/b/c/telemetry",
        "mimamori/v1/a/b/cmd",
        "mimamori/v1/../b/telemetry",
        "mimamori/v1/a/ b/telemetry",
        "",
    ],
)
def test_foreign_topics_are_not_ours(topic):
    assert parse_topic("mimamori/v1", topic) is None


def test_ingestors_share_one_subscription():
    assert subscription_filters("mimamori/v1", "g") == [
        "$share/g/mimamori/v1/+/+/telemetry",
        "$share/g/mimamori/v1/+/+/status",
    ]


# --- native JSON ------------------------------------------------------------------------------------


def test_native_single_set_keeps_device_time():
    d = decode_telemetry(
        b'{"ts": "2026-11-25T10:00:00+09:00", "values": {"water_level": 3.42, "battery": 3.61}}', None, NOW
    )
    assert d.rejections == []
    assert {(r.metric, r.value) for r in d.readings} == {("water_level", 3.42), ("battery", 3.61)}
    assert all(r.time == datetime(2026, 11, 25, 1, 0, tzinfo=UTC) for r in d.readings)


def test_native_batch_after_an_outage():
    sets = [{"ts": 1764000000 + 600 * i, "values": {"water_level": 1.0 + i}} for i in range(5)]
    d = decode_telemetry(json.dumps(sets).encode(), None, NOW)
    assert [r.value for r in d.readings] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert d.readings[1].time - d.readings[0].time == timedelta(minutes=10)


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        ("2026-11-25T03:00:00Z", datetime(2026, 11, 25, 3, tzinfo=UTC)),
        ("2026-11-25T03:00:00", datetime(2026, 11, 25, 3, tzinfo=UTC)),  # no offset: UTC
        (1764039600, datetime(2025, 11, 25, 3, tzinfo=UTC)),  # epoch seconds
        (1764039600000, datetime(2025, 11, 25, 3, tzinfo=UTC)),  # epoch milliseconds
        (1764039600.5, datetime(2025, 11, 25, 3, 0, 0, 500000, tzinfo=UTC)),
        (None, NOW),
    ],
)
def test_timestamps(ts, expected):
    assert parse_time(ts, NOW) == expected


def test_missing_ts_means_receive_time():
    d = decode_telemetry(b'{"values": {"water_level": 1}}', None, NOW)
    assert d.readings[0].time == NOW


def test_value_with_a_unit():
    d = decode_telemetry(b'{"values": {"water_level": {"v": 342, "u": "cm"}}}', None, NOW)
    assert d.readings == [RawReading(NOW, "water_level", 342.0, "cm")]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", Reason.malformed),
        (b"{not json", Reason.malformed),
        (b"\xff\xfe\x00", Reason.malformed),
        (b"[]", Reason.malformed),
        (b'{"values": 5}', Reason.malformed),
        (b'"just a string"', Reason.malformed),
        (b'{"ts": "yesterday", "values": {"water_level": 1}}', Reason.bad_timestamp),
        (b'{"ts": true, "values": {"water_level": 1}}', Reason.bad_timestamp),
        (b'{"ts": 1e300, "values": {"water_level": 1}}', Reason.bad_timestamp),
        (b'{"values": {"water_level": "high"}}', Reason.non_numeric),
        (b'{"values": {"water_level": true}}', Reason.non_numeric),
        (b'{"values": {"water_level": null}}', Reason.non_numeric),
        (b'{"values": {"water_level": {"v": 1, "u": 5}}}', Reason.bad_unit),
        (b'{"values": {"": 1}}', Reason.malformed),
    ],
)
def test_malformed_payloads_are_rejected_with_a_reason(payload, reason):
    d = decode_telemetry(payload, None, NOW)
    assert d.readings == []
    assert reasons(d) == [reason]


def test_a_bad_reading_does_not_reject_its_neighbours():
    d = decode_telemetry(b'{"values": {"water_level": 3.1, "battery": "low", "signal": -80}}', None, NOW)
    assert {r.metric for r in d.readings} == {"water_level", "signal"}
    assert reasons(d) == [Reason.non_numeric]


def test_bad_set_in_a_batch_does_not_reject_the_others():
    payload = b'[{"ts": 1764000000, "values": {"water_level": 1}}, {"ts": "bad", "values": {"water_level": 2}}, 7]'
    d = decode_telemetry(payload, None, NOW)
    assert [r.value for r in d.readings] == [1.0]
    assert reasons(d) == [Reason.bad_timestamp, Reason.malformed]


def test_deep_nesting_is_malformed_not_a_crash():
    d = decode_telemetry(b"[" * 100_000 + b"]" * 100_000, None, NOW)
    assert reasons(d) == [Reason.malformed]


# --- SenML ------------------------------------------------------------------------------------------


def test_senml_with_base_name_time_and_units():
    pack = [
        {"bn": "urn:dev:toyota:gauge-1:", "bt": 1764039600, "bu": "m", "n": "water_level", "v": 3.4},
        {"n": "water_level", "t": 600, "v": 3.6},
        {"n": "battery", "u": "V", "v": 3.7},
    ]
    d = decode_telemetry(json.dumps(pack).encode(), "application/senml+json", NOW)
    assert d.rejections == []
    t0 = datetime(2025, 11, 25, 3, tzinfo=UTC)
    assert d.readings == [
        RawReading(t0, "water_level", 3.4, "m"),
        RawReading(t0 + timedelta(minutes=10), "water_level", 3.6, "m"),
        RawReading(t0, "battery", 3.7, "V"),
    ]


def test_senml_is_detected_without_content_type():
    d = decode_telemetry(b'[{"n": "water_level", "v": 1.5}]', None, NOW)
    assert d.readings == [RawReading(NOW, "water_level", 1.5, None)]


def test_senml_relative_time_is_relative_to_now():
    d = decode_telemetry(b'[{"n": "water_level", "v": 1.5, "t": -60}]', "application/senml+json", NOW)
    assert d.readings[0].time == NOW - timedelta(minutes=1)


@pytest.mark.parametrize(
    ("pack", "reason"),
    [
        ({"n": "x", "v": 1}, Reason.malformed),  # not an array
        ([{"n": "water_level", "vs": "high"}], Reason.non_numeric),
        ([{"n": "water_level", "v": "1"}], Reason.non_numeric),
        ([{"n": "water_level", "v": 1, "t": "soon"}], Reason.non_numeric),
        ([{"bn": 5, "n": "water_level", "v": 1}], Reason.malformed),
        ([{"n": 7, "v": 1}], Reason.malformed),
        ([{"n": "water_level", "v": 1, "u": 3}], Reason.bad_unit),
        ([5], Reason.malformed),
    ],
)
def test_senml_errors(pack, reason):
    d = decode_telemetry(json.dumps(pack).encode(), "application/senml+json", NOW)
    assert d.readings == []
    assert reasons(d) == [reason]


# --- status -----------------------------------------------------------------------------------------


def test_status_messages():
    assert decode_status(b"offline", NOW) == Status(NOW, online=False)
    s = decode_status(b'{"state": "online", "battery": 3.6, "signal": -71}', NOW)
    assert s == Status(NOW, True, 3.6, -71.0)
    assert isinstance(decode_status(b'{"state": "asleep"}', NOW), Rejection)
    assert isinstance(decode_status(b"\x00\x01", NOW), Rejection)


# --- validation -------------------------------------------------------------------------------------


def test_validation_converts_known_units_and_rejects_the_rest():
    raw = [
        RawReading(NOW, "water_level", 342, "cm"),
        RawReading(NOW - timedelta(seconds=1), "water_level", 3420, "mm"),
        RawReading(NOW, "battery", 3600, "mV"),
        RawReading(NOW, "water_level", 3, "ft"),
        RawReading(NOW, "rainfall", 3, None),
        RawReading(NOW, "water_level", math.nan, None),
        RawReading(NOW, "water_level", math.inf, None),
        RawReading(NOW, "water_level", 99, "m"),
        RawReading(NOW + timedelta(hours=1), "water_level", 1, None),
        RawReading(NOW - timedelta(days=400), "water_level", 1, None),
    ]
    accepted, rejected = validate_readings("gauge-1", raw, GAUGE, NOW, LIMITS)
    assert [(r.metric, round(r.value, 9)) for r in accepted] == [
        ("water_level", 3.42),
        ("water_level", 3.42),
        ("battery", 3.6),
    ]
    assert reasons(rejected) == [
        Reason.bad_unit,
        Reason.unknown_metric,
        Reason.non_finite,
        Reason.non_finite,
        Reason.out_of_range,
        Reason.ts_future,
        Reason.ts_past,
    ]


def test_senml_ratio_unit_is_a_soil_moistures_own_unit():
    # RFC 8428 registers "/" as ratio; soil moisture is a volumetric ratio (m3/m3): the same number
    pack = [
        {"bn": "urn:dev:acme-soil-1:", "bu": "/", "n": "soil_moisture", "v": 0.31},
        {"n": "soil_moisture", "u": "%", "v": 32.0, "t": -60},
        {"n": "soil_moisture", "u": "/", "v": 0.33, "t": -120},
    ]
    d = decode_telemetry(json.dumps(pack).encode(), "application/senml+json", NOW)
    assert d.rejections == []
    assert [r.unit for r in d.readings] == ["/", "%", "/"]
    soil = load_catalogue()["soil_moisture"].metrics
    accepted, rejected = validate_readings("acme-soil-1", d.readings, soil, NOW, LIMITS)
    assert rejected == []
    assert [round(r.value, 9) for r in accepted] == [0.31, 0.32, 0.33]


def test_a_wrong_unit_is_told_which_units_the_metric_takes():
    soil = load_catalogue()["soil_moisture"].metrics
    _accepted, rejected = validate_readings(
        "acme-soil-1", [RawReading(NOW, "soil_moisture", 1, "kg")], soil, NOW, LIMITS
    )
    assert [r.detail for r in rejected] == ["reading 0: soil_moisture: unit 'kg', expected one of 'm3/m3', '%', '/'"]


def test_late_and_out_of_order_readings_are_accepted():
    raw = [
        RawReading(NOW - timedelta(days=3), "water_level", 1, None),
        RawReading(NOW - timedelta(days=5), "water_level", 2, None),
    ]
    accepted, rejected = validate_readings("gauge-1", raw, GAUGE, NOW, LIMITS)
    assert len(accepted) == 2 and rejected == []


# --- properties -------------------------------------------------------------------------------------


@settings(max_examples=500)
@given(st.binary(max_size=2048), st.sampled_from([None, "application/json", "application/senml+json"]))
def test_arbitrary_bytes_never_raise(payload, content_type):
    d = decode_telemetry(payload, content_type, NOW)
    assert d.readings or d.rejections
    status = decode_status(payload, NOW)
    assert isinstance(status, Status | Rejection)


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=True) | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300)
@given(json_values)
def test_arbitrary_json_never_raises(doc):
    payload = json.dumps(doc).encode()
    d = decode_telemetry(payload, None, NOW)
    assert d.readings or d.rejections
    d2 = decode_telemetry(payload, "application/senml+json", NOW)
    assert d2.readings or d2.rejections


metric_names = st.sampled_from(["water_level", "battery", "signal", "rainfall", "tilt_x"])
times = st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2099, 1, 1)).map(
    lambda t: t.replace(microsecond=(t.microsecond // 1000) * 1000, tzinfo=UTC)
)
readings_strategy = st.lists(
    st.builds(
        RawReading, times, metric_names, st.floats(allow_nan=False, allow_infinity=False, min_value=-1e9, max_value=1e9)
    ),
    min_size=1,
    max_size=20,
    unique_by=lambda r: (r.time, r.metric),
)


def _key(rs):
    return sorted((r.time, r.metric, r.value) for r in rs)


@given(readings_strategy)
def test_native_round_trip(readings):
    d = decode_telemetry(encode_native(readings), None, NOW)
    assert d.rejections == []
    assert _key(d.readings) == _key(readings)


@given(readings_strategy)
def test_senml_round_trip(readings):
    d = decode_telemetry(encode_senml("urn:dev:test:", readings), "application/senml+json", NOW)
    assert d.rejections == []
    got = sorted((r.time, r.metric, r.value) for r in d.readings)
    want = _key(readings)
    assert [(m, v) for _, m, v in got] == [(m, v) for _, m, v in want]
    # SenML carries times as float seconds: equal to the millisecond.
    assert all(abs((a[0] - b[0]).total_seconds()) < 1e-3 for a, b in zip(got, want, strict=True))


def test_a_bug_in_the_pipeline_dead_letters_the_message_instead_of_raising(monkeypatch):
    from devices import DeviceRecord
    from ingest import pipeline
    from ingest.registry import RegistrySnapshot

    def broken(*_args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(pipeline, "decode_telemetry", broken)
    snapshot = RegistrySnapshot(
        {"gauge-1": DeviceRecord("gauge-1", "toyota-city", "river_gauge", "active")}, {"river_gauge": GAUGE}
    )
    cfg = pipeline.PipelineConfig("mimamori/v1", 1024, LIMITS)
    msg = pipeline.Message("mqtt", "mimamori/v1/toyota-city/gauge-1/telemetry", b'{"values": {}}', NOW)
    out = pipeline.process_safely(msg, snapshot, cfg)
    assert out.readings == [] and [d.reason for d in out.dead] == [Reason.internal_error]
    assert "RuntimeError: a bug" in out.dead[0].detail and out.dead[0].payload == b'{"values": {}}'
