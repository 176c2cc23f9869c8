"""`mimamori api`'s app freezes its start-up heap (hub/compose.py: the garbage collector's full passes were the
items pages' tail)."""

from __future__ import annotations

import gc

from hub.compose import standalone_api
from mimamori.settings import Settings


def test_the_standalone_api_freezes_what_start_up_made() -> None:
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    try:
        app = standalone_api(Settings(database_url="postgresql://postgres@127.0.0.1:1/none", timescaledb="off"))  # type: ignore[arg-type]
        assert gc.get_freeze_count() > 1000  # the modules and the app: nothing is connected until start-up
        assert app.title == "Mimamori"
    finally:
        gc.unfreeze()  # the rest of the test run collects as usual
