"""The warning levels as the map shows them, from the national level table (alerts/levels.yaml): colour and names."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Any

import yaml

from mimamori.errors import ConfigError

_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")


@cache
def map_levels() -> dict[str, dict[str, Any]]:
    """Level ("0" normal … "5") -> {"color": "#rrggbb", "en": …, "ja": …} (level 0 has a colour only)."""
    doc = yaml.safe_load(resources.files("alerts").joinpath("levels.yaml").read_text("utf-8"))
    colors = {str(k): v for k, v in (doc.get("colors") or {}).items()}
    well_formed = all(isinstance(c, str) and _HEX.match(c) for c in colors.values())
    if set(colors) != {str(n) for n in range(6)} or not well_formed:
        raise ConfigError("alerts/levels.yaml: colors must give a #rrggbb colour for each level 0-5")
    names = {str(k): v for k, v in doc["levels"].items()}
    return {
        n: {"color": c, **({"en": names[n]["en"], "ja": names[n]["ja"]} if n in names else {})}
        for n, c in sorted(colors.items())
    }
