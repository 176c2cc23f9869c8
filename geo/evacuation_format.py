"""The standard open-data set format of evacuation sites (指定緊急避難場所一覧, 指定避難所一覧): CSV bytes in, validated
sites and row rejections out, and sites back to CSV with the same headers in the same order. Pure: no database.

The column lists live in geo/evacuation_columns.yaml, not here. Every data row becomes an EvacuationSite or a
SiteRejection with its reason; only blank rows (every cell empty) are skipped.
"""

from __future__ import annotations

import codecs
import csv
import io
import math
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from mimamori.errors import ConfigError, ValidationError

KINDS = ("emergency_site", "shelter")
HAZARDS = ("flood", "landslide", "storm_surge", "earthquake", "tsunami", "large_fire", "inland_flood", "volcano")
MAPPED_FIELDS = ("municipality_code", "site_no", "name", "name_kana", "name_en", "address", "lat", "lon")
MAPPED_FIELDS += ("elevation_m", "phone", "capacity")

# Japan with its outlying islands (Okinotorishima 20.4°N, Etorofu 45.6°N, Yonaguni 122.9°E, Minamitorishima 154.0°E).
JAPAN_LAT = (20.0, 46.0)
JAPAN_LON = (122.0, 154.1)
ELEVATION_M = (-100.0, 4000.0)  # below the lowest polder, above Fuji (3776 m)
MAX_CAPACITY = 10_000_000
MAX_CELL_CHARS = 4000  # a longer cell rejects its row: no real 名称 or 備考 is this long
CSV_FIELD_LIMIT = 1 << 20  # a cell beyond this refuses the whole file (the csv module cannot resynchronise)
MAX_FILE_BYTES = 64 << 20
DEFAULT_MUNICIPALITY = "232114"  # Toyota City
_SITE_NO = re.compile(r"^[0-9A-Za-z_.\-]{1,64}$")
_PLAIN_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
# OWASP CSV injection: a cell starting with one of these is a formula to Excel / LibreOffice.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def fold(text: str) -> str:
    """Headers and flag values compare after NFKC (full-width → ASCII) and trimming."""
    return unicodedata.normalize("NFKC", text).strip()


@dataclass(frozen=True)
class EvacuationSite:
    """One row of either list; coordinates in EPSG:4326 (the set's JGD2011 degrees, equal to WGS 84 within cm)."""

    id: str
    kind: str
    name: str
    lon: float
    lat: float
    municipality_code: str
    site_no: str
    name_kana: str | None = None
    name_en: str | None = None
    address: str | None = None
    phone: str | None = None
    hazards: tuple[str, ...] = ()  # in HAZARDS order
    capacity: int | None = None
    elevation_m: float | None = None
    attributes: dict[str, str] = field(default_factory=dict)  # every other non-empty cell, by its header
    headers: tuple[str, ...] = ()  # the file's headers, in order, for writing it back


@dataclass(frozen=True)
class SiteRejection:
    row: int  # 1-based data row, in file order
    site_id: str | None
    reason: str


@dataclass(frozen=True)
class ParsedSites:
    kind: str
    encoding: str
    headers: tuple[str, ...]
    rows: int
    sites: list[EvacuationSite]
    rejections: list[SiteRejection]


@dataclass(frozen=True)
class KindSpec:
    title: str
    headers: tuple[str, ...]
    marks: tuple[str, ...]


