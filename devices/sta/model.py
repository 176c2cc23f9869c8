"""The STA entity sets as views over the registry and the time series (nothing copied). Pure: SQL text only.

Each set is a relation (its ``base``) whose columns are named by the STA properties, plus hidden link columns
(``_thing``, ``_series`` …) that navigation follows. Every base confines itself to ``%(tenant)s`` (NULL: the city's
roles, which see the whole hub).

* Thing = a device; Location and HistoricalLocation = its registered position (one each, keyed by the device id;
  the registry keeps no history of moves, so the HistoricalLocation's time is when the registry last changed it).
* Sensor = a device type; ObservedProperty = a metric of the catalogue.
* Datastream = a row of ``series`` (device × metric), ``@iot.id`` its series number. A device × metric pair that
  has never had a reading has no series row yet and so no Datastream: it appears with its first reading.
* Observation = a row of ``series_readings``: phenomenonTime the device's time, resultTime when the hub received it.
* FeatureOfInterest = the forest stand the device stands in (``stand:<stand id>``), else the device's site
  (``site:<device id>``, its position).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from psycopg import sql

from devices.sta.filter import GEOMETRY, JSON, NUMBER, OBSID, PERIOD, TEXT, TIME

TENANT = "(%(tenant)s::text IS NULL OR d.tenant_id = %(tenant)s::text)"
# A Datastream's phenomenonTime: its first and last readings' times as an ISO 8601 interval (two probes of the
# primary key's index), null while it has none.
_ISO = "to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
_RANGE = (
    "SELECT " + _ISO.format("min(x.time)") + " || '/' || " + _ISO.format("max(x.time)")
    + " FROM series_readings x WHERE x.series_id = s.series_id"
)  # fmt: skip
_FOI = (
    "COALESCE((SELECT 'stand:' || st.stand_id FROM stands st WHERE ST_Covers(st.geom, d.location)"
    " ORDER BY st.stand_id LIMIT 1), 'site:' || d.id)"
)


@dataclass(frozen=True, slots=True)
class Nav:
    target: str  # entity set name
    to_one: bool
    local: str  # column of this set
    remote: str  # column of the target equal to it
    # When set, the target rows are those whose ``remote`` is in this SQL's answer for the parent's ``local``
    # value (%(parent)s): a FeatureOfInterest's Observations are found through its devices' series, not by
    # computing every Observation's feature.
    through: str | None = None
    # Whether the target rows belong to the parent's own device (a Datastream's Observations, a Thing's Locations):
    # the parent was found within the caller's tenant, so its rows are too, and the query need not join the
    # tenant again (that join misleads the planner into sorting a whole month instead of seeking one page).
    same_tenant: bool = True


@dataclass(frozen=True, slots=True)
class EntitySet:
    name: str  # Things
    singular: str  # Thing
    base: str  # SQL of the relation, confined by %(tenant)s
    properties: dict[str, str]  # STA name → kind (filter.NUMBER …); columns of ``base`` by the same name
    navs: dict[str, Nav]
    id_columns: tuple[str, ...] = ("id",)
    nullable: frozenset[str] = field(default_factory=frozenset)

    def output(self, alias: sql.Identifier) -> sql.Composable:
        """The select list: every property as JSON-ready values, and the hidden link columns."""
        items: list[sql.Composable] = []
        for name, kind in self.properties.items():
            if kind == OBSID:
                continue
            column = sql.SQL("{}.{}").format(alias, sql.Identifier(name))
            if kind == GEOMETRY:
                column = sql.SQL("ST_AsGeoJSON({})::jsonb").format(column)
            items.append(sql.SQL("{} AS {}").format(column, sql.Identifier(name)))
        hidden = {c for c in self.id_columns if c not in self.properties or self.properties[c] == OBSID}
        hidden |= {n.local for n in self.navs.values()} - set(self.properties)
        items += [sql.SQL("{}.{}").format(alias, sql.Identifier(h)) for h in sorted(hidden)]
        return sql.SQL(", ").join(items)


_THINGS = EntitySet(
    "Things",
    "Thing",
    "SELECT d.id, COALESCE(NULLIF(d.name, ''), d.id) AS name, COALESCE(dt.name, d.device_type) AS description,"
    " jsonb_build_object('deviceType', d.device_type, 'status', d.status, 'installedOn', d.installed_on,"
    "  'site', d.metadata) AS properties"
    " FROM devices d JOIN device_types dt ON dt.id = d.device_type WHERE {tenant}",
    {"id": TEXT, "name": TEXT, "description": TEXT, "properties": JSON},
    {
        "Locations": Nav("Locations", False, "id", "_thing"),
        "HistoricalLocations": Nav("HistoricalLocations", False, "id", "_thing"),
        "Datastreams": Nav("Datastreams", False, "id", "_thing"),
    },
)
_LOCATIONS = EntitySet(
    "Locations",
    "Location",
    "SELECT d.id, 'Position of ' || COALESCE(NULLIF(d.name, ''), d.id) AS name,"
    " 'Registered position of device ' || d.id AS description, 'application/geo+json' AS \"encodingType\","
    " d.location, d.id AS _thing FROM devices d WHERE d.location IS NOT NULL AND {tenant}",
    {"id": TEXT, "name": TEXT, "description": TEXT, "encodingType": TEXT, "location": GEOMETRY},
    {
        "Things": Nav("Things", False, "_thing", "id"),
        "HistoricalLocations": Nav("HistoricalLocations", False, "_thing", "_thing"),
    },
)
_HISTORICAL_LOCATIONS = EntitySet(
    "HistoricalLocations",
    "HistoricalLocation",
    "SELECT d.id, d.updated_at AS time, d.id AS _thing FROM devices d WHERE d.location IS NOT NULL AND {tenant}",
    {"id": TEXT, "time": TIME},
    {"Thing": Nav("Things", True, "_thing", "id"), "Locations": Nav("Locations", False, "_thing", "_thing")},
)
_SENSORS = EntitySet(
    "Sensors",
    "Sensor",
    "SELECT t.id, t.name, COALESCE(t.description, t.name) AS description,"
    " 'application/json' AS \"encodingType\","
    " jsonb_build_object('nameJa', t.name_ja, 'siteSchema', t.site_schema) AS metadata"
    " FROM device_types t WHERE %(tenant)s::text IS NULL"
    " OR EXISTS (SELECT 1 FROM devices d WHERE d.device_type = t.id AND {tenant})",
    {"id": TEXT, "name": TEXT, "description": TEXT, "encodingType": TEXT, "metadata": JSON},
    {"Datastreams": Nav("Datastreams", False, "id", "_sensor", same_tenant=False)},
)
_OBSERVED_PROPERTIES = EntitySet(
    "ObservedProperties",
    "ObservedProperty",
    "SELECT m.metric AS id, m.metric AS name, 'urn:mimamori:metric:' || m.metric AS definition,"
    " COALESCE(max(m.description), m.metric) AS description FROM device_type_metrics m"
    " WHERE %(tenant)s::text IS NULL"
    " OR EXISTS (SELECT 1 FROM devices d WHERE d.device_type = m.device_type AND {tenant})"
    " GROUP BY m.metric",
    {"id": TEXT, "name": TEXT, "definition": TEXT, "description": TEXT},
    {"Datastreams": Nav("Datastreams", False, "id", "_observedProperty", same_tenant=False)},
)
_DATASTREAMS = EntitySet(
    "Datastreams",
    "Datastream",
    "SELECT s.series_id AS id, d.id || ' ' || s.metric AS name,"
    " s.metric || ' of ' || COALESCE(NULLIF(d.name, ''), d.id) AS description,"
    " 'http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement' AS \"observationType\","
    " jsonb_build_object('name', s.metric, 'symbol', m.unit, 'definition', 'urn:mimamori:unit:' || m.unit)"
    '  AS "unitOfMeasurement",'
    f' ({_RANGE}) AS "phenomenonTime",'
    ' d.id AS _thing, d.device_type AS _sensor, s.metric AS "_observedProperty"'
    " FROM series s JOIN devices d ON d.id = s.device_id"
    " LEFT JOIN device_type_metrics m ON m.device_type = d.device_type AND m.metric = s.metric WHERE {tenant}",
    {
        "id": NUMBER,
        "name": TEXT,
        "description": TEXT,
        "observationType": TEXT,
        "unitOfMeasurement": JSON,
        "phenomenonTime": PERIOD,
    },
    {
        "Thing": Nav("Things", True, "_thing", "id"),
        "Sensor": Nav("Sensors", True, "_sensor", "id"),
        "ObservedProperty": Nav("ObservedProperties", True, "_observedProperty", "id"),
        "Observations": Nav("Observations", False, "id", "_series"),
    },
    nullable=frozenset({"phenomenonTime"}),
)
_OBSERVATIONS = EntitySet(
    "Observations",
    "Observation",
    'SELECT r.series_id AS _series, r.time AS "phenomenonTime",'
    " r.time + r.delay_cs * INTERVAL '10 milliseconds' AS \"resultTime\", r.value AS result,"
    f' {_FOI} AS "_featureOfInterest"'
    " FROM series_readings r JOIN series s ON s.series_id = r.series_id JOIN devices d ON d.id = s.device_id"
    " WHERE {tenant}",
    {"id": OBSID, "phenomenonTime": TIME, "resultTime": TIME, "result": NUMBER},
    {
        "Datastream": Nav("Datastreams", True, "_series", "id"),
        "FeatureOfInterest": Nav("FeaturesOfInterest", True, "_featureOfInterest", "id"),
    },
    id_columns=("_series", "phenomenonTime"),
)
_FEATURES = EntitySet(
    "FeaturesOfInterest",
    "FeatureOfInterest",
    "SELECT DISTINCT ON (f.id) f.id, f.name, f.description, 'application/geo+json' AS \"encodingType\", f.feature"
    " FROM devices d CROSS JOIN LATERAL ("
    "  SELECT COALESCE('stand:' || st.stand_id, 'site:' || d.id) AS id,"
    "   COALESCE('Stand ' || st.stand_id, 'Site of ' || COALESCE(NULLIF(d.name, ''), d.id)) AS name,"
    "   CASE WHEN st.stand_id IS NULL THEN 'Where device ' || d.id || ' stands'"
    "    ELSE 'Forest stand (林小班) ' || st.stand_id END AS description,"
    "   COALESCE(st.geom, d.location) AS feature"
    "  FROM (SELECT 1) one LEFT JOIN LATERAL (SELECT x.stand_id, x.geom FROM stands x"
    "   WHERE ST_Covers(x.geom, d.location) ORDER BY x.stand_id LIMIT 1) st ON true) f"
    " WHERE d.location IS NOT NULL AND {tenant} ORDER BY f.id",
    {"id": TEXT, "name": TEXT, "description": TEXT, "encodingType": TEXT, "feature": GEOMETRY},
    {
        "Observations": Nav(
            "Observations",
            False,
            "id",
            "_series",
            through="SELECT s.series_id FROM series s JOIN devices d ON d.id = s.device_id"
            f" WHERE d.location IS NOT NULL AND {_FOI} = %(parent)s::text",
            same_tenant=False,  # a stand holds several tenants' devices
        )
    },
)

ENTITY_SETS: dict[str, EntitySet] = {
    e.name: e
    for e in (
        _THINGS,
        _LOCATIONS,
        _HISTORICAL_LOCATIONS,
        _SENSORS,
        _OBSERVED_PROPERTIES,
        _DATASTREAMS,
        _OBSERVATIONS,
        _FEATURES,
    )
}
