"""A deterministic corpus of hostile telemetry payloads: every one must be dead-lettered, none may crash ingest.

Built in code from a fixed seed, so a failure names a payload that the next run produces again byte for byte.
Every payload is designed so that *no* reading in it can be stored, whatever the clock says: a hostile payload that
carried one good reading would make "stored exactly the good readings" untrue. Payloads are unique (the hub
deduplicates dead letters per sha256(topic, payload), so a repeated payload would show one row for two sends).

Not in the corpus, on purpose: well-formed JSON in UTF-16/UTF-32 or with a UTF-8 byte-order mark. Python's
``json.loads`` detects those encodings and the hub stores their readings; RFC 8259 asks for UTF-8 on the wire, but
accepting more is harmless, so they are not hostile. Their *broken* forms (odd lengths, mixed encodings) are here.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass

SENML = "application/senml+json"
SEED = 20260909
# Mosquitto refuses packets above its max_packet_size (1 MiB in deploy/mosquitto/mosquitto.conf) and disconnects the
# publisher: that is the broker's business. Every payload here stays below it, so each one reaches the hub.
MAX_SENDABLE = 1_000_000
# Content types devices get wrong; a share of every family is sent with one of them (SenML's own type included).
_ODD_CONTENT_TYPES = (
    SENML,
    "application/senml+json; charset=utf-16",
    "application/json; charset=latin-1",
    "text/plain",
    "application/octet-stream",
    "APPLICATION/SENML+JSON",
)
# Timestamps that are wrong in any era: unparseable, out of datetime's range, or far outside the accepted window.
ABSURD_TIMESTAMPS: tuple[object, ...] = (
    "0000-01-01T00:00:00Z",
    "0000-00-00T00:00:00",
    "-0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59-01:00",
    "0001-01-01T00:00:00+01:00",
    "1900-01-01T00:00:00Z",
    "1970-01-01T00:00:00Z",
    "2024-13-01T00:00:00Z",
    "2024-02-30T00:00:00Z",
    "2024-01-01T25:00:00Z",
    "2024-01-01T00:61:00Z",
    "2024-01-01T00:00:00+25:00",
    "2024-01-01T00:00:00Zjunk",
    "2024-01-01T00:00:00Z; DROP TABLE readings",
    "2024-01-01 00:00:00 UTC",
    "2024-01-01T00:00:00\u0000Z",
    "20240101T000000Zjunk",
    "+002024-01-01",
    "yesterday",
    "now",
    "",
    " ",
    "NaN",
    "Infinity",
    "1e300",
    "\ud800",
    "２０２４-０１-０１",
    "2024-W01-1T00:00:00Zjunk",
    1e300,
    -1e300,
    1e20,
    -1e20,
    1e15,
    -1,
    0,
    0.5,
    1e11,
    -1e11,
    253402300800,
    2**63,
    -(2**63),
    10**400,
    -(10**400),
    True,
    False,
    [],
    [2024, 1, 1],
    {},
    {"$date": "2024-01-01T00:00:00Z"},
)
ODD_METRIC_NAMES: tuple[str, ...] = (
    "",
    " ",
    "\t",
    "\n",
    "water_level\n",
    "water_level\u0000",
    "\u0000",
    "water_level\u200b",
    "\u202ewater_level",
    "\ufeffwater_level",
    "\ud83d",
    "x" * 65,
    "x" * 10_000,
    "水位",
    "🌊",
    "WATER_LEVEL",
    "Water_Level",
    "water-level",
    "water level",
    "water_level ",
    " water_level",
    "../water_level",
    "water_level'; DROP TABLE readings;--",
    "water_level\\u0000",
    "%s",
    "%(metric)s",
    "{metric}",
    "$share",
    "#",
    "+",
    "/",
    "water_level/",
    "metric:",
    "__proto__",
    "constructor",
    "null",
    "None",
    "1",
    "-",
    ".",
)
WRONG_VALUES: tuple[object, ...] = (
    "3.42",
    "",
    "NaN",
    "Infinity",
    "0x10",
    True,
    False,
    None,
    [],
    [1.0],
    [[1.0]],
    {},
    {"v": "1"},
    {"v": None},
    {"v": True},
    {"v": [1]},
    {"v": {"v": 1}},
    {"value": "1"},
    {"u": "m"},
    {"v": 1, "u": 5},
    {"v": 1, "u": ["m"]},
    {"v": 1, "u": True},
    {"v": 1, "u": {"unit": "m"}},
    {"v": 1, "u": "furlong"},
    {"v": 1, "u": "M"},
    {"v": 1, "u": ""},
    {"v": 1, "u": "m\u0000"},
    {"v": 1, "unit": 0},
    1e6,
    -1e6,
    1.7976931348623157e308,
    -1.7976931348623157e308,
    2**53 + 1,
    2**64,
    -(2**64),
    10**300,
    10**400,
    -(10**400),
)


@dataclass(frozen=True, slots=True)
class Hostile:
    family: str
    payload: bytes
    content_type: str | None = None


def _dumps(doc: object) -> bytes:
    # allow_nan: the corpus means to send NaN/Infinity literals; ensure_ascii: lone surrogates become \ud800 escapes
    return json.dumps(doc, allow_nan=True).encode()


def _truncated(metric: str, rng: random.Random) -> Iterator[Hostile]:
    docs = [
        {"ts": "2025-06-01T00:00:00Z", "values": {metric: 1.25}},
        [{"ts": 1748736000 + i, "values": {metric: i / 10}} for i in range(4)],
        {"ts": "2025-06-01T00:00:00+09:00", "values": {metric: {"v": 125, "u": "cm"}, "battery": 3.6}},
        [{"bn": "urn:dev:x:", "bt": 1748736000}, {"n": metric, "v": 1.5}, {"n": metric, "t": 60, "v": 1.6}],
    ]
    for d, doc in enumerate(docs):
        whole = _dumps(doc)
        cuts = sorted(rng.sample(range(len(whole)), min(len(whole), 40)))
        for cut in cuts:
            yield Hostile("truncated", whole[:cut], SENML if d == 3 and cut % 2 else None)


def _oversized(metric: str, max_payload_bytes: int) -> Iterator[Hostile]:
    # Well-formed and otherwise valid: refused for size alone. Below Mosquitto's max_packet_size (1 MiB), above ours.
    ceiling = MAX_SENDABLE
    sizes = {max_payload_bytes + 1, max_payload_bytes + 2, max_payload_bytes + 1000, 2 * max_payload_bytes}
    sizes |= {min(ceiling, 3 * max_payload_bytes), ceiling}
    for i, size in enumerate(sorted(s for s in sizes if s <= ceiling)):
        head = b'{"seq": %d, "values": {"%s": 1.5}, "pad": "' % (i, metric.encode())
        yield Hostile("oversized", head + b"x" * (size - len(head) - 2) + b'"}')
        readings = b",".join(b'{"values": {"%s": %d.5}}' % (metric.encode(), k % 5) for k in range(size // 24 + 1))
        # a unique head: HTTP keeps only the first bytes of an oversized body, so that is what identifies it
        body = b'[{"seq": %d},' % i + readings
        yield Hostile("oversized", body[: size - 1] + b"]", SENML if i % 2 else None)


def _deep(metric: str) -> Iterator[Hostile]:
    for depth in (2, 3, 10, 50, 100, 500, 999, 1000, 1001, 5000, 20_000, 100_000):
        yield Hostile("deep", b"[" * depth + b"]" * depth)
        yield Hostile("deep", b"[" * depth)
        yield Hostile("deep", b'{"a":' * depth + b"1" + b"}" * depth)
        yield Hostile("deep", b'{"values": {"%s": ' % metric.encode() + b"[" * depth + b"1" + b"]" * depth + b"}}")
        yield Hostile("deep", b'{"values": {"%s": ' % metric.encode() + b'{"v":' * depth + b"1" + b"}" * depth + b"}}")
        yield Hostile("deep", b'{"values": ' + b'{"values":' * depth + b"1" + b"}" * depth + b"}", SENML)


def _wrong_types(metric: str) -> Iterator[Hostile]:
    for top in ("1", "-0", "1e400", '"values"', "null", "true", "false", "[]", "[1, 2]", "[null]", "[[]]", "{}"):
        yield Hostile("wrong_types", top.encode())
    for values in ("[]", '"3.4"', "1", "null", "true", f'[{{"{metric}": 1}}]'):
        yield Hostile("wrong_types", f'{{"values": {values}}}'.encode())
        yield Hostile("wrong_types", f'[{{"values": {values}}}, {{"values": {values}, "ts": 0}}]'.encode())
    for i, value in enumerate(WRONG_VALUES):
        yield Hostile("wrong_types", _dumps({"values": {metric: value}}))
        yield Hostile("wrong_types", _dumps({"ts": 1748736000 + i, "values": {metric: value}}))
        yield Hostile("wrong_types", _dumps([{"values": {metric: value, "battery": value}}]), SENML if i % 5 else None)
        yield Hostile("wrong_types", _dumps({"values": {metric: value}, "ts": "2025-06-01T00:00:00Z", "n": metric}))
    for i, key in enumerate(("value", "Values", "VALUES", "v", "readings", "data", "")):
        yield Hostile("wrong_types", _dumps({key: {metric: 1.5}, "ts": i}))


def _non_finite(metric: str) -> Iterator[Hostile]:
    for lit in ("NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1E999"):
        yield Hostile("non_finite", f'{{"values": {{"{metric}": {lit}}}}}'.encode())
        yield Hostile("non_finite", f'{{"values": {{"{metric}": {{"v": {lit}, "u": "m"}}}}}}'.encode())
        yield Hostile("non_finite", f'{{"ts": {lit}, "values": {{"{metric}": 1.5}}}}'.encode())
        yield Hostile("non_finite", f'[{{"values": {{"{metric}": {lit}}}}}, {{"values": {{"x": {lit}}}}}]'.encode())
        yield Hostile("non_finite", f'[{{"n": "{metric}", "v": {lit}}}]'.encode(), SENML)
        yield Hostile("non_finite", f'[{{"n": "{metric}", "v": {lit}}}]'.encode())
        yield Hostile("non_finite", f'[{{"bv": {lit}, "n": "{metric}", "v": 1}}]'.encode(), SENML)
        yield Hostile("non_finite", f'[{{"bt": {lit}, "n": "{metric}", "v": 1}}]'.encode(), SENML)
        yield Hostile("non_finite", f'[{{"n": "{metric}", "t": {lit}, "v": 1}}]'.encode())
    # Integers too large for a float (JSON has no limit; Python turns them into ints) and beyond int parsing limits.
    for digits in (309, 400, 4300, 4301, 10_000):
        big = "9" * digits
        yield Hostile("non_finite", f'{{"values": {{"{metric}": {big}}}}}'.encode())
        yield Hostile("non_finite", f'{{"values": {{"{metric}": -{big}}}}}'.encode())
        yield Hostile("non_finite", f'{{"ts": {big}, "values": {{"{metric}": 1.5}}}}'.encode())
        yield Hostile("non_finite", f'[{{"n": "{metric}", "v": {big}}}]'.encode(), SENML)
        yield Hostile("non_finite", f'[{{"bt": {big}}}, {{"n": "{metric}", "v": 1}}]'.encode(), SENML)
        yield Hostile("non_finite", f'[{{"bv": {big}, "n": "{metric}", "v": 1}}]'.encode(), SENML)
        yield Hostile("non_finite", f'[{{"n": "{metric}", "t": -{big}, "v": 1}}]'.encode())


def _encodings(metric: str) -> Iterator[Hostile]:
    hostile_docs = [
        {"values": {metric: "1.5"}},
        {"ts": "2024-13-01", "values": {metric: 1.5}},
        {"values": {metric + "_\u00e4": 1.5}},
        [{"n": metric, "vs": "1.5"}],
    ]
    good = f'{{"ts": "2025-06-01T00:00:00Z", "values": {{"{metric}": 1.5}}}}'
    for d, doc in enumerate(hostile_docs):
        text = json.dumps(doc, ensure_ascii=False)
        for codec in ("utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be", "latin-1", "cp932"):
            try:
                yield Hostile("encoding", text.encode(codec), SENML if d == 3 else None)
            except UnicodeEncodeError:
                continue
    for codec in ("utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be", "utf-16", "utf-32"):
        encoded = good.encode(codec)
        yield Hostile("encoding", encoded[:-1])  # odd length: a unit cut in half
        yield Hostile("encoding", encoded + b"\x00")
        yield Hostile("encoding", b"\xef\xbb\xbf" + encoded)  # a UTF-8 BOM on UTF-16/32 text
    # Invalid UTF-8 at every interesting place: in the metric name, the timestamp, the unit, outside any string.
    bad_bytes = (b"\xff", b"\xfe", b"\xc0\x80", b"\xc3\x28", b"\xe6\xb0", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80")
    for i, junk in enumerate(bad_bytes):
        m = metric.encode()
        yield Hostile("encoding", b'{"values": {"' + m + junk + b'": 1.5}}')
        yield Hostile("encoding", b'{"values": {"' + junk + m + b'": 1.5}}')
        yield Hostile("encoding", b'{"ts": "2025-06-01T00:00:00' + junk + b'Z", "values": {"' + m + b'": 1.5}}')
        yield Hostile("encoding", b'{"values": {"' + m + b'": {"v": 1.5, "u": "m' + junk + b'"}}}')
        yield Hostile("encoding", junk + good.encode())
        yield Hostile("encoding", good.encode() + junk)
        yield Hostile("encoding", b'[{"n": "' + m + junk + b'", "v": 1.5}]', SENML if i % 2 else None)
    latin1 = ("w\u00e4ter_level", "wasserh\u00f6he", "caf\u00e9", "\u00b5m", "\u00a5")
    for name in latin1:
        yield Hostile("encoding", f'{{"values": {{"{name}": 1.5}}}}'.encode("latin-1"))
        yield Hostile("encoding", f'{{"values": {{"{metric}": {{"v": 1.5, "u": "{name}"}}}}}}'.encode("latin-1"))
    boms = (b"\xef\xbb\xbf\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")
    for bom in boms:
        yield Hostile("encoding", bom + good.encode())  # a BOM that does not match the bytes that follow
        yield Hostile("encoding", bom)
    for at in (0, 1, 10, 20, len(good) - 1, len(good)):
        raw = good.encode()
        yield Hostile("encoding", raw[:at] + b"\x00" + raw[at:])
        yield Hostile("encoding", raw[:at] + b"\x00" * 16 + raw[at:])
    yield Hostile("encoding", b"\x00")
    yield Hostile("encoding", b"\x00" * 1024)
    for field_doc in (
        {"values": {metric + "\u0000": 1.5}},
        {"ts": "2025-06-01T00:00:00Z\u0000", "values": {metric: 1.5}},
        {"values": {metric: {"v": 1.5, "u": "m\u0000"}}},
        {"values": {metric: "\u0000"}},
        [{"n": metric + "\u0000", "v": 1.5}],
        [{"n": metric, "v": 1.5, "u": "\u0000"}],
    ):
        yield Hostile("encoding", _dumps(field_doc))


def _timestamps(metric: str) -> Iterator[Hostile]:
    for i, ts in enumerate(ABSURD_TIMESTAMPS):
        yield Hostile("timestamp", _dumps({"ts": ts, "values": {metric: 1.5}}))
        yield Hostile("timestamp", _dumps([{"ts": ts, "values": {metric: 1.5 + k / 10}} for k in range(3)]))
        yield Hostile("timestamp", _dumps({"ts": ts, "values": {metric: {"v": 150, "u": "cm"}}}), None)
        yield Hostile("timestamp", _dumps({"values": {metric: 1.5}, "ts": ts, "seq": i}), SENML if i % 7 == 0 else None)


def _senml(metric: str) -> Iterator[Hostile]:
    m = metric
    packs: list[list[object] | object] = [
        [],
        [{}],
        [{"bn": "urn:dev:x:"}],
        [{"bt": 1748736000}],
        [{"bn": "urn:dev:x:", "bt": 1748736000}],
        [{"bn": "urn:dev:x:", "bt": 1748736000, "bu": "m", "bver": 10}],
        [{"bn": "urn:dev:x:", "bt": 1748736000}, {"bt": 1748736060}],
        [{"bn": 5, "n": m, "v": 1}],
        [{"bn": None, "n": m, "v": 1}],
        [{"bt": "2025-06-01", "n": m, "v": 1}],
        [{"bu": 5, "n": m, "v": 1}],
        [{"bv": "1", "n": m, "v": 1}],
        [{"n": 5, "v": 1}],
        [{"n": None, "v": 1}],
        [{"n": [m], "v": 1}],
        [{"v": 1}],
        [{"bn": "urn:dev:x:", "v": 1}],
        [{"bn": "urn:dev:x/", "n": "", "v": 1}],
        [{"n": m + "/", "v": 1}],
        [{"n": "urn:dev:x:" + m + "s", "v": 1}],
        [{"n": m, "vs": "1.5"}],
        [{"n": m, "vb": True}],
        [{"n": m, "vd": "AQID"}],
        [{"n": m, "s": 12.5}],
        [{"n": m, "vs": "1.5", "vb": False, "vd": ""}],
        [{"n": m, "v": "1.5"}],
        [{"n": m, "v": None}],
        [{"n": m, "v": True}],
        [{"n": m, "v": [1]}],
        [{"n": m, "v": {"v": 1}}],
        [{"n": m, "v": 1, "u": 1}],
        [{"n": m, "v": 1, "u": ["m"]}],
        [{"n": m, "v": 1, "u": True}],
        [{"n": m, "v": 1, "u": "furlong"}],
        [{"n": m, "v": 1, "u": "%RH"}],
        [{"bu": "furlong", "n": m, "v": 1}],
        [{"n": m, "v": 1, "t": "60"}],
        [{"n": m, "v": 1, "t": None}],
        [{"n": m, "v": 1, "t": -1e8}],
        [{"n": m, "v": 1, "t": 1e6}],
        [{"n": m, "v": 1, "t": 2**28 - 1}],
        [{"n": m, "v": 1, "t": -(2**28) + 1}],
        [{"bt": 1e300, "n": m, "v": 1}],
        [{"bt": -1e300, "n": m, "v": 1}],
        [{"bt": 1e18, "n": m, "v": 1}],
        [{"bt": 2**28, "n": m, "v": 1}],
        [{"bt": 0, "n": m, "v": 1, "t": 2**28}],
        [{"bt": 4102444800, "n": m, "v": 1}],
        [{"bt": 1748736000, "n": m, "v": 1, "t": 1e300}],
        [{"bt": 1748736000, "n": m, "v": 1e9}],
        [{"bv": 1e9, "n": m, "v": 1}],
        [{"bv": -1e9, "n": m, "v": 1}],
        [1, "x", None, True, []],
        [[{"n": m, "v": 1}]],
        {"n": m, "v": 1},
        {"bn": "urn:dev:x:", "e": [{"n": m, "v": 1}]},
        "[]",
        None,
        [{"n": m, "v": 1, "ut": "x", "t": -1e8}],
        [{"bn": "urn:dev:x:", "n": m, "v": 1, "bver": "x", "t": 1e7}],
    ]
    for i, pack in enumerate(packs):
        body = _dumps(pack)
        yield Hostile("senml", body, SENML)
        yield Hostile("senml", body)  # detected from its fields, or decoded as native JSON and refused there
        yield Hostile("senml", body, "application/senml-json; charset=utf-8")
        if isinstance(pack, list) and pack:
            # the same refusal behind a base record
            yield Hostile("senml", _dumps([{"bn": f"urn:dev:seq{i}:", "bver": 10}, *pack]), SENML)


def _metric_names(metric: str) -> Iterator[Hostile]:
    for i, name in enumerate(ODD_METRIC_NAMES):
        yield Hostile("metric_name", _dumps({"values": {name: 1.5}}))
        yield Hostile("metric_name", _dumps({"ts": 1748736000 + i, "values": {name: {"v": 1.5, "u": "m"}}}))
        if _senml_metric(name) != metric:  # SenML keeps the name's last segment: "../water_level" is fine there
            yield Hostile("metric_name", _dumps([{"n": name, "v": 1.5}]), SENML)
            yield Hostile("metric_name", _dumps([{"bn": name, "n": "", "v": 1.5}]), SENML if i % 2 else None)
    # Unknown metrics of the right shape: a real device's metric, misspelt or belonging to another device type.
    for name in ("water_levels", "waterlevel", "rainfall_mm", "displacement", "tilt_x", "temperature", metric * 2):
        if name != metric:
            yield Hostile("metric_name", _dumps({"values": {name: 1.5}}))


def _senml_metric(name: str) -> str:
    for sep in ("/", ":", ";"):
        name = name.rsplit(sep, 1)[-1]
    return name


def _duplicate_keys(metric: str) -> Iterator[Hostile]:
    # JSON parsers disagree on duplicate keys; ours keeps the last. Every case ends with the hostile copy.
    m = metric
    for i, bad in enumerate(('"x"', "null", "true", "[]", "{}", "NaN", "1e400", '{"v": "1"}', '{"v": 1, "u": 5}')):
        yield Hostile("duplicate_keys", f'{{"values": {{"{m}": 1.5, "{m}": {bad}}}}}'.encode())
        yield Hostile("duplicate_keys", f'{{"values": {{"{m}": 1.5}}, "values": {bad}}}'.encode())
        if bad != "null":  # a null time means "when the hub received it": that reading would be fine
            ts = f'"ts": "2025-06-01T00:00:00Z", "ts": {bad}'
            yield Hostile("duplicate_keys", f'{{{ts}, "values": {{"{m}": 1.5}}}}'.encode())
        yield Hostile("duplicate_keys", f'{{"values": {{"{m}": {{"v": 1.5, "v": {bad}}}}}}}'.encode())
        yield Hostile("duplicate_keys", f'[{{"n": "{m}", "v": 1.5, "v": {bad}}}]'.encode(), SENML if i % 2 else None)
        yield Hostile("duplicate_keys", f'[{{"n": "{m}", "n": {bad}, "v": 1.5}}]'.encode(), SENML)
        if bad != "null":  # a null unit means "the canonical unit": that reading would be fine
            yield Hostile("duplicate_keys", f'{{"values": {{"{m}": {{"v": 1.5, "u": "m", "u": {bad}}}}}}}'.encode())


def hostile_corpus(metric: str, max_payload_bytes: int, seed: int = SEED) -> list[Hostile]:
    """Every family, unique payloads, in a fixed order; ``metric`` is a metric the receiving device really has."""
    rng = random.Random(seed)
    families = (
        _truncated(metric, rng),
        _oversized(metric, max_payload_bytes),
        _deep(metric),
        _wrong_types(metric),
        _non_finite(metric),
        _encodings(metric),
        _timestamps(metric),
        _senml(metric),
        _metric_names(metric),
        _duplicate_keys(metric),
    )
    seen: dict[bytes, Hostile] = {}
    for family in families:
        for item in family:
            ct = item.content_type
            if ct is None and rng.random() < 0.1:
                ct = rng.choice(_ODD_CONTENT_TYPES)
            if len(item.payload) <= MAX_SENDABLE:
                seen.setdefault(item.payload, Hostile(item.family, item.payload, ct))
    return list(seen.values())
