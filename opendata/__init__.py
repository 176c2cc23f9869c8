"""Open data: which of the hub's data anyone may read without a key (datasets a tenant chose to publish), the rule
of who may publish, what the public sees now (the citizens' page's snapshot) and its formats (CSV, GeoJSON,
Parquet, a DCAT catalogue). Served by api/routes/open_data.py; docs/open-data.md."""

from opendata.rules import LICENCES, Dataset, DatasetDraft, Kind, check_draft, check_manage, check_publish
from opendata.snapshot import (
    EvacuationSite,
    PublicAlert,
    PublicSnapshot,
    RainGauge,
    RiverGauge,
    Source,
    StandSummary,
    public_snapshot,
)

__all__ = [
    "LICENCES",
    "Dataset",
    "DatasetDraft",
    "EvacuationSite",
    "Kind",
    "PublicAlert",
    "PublicSnapshot",
    "RainGauge",
    "RiverGauge",
    "Source",
    "StandSummary",
    "check_draft",
    "check_manage",
    "check_publish",
    "public_snapshot",
]
