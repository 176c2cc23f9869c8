"""The `mimamori` command groups, one module each."""

from __future__ import annotations

from rich.markup import escape


def plain(value: object) -> str:
    """``value`` as text Rich prints as written: "[m]" or "mimamori[grafana]" would be read as markup and dropped."""
    return "" if value is None else escape(str(value))
