"""NGSI-LD (ETSI GS CIM 009) over the hub's own store: entities, the temporal API and the hub's @context.

Pure modules, values in and values out: ``qlang`` (the ``q`` grammar), ``geoquery`` (``geoQ``), ``model`` (entity
types, ids and rendering), ``temporal`` (``timerel`` and the aggregated representation), ``problems`` (errors as
ProblemDetails). The router (api/routes/ngsi_ld.py) reads through the feature providers and the time series of
devices/, the same store the OGC API and the native API read.
"""
