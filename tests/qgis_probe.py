"""Reads the hub's OGC API – Features collections through QGIS's own OAPIF provider, as a QGIS user would.

Run by the system Python that PyQGIS is built for (Debian's python3 with python3-qgis), not the project's
interpreter: ``python3 tests/qgis_probe.py URL KEY PAGE_SIZE NAME...``. Prints one JSON line: for each collection,
whether QGIS made a valid layer of it, its fields, geometry type and features (id and attributes). The key goes in
a Basic authentication configuration (QGIS 3.22, Debian's, has no "API header" method): the password is the key.
"""

import faulthandler
import json
import os
import sys
import tempfile

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # no display here
os.environ.setdefault("QGIS_AUTH_DB_DIR_PATH", tempfile.mkdtemp(prefix="qgis-auth-"))

from qgis.core import (  # after the environment above
    Qgis,
    QgsApplication,
    QgsAuthMethodConfig,
    QgsDataSourceUri,
    QgsVectorLayer,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import QDate, QDateTime, Qt


def plain(value: object) -> object:
    """A QGIS attribute as JSON: NULL as null, dates as ISO 8601."""
    if value is None or (hasattr(value, "isNull") and value.isNull()):
        return None
    if isinstance(value, (QDateTime, QDate)):
        return value.toString(Qt.ISODate)
    return value if isinstance(value, (int, float, str, bool)) else str(value)


def main() -> None:
    faulthandler.enable()
    url, key, page_size, names = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    QgsApplication.setPrefixPath(os.environ.get("QGIS_PREFIX_PATH", "/usr"), True)  # where its providers live
    app = QgsApplication([], False)
    app.initQgis()
    log: list[str] = []  # QGIS's message log: why a layer is invalid
    QgsApplication.messageLog().messageReceived.connect(lambda text, tag, _level: log.append(f"{tag}: {text}"))
    auth = QgsApplication.authManager()
    auth.setMasterPassword("probe", True)
    config = QgsAuthMethodConfig("Basic")
    config.setName("mimamori")
    config.setConfig("username", "key")
    config.setConfig("password", key)
    assert auth.storeAuthenticationConfig(config)[0], "could not store the authentication configuration"

    layers: dict[str, object] = {}
    for name in names:
        uri = QgsDataSourceUri()
        uri.setParam("url", url)
        uri.setParam("typename", name)
        uri.setParam("pageSize", page_size)  # small pages: QGIS must follow the "next" links
        uri.setAuthConfigId(config.id())
        layer = QgsVectorLayer(uri.uri(False), name, "OAPIF")
        if not layer.isValid():
            layers[name] = {"valid": False, "log": log[-5:]}
            continue
        fields = [f.name() for f in layer.fields()]
        features = [
            {"geometry": QgsWkbTypes.displayString(f.geometry().wkbType()) if f.hasGeometry() else None}
            | {k: plain(v) for k, v in zip(fields, f.attributes(), strict=True)}
            for f in layer.getFeatures()
        ]
        layers[name] = {"valid": True, "fields": fields, "features": features}
    print(json.dumps({"qgis": Qgis.version(), "layers": layers}), flush=True)
    os._exit(0)  # PyQGIS 3.22 can crash in its own teardown with layers alive; there is nothing left to do


if __name__ == "__main__":
    main()