@dataclass(frozen=True)
class EvacuationColumns:
    """The two lists' headers, which headers feed which field and hazard, and the flag values."""

    kinds: dict[str, KindSpec]
    fields: dict[str, tuple[str, ...]]
    hazards: dict[str, tuple[str, ...]]
    yes_values: frozenset[str]
    no_values: frozenset[str]
    hazard_yes: str

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> EvacuationColumns:
        kinds = data.get("kinds") or {}
        if set(kinds) != set(KINDS):
            raise ConfigError(f"evacuation columns: kinds must be exactly {', '.join(KINDS)}")
        fields = data.get("fields") or {}
        if set(fields) != set(MAPPED_FIELDS):
            raise ConfigError(f"evacuation columns: fields must be exactly {', '.join(MAPPED_FIELDS)}")
        hazards = data.get("hazards") or {}
        if set(hazards) != set(HAZARDS):
            raise ConfigError(f"evacuation columns: hazards must be exactly {', '.join(HAZARDS)}")
        values = data.get("hazard_values") or {}
        yes = frozenset(fold(str(v)) for v in values.get("yes") or ())
        no = frozenset(fold(str(v)) for v in values.get("no") or ())
        if not yes or yes & no:
            raise ConfigError("evacuation columns: hazard_values needs yes values, none of them also a no value")
        return cls(
            kinds={
                k: KindSpec(str(v["title"]), tuple(map(str, v["headers"])), tuple(map(str, v.get("marks") or ())))
                for k, v in kinds.items()
            },
            fields={k: tuple(map(str, v)) for k, v in fields.items()},
            hazards={k: tuple(map(str, hazards[k])) for k in HAZARDS},
            yes_values=yes,
            no_values=no,
            hazard_yes=str(data.get("hazard_yes", "1")),
        )

    @classmethod
    def load(cls, path: Path | None = None) -> EvacuationColumns:
        """The given YAML file, or geo/evacuation_columns.yaml."""
        if path is None:
            text = resources.files("geo").joinpath("evacuation_columns.yaml").read_text("utf-8")
        else:
            try:
                text = path.read_text("utf-8")
            except OSError as exc:
                raise ConfigError(f"cannot read evacuation columns {path}: {exc.strerror}") from None
        try:
            return cls.from_mapping(yaml.safe_load(text) or {})
        except (yaml.YAMLError, KeyError, TypeError) as exc:
            raise ConfigError(f"evacuation columns {path or 'default'} are not valid: {exc}") from None

    def resolve(self, headers: Sequence[str]) -> tuple[dict[str, str], dict[str, str]]:
        """Which of ``headers`` feeds each field and each hazard (absent ones left out)."""
        present = {fold(h): h for h in reversed(headers)}  # the first of two equal folds wins

        def first(names: tuple[str, ...]) -> str | None:
            return next((present[fold(n)] for n in names if fold(n) in present), None)

        fields = {f: h for f, names in self.fields.items() if (h := first(names)) is not None}
        hazards = {z: h for z, names in self.hazards.items() if (h := first(names)) is not None}
        return fields, hazards

    def detect_kind(self, headers: Sequence[str]) -> str | None:
        folded = {fold(h) for h in headers}
        found = [k for k, spec in self.kinds.items() if any(fold(m) in folded for m in spec.marks)]
        return found[0] if len(found) == 1 else None


def municipality_code(text: str) -> str | None:
    """A 6-digit 全国地方公共団体コード, repairing a lost leading zero or a missing check digit; None if not one."""
    digits = fold(text)
    if not digits.isascii() or not digits.isdigit():
        return None

    def check_digit(five: str) -> str:
        total = sum(int(d) * w for d, w in zip(five, (6, 5, 4, 3, 2), strict=True))
        return str((11 - total % 11) % 10)

    def valid(six: str) -> bool:
        return 1 <= int(six[:2]) <= 47 and check_digit(six[:5]) == six[5]

    if len(digits) == 6:
        candidates = [digits]
    elif len(digits) == 5:  # a lost leading zero (92011 → 092011) or no check digit (23211 → 232114)
        candidates = ["0" + digits, digits + check_digit(digits)]
    elif len(digits) == 4:  # both (1100 → 011002)
        candidates = ["0" + digits + check_digit("0" + digits)]
    else:
        return None
    return next((six for six in candidates if valid(six)), None)


