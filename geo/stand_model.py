"""The forest stand (林小班) model and the mapping of a register row onto it. Pure: values in, values out."""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from shapely.geometry.base import BaseGeometry

from mimamori.errors import ConfigError

OWNERSHIPS = ("national", "prefectural", "municipal", "property_ward", "private")

INT_FIELDS = ("rinpan", "rinpan_branch", "shohan", "shohan_branch", "age_1", "age_2", "age_3")
INT_FIELDS_OPTIONAL = ("age_reference_year", "age_class", "site_index")
FLOAT_FIELDS = ("area_ha", "volume_m3", "height_m", "slope_deg", "elevation_m")
TEXT_FIELDS = ("species_1", "species_2", "species_3", "forest_type", "density")
MAPPED_FIELDS = ("stand_id", *INT_FIELDS, *INT_FIELDS_OPTIONAL, *FLOAT_FIELDS, *TEXT_FIELDS, "ownership")


@dataclass(frozen=True)
class Stand:
    """One sub-compartment (林小班) of a stand register, geometry in EPSG:4326."""

    stand_id: str
    rinpan: int
    shohan: int
    geom: BaseGeometry
    rinpan_branch: int = 0
    shohan_branch: int = 0
    species_1: str | None = None
    species_2: str | None = None
    species_3: str | None = None
    age_1: int | None = None
    age_2: int | None = None
    age_3: int | None = None
    age_reference_year: int | None = None
    age_class: int | None = None
    area_ha: float | None = None
    volume_m3: float | None = None
    forest_type: str | None = None
    ownership: str | None = None
    protection_forest: tuple[str, ...] = ()
    site_index: int | None = None
    density: str | None = None
    height_m: float | None = None
    slope_deg: float | None = None
    elevation_m: float | None = None
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Rejection:
    """A register row that was not imported, and why."""

    row: int  # 1-based, in file order
    stand_id: str | None
    reason: str


@dataclass(frozen=True)
class ColumnMap:
    """Which source columns feed which stand field, and how ownership values read."""

    columns: dict[str, tuple[str, ...]]
    protection_forest_columns: tuple[str, ...]
    ownership_values: dict[str, str]  # folded register value -> model value

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> ColumnMap:
        columns = data.get("columns") or {}
        unknown = set(columns) - set(MAPPED_FIELDS)
        if unknown:
            raise ConfigError(f"column map names unknown stand fields: {', '.join(sorted(unknown))}")
        owner_map: dict[str, str] = {}
        for kind, values in (data.get("ownership_values") or {}).items():
            if kind not in OWNERSHIPS:
                raise ConfigError(f"column map: unknown ownership kind {kind!r}; use one of {', '.join(OWNERSHIPS)}")
            for v in values:
                owner_map[fold(str(v))] = kind
        return cls(
            columns={k: tuple(fold(str(c)) for c in v) for k, v in columns.items()},
            protection_forest_columns=tuple(fold(str(c)) for c in data.get("protection_forest_columns") or ()),
            ownership_values=owner_map,
        )

    @classmethod
    def load(cls, path: Path | None = None) -> ColumnMap:
        """The given YAML column map, or the default one shipped with the hub."""
        if path is None:
            text = resources.files("geo").joinpath("stand_columns.yaml").read_text("utf-8")
        else:
            try:
                text = path.read_text("utf-8")
            except OSError as exc:
                raise ConfigError(f"cannot read column map {path}: {exc.strerror}") from None
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"column map {path or 'default'} is not valid YAML: {exc}") from None
        return cls.from_mapping(data)


def fold(name: str) -> str:
    """Column names and register values compare after NFKC (full-width → ASCII), trimming and lower-casing."""
    return unicodedata.normalize("NFKC", name).strip().lower()


def stand_id_of(rinpan: int, shohan: int, rinpan_branch: int = 0, shohan_branch: int = 0) -> str:
    """林班[.枝番]-小班[.枝番]: '12-3', '12-3.1', '12.2-3'."""
    left = f"{rinpan}.{rinpan_branch}" if rinpan_branch else str(rinpan)
    right = f"{shohan}.{shohan_branch}" if shohan_branch else str(shohan)
    return f"{left}-{right}"


