"""The citizens' page at /public: server-rendered from opendata's public snapshot (published data only), in seven
languages from one translations file a city edits, readable without JavaScript and kept offline by a service worker.
Pure logic (languages, the view, HTML) in :mod:`api.public.page`; the routes in api/routes/public.py;
docs/citizens-page.md."""

from pathlib import Path

PUBLIC_DIR = Path(__file__).parent
TRANSLATIONS = PUBLIC_DIR / "translations.yaml"

__all__ = ["PUBLIC_DIR", "TRANSLATIONS"]