def decode(data: bytes, encoding: str | None = None) -> tuple[str, str]:
    """The text and the encoding used: ``encoding`` if given, else UTF-8 (BOM or not), else cp932 (Shift_JIS)."""
    if encoding:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise ValidationError(f"unknown encoding {encoding!r} (use utf-8, utf-8-sig or cp932)") from None
        try:
            return data.decode(encoding).removeprefix("\ufeff"), encoding
        except UnicodeDecodeError as exc:
            raise ValidationError(f"cannot decode as {encoding}: byte {exc.start}") from None
    if data.startswith(codecs.BOM_UTF8):
        try:
            return data[len(codecs.BOM_UTF8) :].decode("utf-8"), "utf-8-sig"
        except UnicodeDecodeError as exc:
            raise ValidationError(f"starts with a UTF-8 BOM but is not UTF-8: byte {exc.start}") from None
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp932"), "cp932"
    except UnicodeDecodeError:
        raise ValidationError("neither UTF-8 nor Shift_JIS (cp932); pass --encoding") from None


@contextmanager
def _csv_field_limit(limit: int) -> Iterator[None]:
    # The csv module's limit is process-wide; raised for this read only.
    before = csv.field_size_limit()
    csv.field_size_limit(max(before, limit))
    try:
        yield
    finally:
        csv.field_size_limit(before)


def _runs_as_formula(cell: str) -> bool:
    """Whether a spreadsheet would run ``cell`` (OWASP's list), or it is such a cell already quoted once or more
    (so that quoting stays reversible: ``'=A1`` is written ``''=A1``)."""
    body = cell.lstrip("'")
    return body.startswith(_FORMULA_START) and not _PLAIN_NUMBER.match(body)


def neutralise(cell: str) -> str:
    """OWASP's CSV-injection defence: a cell a spreadsheet would run as a formula gets a leading quote.

    Plain numbers (a negative 標高) are left alone: a spreadsheet reads them as numbers, never as formulas.
    """
    return "'" + cell if _runs_as_formula(cell) else cell


def unneutralise(cell: str) -> str:
    """Undo `neutralise` on import: the quote it put before a formula is dropped again."""
    return cell[1:] if cell.startswith("'") and _runs_as_formula(cell[1:]) else cell


def _float(text: str) -> float | None:
    try:
        value = float(fold(text))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _capacity(text: str) -> int | str | None:
    folded = fold(text).replace(",", "").removesuffix("人").strip()
    if not folded:
        return None
    if not folded.isascii() or not folded.isdigit() or int(folded) > MAX_CAPACITY:
        return f"bad 想定収容人数 {text[:40]!r} (a whole number of people)"
    return int(folded)


def parse_csv(
    data: bytes,
    *,
    kind: str | None = None,
    encoding: str | None = None,
    columns: EvacuationColumns | None = None,
    default_municipality: str = DEFAULT_MUNICIPALITY,
) -> ParsedSites:
    """Parse one list. ``kind`` is read from the headers when not given (ValidationError if they do not tell)."""
    columns = columns or EvacuationColumns.load()
    if kind is not None and kind not in KINDS:
        raise ValidationError(f"unknown kind {kind!r}; use {' or '.join(KINDS)}")
    if len(data) > MAX_FILE_BYTES:
        raise ValidationError(f"file is {len(data)} bytes; the limit is {MAX_FILE_BYTES}")
    default_code = municipality_code(default_municipality)
    if default_code is None:
        raise ValidationError(f"--municipality {default_municipality!r} is not a 全国地方公共団体コード")
    text, used = decode(data, encoding)
    with _csv_field_limit(CSV_FIELD_LIMIT):
        try:
            table = list(csv.reader(io.StringIO(text, newline="")))
        except csv.Error as exc:
            raise ValidationError(f"not readable as CSV: {exc}") from None
    while table and not any(c.strip() for c in table[0]):
        table.pop(0)
    if not table:
        raise ValidationError("empty file: no header row")
    headers = tuple(h.strip() for h in table[0])
    folded = [fold(h) for h in headers]
    if any(not h for h in folded) or len(set(folded)) != len(folded):
        raise ValidationError("the header row has an empty or repeated column name")
    fields, hazards = columns.resolve(headers)
    for needed, label in (("name", "名称"), ("lat", "緯度"), ("lon", "経度")):
        if needed not in fields:
            raise ValidationError(f"no {label} column (headers: {', '.join(h[:40] for h in headers[:12])})")
    kind = kind or columns.detect_kind(headers)
    if kind is None:
        raise ValidationError("cannot tell from the headers whether these are emergency sites or shelters; pass --kind")
    used_headers = set(fields.values()) | set(hazards.values())

    sites: list[EvacuationSite] = []
    rejections: list[SiteRejection] = []
    first_row: dict[str, int] = {}
    rows = 0
    for cells in table[1:]:
        if not any(c.strip() for c in cells):
            continue  # blank line
        rows += 1
        parsed = _parse_row(rows, cells, headers, kind, fields, hazards, used_headers, columns, default_code, first_row)
        if isinstance(parsed, SiteRejection):
            rejections.append(parsed)
        else:
            first_row[parsed.id] = rows
            sites.append(parsed)
    return ParsedSites(kind, used, headers, rows, sites, rejections)


