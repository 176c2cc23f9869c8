"""SensorThings MQTT topics and the tenant readers' ACLs, pure."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from alerts.sta_mqtt import observation_json, observation_topics
from api import sta as documents
from devices import dynsec
from devices.sta import ENTITY_SETS, Options


def test_the_topics_are_the_standards_resource_paths():
    assert observation_topics("acme-soil-1", 7) == (
        "v1.1/Datastreams(7)/Observations",
        "v1.1/Things('acme-soil-1')/Datastreams(7)/Observations",
    )
    assert dynsec.sta_thing_filter("acme-soil-1") == "v1.1/Things('acme-soil-1')/+/Observations"


@pytest.mark.parametrize("device", ["a+b", "a#", "a/b", "o'neil", ""])
def test_a_device_id_that_could_widen_a_topic_is_refused(device):
    with pytest.raises(ValueError, match="STA topics"):
        dynsec.sta_thing_filter(device)


def test_a_reader_may_subscribe_to_its_own_literal_topics_only():
    acls = dynsec.sta_reader_acls([("probe-2", 9), ("probe-1", 3), ("probe-1", 4)])
    assert [(a.acltype, a.topic, a.allow) for a in acls] == [
        ("subscribeLiteral", "v1.1/Datastreams(3)/Observations", True),
        ("subscribeLiteral", "v1.1/Things('probe-1')/Datastreams(3)/Observations", True),
        ("subscribeLiteral", "v1.1/Things('probe-1')/+/Observations", True),
        ("subscribeLiteral", "v1.1/Datastreams(4)/Observations", True),
        ("subscribeLiteral", "v1.1/Things('probe-1')/Datastreams(4)/Observations", True),
        ("subscribeLiteral", "v1.1/Datastreams(9)/Observations", True),
        ("subscribeLiteral", "v1.1/Things('probe-2')/Datastreams(9)/Observations", True),
        ("subscribeLiteral", "v1.1/Things('probe-2')/+/Observations", True),
    ]
    assert not any("#" in a.topic or a.acltype != "subscribeLiteral" for a in acls)


def test_role_changes_add_the_missing_remove_the_stale_and_replace_the_changed():
    wanted = dynsec.sta_reader_acls([("p", 1)])
    current = [
        wanted[0].as_json(),
        {**wanted[1].as_json(), "priority": 5},
        {"acltype": "subscribeLiteral", "topic": "v1.1/Datastreams(2)/Observations", "allow": True, "priority": 0},
    ]
    commands = dynsec.role_acl_changes("sta-reader:t", current, wanted)
    assert [(c["command"], c["topic"]) for c in commands] == [
        ("removeRoleACL", wanted[1].topic),
        ("addRoleACL", wanted[1].topic),
        ("addRoleACL", wanted[2].topic),
        ("removeRoleACL", "v1.1/Datastreams(2)/Observations"),
    ]
    assert all(c["rolename"] == "sta-reader:t" for c in commands)
    assert dynsec.role_acl_changes("r", [a.as_json() for a in wanted], wanted) == []


def test_the_mqtt_document_is_the_rest_faces():
    row = {
        "_series": 7,
        "phenomenonTime": datetime(2026, 11, 1, 0, 10, tzinfo=UTC),
        "resultTime": datetime(2026, 11, 1, 0, 10, 2, tzinfo=UTC),
        "result": 0.42,
        "_featureOfInterest": "site:acme-soil-1",
    }
    base = "https://hub.example/sta/v1.1"
    doc = json.loads(observation_json(base, row))
    assert doc == documents.entity(base, ENTITY_SETS["Observations"], row, {}, Options())
    assert doc["@iot.id"] == "7.1793491800000000"
    assert doc["@iot.selfLink"] == f"{base}/Observations('7.1793491800000000')"
    assert doc["phenomenonTime"] == "2026-11-01T00:10:00Z"
