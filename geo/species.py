"""Tree species names: the register's own value (スギ) found from any name a user may type (杉, sugi, Japanese cedar).

One table, `geo/species.yaml` (or the file MIMAMORI_STANDS_SPECIES_NAMES names), is the only place names live.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import yaml

from mimamori.errors import ConfigError

_SEPARATORS = re.compile(r"[\s\-_‐・]+")


def fold(name: str) -> str:
    """How names are compared: full-width folded (NFKC), case-insensitive, spaces and hyphens ignored."""
    return _SEPARATORS.sub("", unicodedata.normalize("NFKC", name).casefold())


@dataclass(frozen=True)
class SpeciesNames:
    """Register value per folded name; ``names`` keeps every value's names for messages and docs."""

    by_name: dict[str, str]
    names: dict[str, tuple[str, ...]]

    @classmethod
    def from_mapping(cls, data: object, source: str) -> SpeciesNames:
        table = data.get("species") if isinstance(data, dict) else None
        if not isinstance(table, dict) or not table:
            raise ConfigError(f"species names {source}: expected a 'species' mapping of register value to names")
        by_name: dict[str, str] = {}
        names: dict[str, tuple[str, ...]] = {}
        for value, others in table.items():
            if not isinstance(others, list) or not all(isinstance(o, str) for o in others):
                raise ConfigError(f"species names {source}: {value!r} needs a list of names")
            names[str(value)] = (str(value), *others)
            for name in names[str(value)]:
                key = fold(name)
                if by_name.get(key, value) != value:
                    raise ConfigError(f"species names {source}: {name!r} names both {by_name[key]} and {value}")
                by_name[key] = str(value)
        return cls(by_name, names)

    def register_value(self, name: str) -> str | None:
        """The register's value for a name, or None when the table does not know it."""
        return self.by_name.get(fold(name))

    def accepted(self) -> str:
        """Every accepted name, grouped by register value, for an error message."""
        return "; ".join(f"{value} ({', '.join(names[1:])})" for value, names in self.names.items())


@lru_cache(maxsize=4)
def load_species_names(path: str | None = None) -> SpeciesNames:
    """The table in ``path``, or the one shipped with the hub."""
    if path is None:
        text, source = resources.files("geo").joinpath("species.yaml").read_text("utf-8"), "geo/species.yaml"
    else:
        try:
            text, source = Path(path).read_text("utf-8"), path
        except OSError as exc:
            raise ConfigError(f"cannot read species names {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"species names {source} is not valid YAML: {exc}") from None
    return SpeciesNames.from_mapping(data, source)