def _parse_row(
    row: int,
    cells: list[str],
    headers: tuple[str, ...],
    kind: str,
    fields: dict[str, str],
    hazards: dict[str, str],
    used_headers: set[str],
    columns: EvacuationColumns,
    default_code: str,
    first_row: dict[str, int],
) -> EvacuationSite | SiteRejection:
    if len(cells) > len(headers):
        return SiteRejection(row, None, f"{len(cells)} cells but {len(headers)} headers")
    for header, cell in zip(headers, cells, strict=False):
        if len(cell) > MAX_CELL_CHARS:
            return SiteRejection(row, None, f"{header} is {len(cell)} characters long (limit {MAX_CELL_CHARS})")
        if "\x00" in cell:
            return SiteRejection(row, None, f"{header} holds a NUL character")
    values = {h: unneutralise(c.strip()) for h, c in zip(headers, [*cells, *[""] * len(headers)], strict=False)}

    def get(name: str) -> str:
        header = fields.get(name)
        return values[header] if header is not None else ""

    raw_code = get("municipality_code")
    code = municipality_code(raw_code) if raw_code else default_code
    if code is None:
        return SiteRejection(row, None, f"bad 全国地方公共団体コード {raw_code[:20]!r}")
    site_no = fold(get("site_no")) or str(row)  # no ID/NO column: the row number (stable while the file is)
    if not _SITE_NO.match(site_no):
        return SiteRejection(row, None, f"bad ID {site_no[:40]!r} (letters, digits, _ . - only)")
    site_id = f"{code}-{kind}-{site_no}"
    if site_id in first_row:
        return SiteRejection(row, site_id, f"duplicate ID {site_no} (first at row {first_row[site_id]})")
    name = get("name")
    if not name:
        return SiteRejection(row, site_id, "missing 名称 (the site's name)")

    lat_text, lon_text = get("lat"), get("lon")
    if not lat_text or not lon_text:
        return SiteRejection(row, site_id, "missing 緯度/経度 (coordinates)")
    lat, lon = _float(lat_text), _float(lon_text)
    if lat is None or lon is None:
        return SiteRejection(row, site_id, f"bad 緯度/経度 {lat_text[:30]!r}, {lon_text[:30]!r} (decimal degrees)")
    if not (JAPAN_LAT[0] <= lat <= JAPAN_LAT[1] and JAPAN_LON[0] <= lon <= JAPAN_LON[1]):
        swapped = JAPAN_LAT[0] <= lon <= JAPAN_LAT[1] and JAPAN_LON[0] <= lat <= JAPAN_LON[1]
        hint = "; 緯度 and 経度 swapped?" if swapped else ""
        return SiteRejection(row, site_id, f"緯度 {lat}, 経度 {lon} is outside Japan{hint}")

    designated: list[str] = []
    for hazard in HAZARDS:
        header = hazards.get(hazard)
        if header is None:
            continue
        flag = fold(values[header])
        if flag in columns.yes_values:
            designated.append(hazard)
        elif flag not in columns.no_values:
            return SiteRejection(
                row, site_id, f"{header}: unknown value {flag[:20]!r} (1 or ○: designated; empty: not)"
            )

    capacity = _capacity(get("capacity"))
    if isinstance(capacity, str):
        return SiteRejection(row, site_id, capacity)
    elevation: float | None = None
    if elevation_text := get("elevation_m"):
        elevation = _float(elevation_text)
        if elevation is None or not ELEVATION_M[0] <= elevation <= ELEVATION_M[1]:
            return SiteRejection(row, site_id, f"bad 標高 {elevation_text[:30]!r} (metres)")

    return EvacuationSite(
        id=site_id,
        kind=kind,
        name=name,
        lon=lon,
        lat=lat,
        municipality_code=code,
        site_no=site_no,
        name_kana=get("name_kana") or None,
        name_en=get("name_en") or None,
        address=get("address") or None,
        phone=get("phone") or None,
        hazards=tuple(designated),
        capacity=capacity,
        elevation_m=elevation,
        attributes={h: v for h, v in values.items() if h not in used_headers and v},
        headers=headers,
    )


