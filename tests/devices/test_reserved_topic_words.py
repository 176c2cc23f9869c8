"""Tenant ids that are words of the hub's own topics: refused at creation, by the database and by ingest."""

from __future__ import annotations

import psycopg
import pytest

from devices import upsert_tenant
from devices.manage import Caller, create_tenant
from devices.validation import RESERVED_TENANT_IDS
from ingest.contract import TOPIC_WORDS, parse_topic
from mimamori.errors import ValidationError

PREFIX = "mimamori/v1"


def test_the_reserved_tenant_ids_are_exactly_the_hubs_topic_words():
    assert RESERVED_TENANT_IDS == TOPIC_WORDS


def test_the_alert_publishers_topics_are_never_parsed_as_readings():
    # What the alert publisher's old ACL ({prefix}/alerts/#) let it publish, and ingest took for tenant `alerts`.
    for topic in (f"{PREFIX}/alerts/x/telemetry", f"{PREFIX}/alerts/x/status", f"{PREFIX}/alerts/toyota-city/7"):
        assert parse_topic(PREFIX, topic) is None, topic


@pytest.mark.parametrize("word", sorted(TOPIC_WORDS))
def test_ingest_refuses_a_topic_word_as_tenant(word):
    assert parse_topic(PREFIX, f"{PREFIX}/{word}/d1/telemetry") is None
    # The same word as a device id is unambiguous and stays allowed.
    assert parse_topic(PREFIX, f"{PREFIX}/acme/{word}/telemetry") is not None


@pytest.mark.parametrize("word", sorted(RESERVED_TENANT_IDS))
def test_creating_a_tenant_named_after_a_topic_word_is_refused(db, word):
    with pytest.raises(ValidationError, match="reserved"):
        create_tenant(db, Caller("test", None), word, word, "partner")


def test_the_database_refuses_a_new_reserved_tenant_id_too(db):
    with pytest.raises(psycopg.errors.CheckViolation):
        upsert_tenant(db, "alerts", "Alerts", "partner")
