"""docs/interop.md's curl examples run as written (the hub's URL and a key filled in) and answer without error."""

from __future__ import annotations

import re
import shlex

import pytest

from tests.api.sta_support import RECENT, iso, seed
from tests.geo_support import api_client, role_keys
from tests.services import ROOT

DOC = ROOT / "docs" / "interop.md"


def curl_commands() -> list[list[str]]:
    text = DOC.read_text().split("\n## NGSI-LD\n", 1)[0].replace("\\\n", " ")  # the STA part; NGSI-LD's: its own test
    return [shlex.split(line) for line in text.splitlines() if line.startswith("curl ")]


def test_the_document_has_examples_of_reads_and_posts():
    methods = [c[c.index("-X") + 1] if "-X" in c else "GET" for c in curl_commands()]
    assert methods.count("GET") >= 5 and methods.count("POST") == 2


@pytest.fixture
def client(database_url, db, city):
    series = seed(db)
    admin = role_keys(db)["admin"]["X-API-Key"]
    with api_client(database_url) as c:
        yield c, admin, series["acme-soil-1/soil_moisture"]


def test_every_curl_example_answers(client):
    api, key, series_id = client
    for command in curl_commands():
        args = iter(command[1:])
        method, headers, body, url = "GET", {}, None, None
        for arg in args:
            if arg == "-X":
                method = next(args)
            elif arg == "-H":
                name, _, value = next(args).partition(": ")
                headers[name] = value.replace("$KEY", key)
            elif arg == "-d":
                body = re.sub(r'"@iot.id": 4\b', f'"@iot.id": {series_id}', next(args))
                # The examples' dates, moved to within ingest's accepted past whenever the test runs.
                body = re.sub(
                    r"2026-12-01T00:(\d\d):00Z", lambda m: iso(RECENT).replace(":00:00Z", f":{m[1]}:00Z"), body
                )
            else:
                url = arg
        assert url is not None and url.startswith("$HUB/sta/v1.1/"), command
        url = url.removeprefix("$HUB").replace("Datastreams(4)", f"Datastreams({series_id})")
        answer = api.request(method, url, headers=headers, content=body)
        assert answer.status_code in (200, 201), (url, answer.text)
        assert "value" in answer.json() or "@iot.id" in answer.json()
