"""The built-in web map: static assets (``static/``, ``vendor/``) and its synthetic base layers."""

from pathlib import Path

from api.web.basemap import ATTRIBUTION, synthetic_basemap

WEB_ROOT = Path(__file__).parent
STATIC_DIR = WEB_ROOT / "static"
VENDOR_DIR = WEB_ROOT / "vendor"

__all__ = ["ATTRIBUTION", "STATIC_DIR", "VENDOR_DIR", "WEB_ROOT", "synthetic_basemap"]
