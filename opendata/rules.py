"""Open datasets and who may publish them: pure values and rules, no database, no clock read.

A dataset (table ``open_datasets``, migration 0062) names one kind of a tenant's data. Nothing of the hub is public
unless a dataset of its kind and tenant is published. The rule of who may publish (docs/open-data.md):

- a partner key manages (defines, publishes, unpublishes) only its own tenant's datasets;
- an admin key manages any dataset, but *publishes* only the operator tenant's (the city's) own: a partner's data
  goes public only when the partner itself publishes it. An admin may still unpublish a partner's dataset (taking
  data down is always safe);
- every other role manages none;
- ``stand_summaries`` and ``evacuation_sites`` are city-wide tables with no tenant column: only the operator tenant
  can hold such a dataset.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from devices.validation import THRESHOLD_LADDER
from mimamori.errors import Forbidden, ValidationError


class Kind(StrEnum):
    river_levels = "river_levels"  # the tenant's river gauges (device types with water_level), latest and history
    rainfall = "rainfall"  # the tenant's rain gauges (device types with rainfall)
    alerts = "alerts"  # the tenant's alerts: active ones, and those ended recently
    stand_summaries = "stand_summaries"  # the forest register in aggregate: per compartment and species
    evacuation_sites = "evacuation_sites"  # table evacuation_sites (migration 0063), when it exists


# The device metric each reading kind serves (devices/catalogue.yaml): a type serving it is in the dataset.
READING_METRIC: dict[Kind, str] = {Kind.river_levels: "water_level", Kind.rainfall: "rainfall"}
CITY_WIDE_KINDS = frozenset({Kind.stand_summaries, Kind.evacuation_sites})

DATASET_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")

# Licences a dataset may carry (SPDX ids, and the Japanese government's standard terms), with their deeds.
LICENCES: dict[str, str] = {
    "CC-BY-4.0": "https://creativecommons.org/licenses/by/4.0/",
    "CC0-1.0": "https://creativecommons.org/publicdomain/zero/1.0/",
    "CC-BY-SA-4.0": "https://creativecommons.org/licenses/by-sa/4.0/",
    "ODbL-1.0": "https://opendatacommons.org/licenses/odbl/1-0/",
    # 公共データ利用規約（第1.0版）, compatible with CC BY 4.0
    "PDL-1.0": "https://www.digital.go.jp/resources/open_data/public_data_license_v1.0",
}

TITLE_MAX = 200
TEXT_MAX = 4000


@dataclass(frozen=True, slots=True)
class Dataset:
    """One row of ``open_datasets``."""

    id: str
    kind: Kind
    tenant_id: str
    title_ja: str
    title_en: str
    description: str
    licence: str
    attribution: str
    published: bool
    published_by: str | None
    published_at: datetime | None
    updated_at: datetime

    @property
    def licence_url(self) -> str:
        return licence_url(self.licence)


def licence_url(licence: str) -> str:
    return LICENCES.get(licence, "")


@dataclass(frozen=True, slots=True)
class DatasetDraft:
    """What a caller writes of a dataset (publication is a separate act)."""

    id: str
    kind: Kind
    tenant_id: str
    title_ja: str
    title_en: str
    attribution: str
    description: str = ""
    licence: str = "CC-BY-4.0"


def _text(name: str, value: str, limit: int, *, required: bool) -> str:
    value = value.strip()
    if required and not value:
        raise ValidationError(f"{name} must not be empty")
    if len(value) > limit:
        raise ValidationError(f"{name} is at most {limit} characters")
    return value


def check_draft(draft: DatasetDraft, tenant_kind: str) -> DatasetDraft:
    """The draft with its texts trimmed; ValidationError for an id, licence or kind the rules refuse."""
    if not DATASET_ID.match(draft.id):
        raise ValidationError("a dataset id is 1-63 lower-case letters, digits or '-', starting with a letter or digit")
    if draft.licence not in LICENCES:
        raise ValidationError(f"licence must be one of {', '.join(LICENCES)}")
    if draft.kind in CITY_WIDE_KINDS and tenant_kind != "operator":
        raise ValidationError(f"{draft.kind} is city-wide data: only the operator tenant (the city) can hold it")
    return DatasetDraft(
        id=draft.id,
        kind=draft.kind,
        tenant_id=draft.tenant_id,
        title_ja=_text("title_ja", draft.title_ja, TITLE_MAX, required=True),
        title_en=_text("title_en", draft.title_en, TITLE_MAX, required=True),
        attribution=_text("attribution", draft.attribution, TITLE_MAX, required=True),
        description=_text("description", draft.description, TEXT_MAX, required=False),
        licence=draft.licence,
    )


def check_manage(role: str, caller_tenant: str, dataset_tenant: str) -> None:
    """May this key define, edit or unpublish a dataset of ``dataset_tenant``? Forbidden if not."""
    if role == "admin":
        return
    if role == "partner" and caller_tenant == dataset_tenant:
        return
    if role == "partner":
        raise Forbidden("a partner key manages only its own tenant's datasets")
    raise Forbidden(f"role {role} may not manage open datasets")


def check_publish(role: str, caller_tenant: str, dataset_tenant: str, dataset_tenant_kind: str) -> None:
    """May this key make a dataset of ``dataset_tenant`` public? Forbidden if not (see the module's rule)."""
    check_manage(role, caller_tenant, dataset_tenant)
    if role == "admin" and dataset_tenant_kind != "operator":
        raise Forbidden(
            f"{dataset_tenant}'s data is published by {dataset_tenant} itself (its partner key), not by the city"
        )


def warning_level(level_m: float | None, metadata: object) -> int | None:
    """The national ladder step (警戒レベル 0-4) a water level has reached by the gauge's own thresholds
    (site metadata standby_m, caution_m, evacuation_m, danger_m); None without a level. Level 5 (flooding) is
    observed, not measured."""
    if level_m is None:
        return None
    get = getattr(metadata, "get", None)
    reached = 0
    if get is None:
        return reached
    for step, key in enumerate(THRESHOLD_LADDER, start=1):
        threshold = get(key)
        if isinstance(threshold, int | float) and not isinstance(threshold, bool) and level_m >= threshold:
            reached = step
    return reached