def export_headers(sites: Sequence[EvacuationSite], kind: str, columns: EvacuationColumns) -> tuple[str, ...]:
    """The headers of the sites' own file when they all came from one layout, else the standard's for ``kind``
    followed by any other attribute seen (sorted)."""
    layouts = {s.headers for s in sites}
    if len(layouts) == 1 and (only := next(iter(layouts))):
        return only
    standard = columns.kinds[kind].headers
    extra = sorted({h for s in sites for h in s.attributes} - set(standard))
    return (*standard, *extra)


def site_row(site: EvacuationSite, headers: Sequence[str], columns: EvacuationColumns) -> list[str]:
    """One site as the cells of ``headers`` (not yet neutralised)."""
    fields, hazards = columns.resolve(headers)
    by_header = {h: "" for h in headers}
    values: dict[str, str] = {
        "municipality_code": site.municipality_code,
        "site_no": site.site_no,
        "name": site.name,
        "name_kana": site.name_kana or "",
        "name_en": site.name_en or "",
        "address": site.address or "",
        "lat": repr(site.lat),
        "lon": repr(site.lon),
        "elevation_m": "" if site.elevation_m is None else repr(site.elevation_m),
        "phone": site.phone or "",
        "capacity": "" if site.capacity is None else str(site.capacity),
    }
    for header in headers:
        by_header[header] = site.attributes.get(header, "")
    for name, header in fields.items():
        by_header[header] = values[name]
    for hazard, header in hazards.items():
        by_header[header] = columns.hazard_yes if hazard in site.hazards else ""
    return [by_header[h] for h in headers]


def write_csv(
    sites: Iterable[EvacuationSite],
    *,
    kind: str,
    columns: EvacuationColumns | None = None,
    bom: bool = False,
    headers: Sequence[str] | None = None,
) -> bytes:
    """The sites as a list of ``kind`` in UTF-8 (with a BOM if ``bom``: Excel in Japan then reads it as UTF-8),
    every cell quoted and formula-like cells neutralised (OWASP). Rows in the order given."""
    if kind not in KINDS:
        raise ValidationError(f"unknown kind {kind!r}; use {' or '.join(KINDS)}")
    columns = columns or EvacuationColumns.load()
    chosen = [s for s in sites if s.kind == kind]
    out_headers = tuple(headers) if headers is not None else export_headers(chosen, kind, columns)
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    writer.writerow([neutralise(h) for h in out_headers])
    for site in chosen:
        writer.writerow([neutralise(c) for c in site_row(site, out_headers, columns)])
    text = buffer.getvalue()
    return (codecs.BOM_UTF8 if bom else b"") + text.encode("utf-8")