def age_class_of(age: int) -> int:
    """齢級: class I is ages 1–5, II is 6–10, … (age 0, a fresh planting, counts as class I)."""
    return max(1, (age - 1) // 5 + 1)


class _Bad(ValueError):
    pass


def _blank(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def _number(value: object, name: str) -> float | None:
    if _blank(value):
        return None
    if isinstance(value, bool):
        raise _Bad(f"{name} is not a number: {value!r}")
    if isinstance(value, int | float):
        number = float(value)
    else:
        text = fold(str(value)).replace(",", "")
        try:
            number = float(text)
        except ValueError:
            raise _Bad(f"{name} is not a number: {value!r}") from None
    if not math.isfinite(number):
        raise _Bad(f"{name} is not a finite number: {value!r}")
    return number


def _integer(value: object, name: str) -> int | None:
    number = _number(value, name)
    if number is None:
        return None
    if number != int(number):
        raise _Bad(f"{name} is not a whole number: {value!r}")
    return int(number)


def _text(value: object) -> str | None:
    if _blank(value):
        return None
    return unicodedata.normalize("NFKC", str(value)).strip()


_SPLIT = re.compile(r"[・,，/;；、\s]+")


def parse_row(row_number: int, row: Mapping[str, object], geom: BaseGeometry, columns: ColumnMap) -> Stand | Rejection:
    """Map one register row (source column name → value) onto a Stand, or say why it cannot be."""
    folded = {fold(str(k)): v for k, v in row.items()}
    used: set[str] = set()

    def pick(field_name: str) -> object:
        for candidate in columns.columns.get(field_name, ()):
            if candidate in folded:
                used.add(candidate)
                return folded[candidate]
        return None

    raw = {name: pick(name) for name in MAPPED_FIELDS}
    given_id = _text(raw["stand_id"])
    try:
        ints = {name: _integer(raw[name], name) for name in (*INT_FIELDS, *INT_FIELDS_OPTIONAL)}
        floats = {name: _number(raw[name], name) for name in FLOAT_FIELDS}
    except _Bad as exc:
        return Rejection(row_number, given_id, str(exc))
    texts = {name: _text(raw[name]) for name in TEXT_FIELDS}

    rinpan, shohan = ints["rinpan"], ints["shohan"]
    if rinpan is None or shohan is None:
        missing = " and ".join(n for n, v in (("林班 (rinpan)", rinpan), ("小班 (shohan)", shohan)) if v is None)
        return Rejection(row_number, given_id, f"missing {missing}")
    rinpan_branch = ints["rinpan_branch"] or 0
    shohan_branch = ints["shohan_branch"] or 0
    for name in ("rinpan", "shohan", "rinpan_branch", "shohan_branch", "age_1", "age_2", "age_3"):
        value = ints[name]
        if value is not None and value < 0:
            return Rejection(row_number, given_id, f"{name} is negative: {value}")
    for name in ("area_ha", "volume_m3", "height_m"):
        value = floats[name]
        if value is not None and value < 0:
            return Rejection(row_number, given_id, f"{name} is negative: {value}")
    slope = floats["slope_deg"]
    if slope is not None and not 0 <= slope <= 90:
        return Rejection(row_number, given_id, f"slope_deg must be 0–90°, got {slope}")
    stand_id = given_id or stand_id_of(rinpan, shohan, rinpan_branch, shohan_branch)

    ownership = None
    owner_raw = _text(raw["ownership"])
    if owner_raw is not None:
        ownership = columns.ownership_values.get(fold(owner_raw))
        if ownership is None:
            return Rejection(row_number, stand_id, f"unknown ownership {owner_raw!r} (extend ownership_values)")

    protection: list[str] = []
    for candidate in columns.protection_forest_columns:
        if candidate in folded:
            used.add(candidate)
            text = _text(folded[candidate])
            if text and text not in ("なし", "無", "-", "none"):
                protection.extend(p for p in _SPLIT.split(text) if p and p not in protection)

    age_class = ints["age_class"]
    if age_class is None and ints["age_1"] is not None:
        age_class = age_class_of(ints["age_1"])
    if age_class is not None and age_class < 1:
        return Rejection(row_number, stand_id, f"age_class must be at least 1, got {age_class}")

    others = {str(k): _jsonable(v) for k, v in row.items() if fold(str(k)) not in used and not _blank(v)}
    return Stand(
        stand_id=stand_id,
        rinpan=rinpan,
        shohan=shohan,
        rinpan_branch=rinpan_branch,
        shohan_branch=shohan_branch,
        geom=geom,
        species_1=texts["species_1"],
        species_2=texts["species_2"],
        species_3=texts["species_3"],
        age_1=ints["age_1"],
        age_2=ints["age_2"],
        age_3=ints["age_3"],
        age_reference_year=ints["age_reference_year"],
        age_class=age_class,
        area_ha=floats["area_ha"],
        volume_m3=floats["volume_m3"],
        forest_type=texts["forest_type"],
        ownership=ownership,
        protection_forest=tuple(protection),
        site_index=ints["site_index"],
        density=texts["density"],
        height_m=floats["height_m"],
        slope_deg=slope,
        elevation_m=floats["elevation_m"],
        attributes=others,
    )


def _jsonable(value: object) -> object:
    if isinstance(value, str | int | float | bool):
        return value
    # numpy scalars, dates and the like: their item() or their text
    item = getattr(value, "item", None)
    if callable(item):
        got = item()
        if isinstance(got, str | int | float | bool):
            return got
    return str(value)
