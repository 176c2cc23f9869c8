"""CAP 1.2 messages that aggregators accept: an alert's life (raise, escalate, de-escalate, all clear) over the
real engine and API is a chain of messages, each with its own identifier and sent time, each referencing the
earlier ones, told in Japanese and English with the device's names, linked to the configured public URL. Every
document is checked against the OASIS CAP 1.2 schema."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from lxml import etree

from alerts import AlertEngine, CapContext, CapMessage, cap_document
from alerts.cap import references
from alerts.cap_messages import group_place, identifier_for, place_names
from api.app import create_app
from devices import upsert_device
from devices.keys import Role, create_key
from mimamori import migrations
from mimamori.errors import ConfigError
from mimamori.settings import Settings, load_settings
from tests.alerts_helpers import SITE, ApiServer, clean_alert_tables, levels, store, write_rules
from tests.cap_support import ATOM, CAP, valid_cap
from tests.services import free_port

GAUGE = "yahagi-takahashi"
NAME_JA = "矢作川 高橋"
NAME_EN = "Yahagi River, Takahashi"


@pytest.fixture
def hub(settings: Settings, pool, db, city, tmp_path):
    """The 高橋 gauge (named in both languages), the engine, and the API on a port that is not 8000; the public
    URL is left unset, so the hub derives it from that port."""
    clean_alert_tables(db)
    upsert_device(
        db,
        device_id=GAUGE,
        tenant_id="toyota-city",
        device_type="river_gauge",
        name="矢作川 高橋 (Yahagi, Takahashi)",
        lon=137.179,
        lat=35.094,
        metadata={**SITE, "name_ja": NAME_JA, "name_en": NAME_EN},
        expected_interval=timedelta(minutes=10),
    )
    port = free_port()
    assert port != 8000
    s = settings.model_copy(
        update={"alerts_rules_dir": str(write_rules(tmp_path / "rules")), "api_port": port, "alerts_public_url": None}
    )
    engine = AlertEngine(s, pool)
    engine.reload(force=True)
    keys = {role: create_key(db, "toyota-city", role)[1] for role in (Role.viewer, Role.operator)}
    with ApiServer(create_app(s, pool), port=port) as server:
        yield {"settings": s, "engine": engine, "db": db, "url": server.url, "keys": keys}


def _get(hub, path: str) -> httpx.Response:
    return httpx.get(hub["url"] + path, headers={"X-API-Key": hub["keys"][Role.viewer]}, timeout=10)


def _feed(hub, values: list[float], start: datetime) -> None:
    for o in levels(GAUGE, values, start=start):
        store(hub["db"], [o])
        hub["engine"].evaluate_batch([o])


def _triple(doc: etree._Element) -> str:
    return ",".join(doc.findtext(f"{CAP}{tag}") for tag in ("sender", "identifier", "sent"))


def test_an_alerts_life_is_a_chain_of_messages_each_referencing_the_earlier_ones(hub):
    t0 = datetime.now(UTC) - timedelta(hours=2)
    _feed(hub, [4.6], t0)  # level 2: raised
    alert_id = _get(hub, "/v1/alerts").json()[0]["id"]
    _feed(hub, [6.2], t0 + timedelta(minutes=10))  # level 3: escalated
    # an operator acknowledging is bookkeeping, not a public message
    acked = httpx.post(
        hub["url"] + f"/v1/alerts/{alert_id}/acknowledge",
        headers={"X-API-Key": hub["keys"][Role.operator]},
        json={"note": "team at the levee"},
        timeout=10,
    )
    assert acked.status_code == 200
    _feed(hub, [6.9], t0 + timedelta(minutes=20))  # level 4: escalated
    _feed(hub, [6.3], t0 + timedelta(minutes=30))  # level 3: de-escalated
    _feed(hub, [2.0], t0 + timedelta(minutes=40))  # below every threshold: all clear
    events = [e["kind"] for e in _get(hub, f"/v1/alerts/{alert_id}").json()["events"]]
    assert events == ["raised", "escalated", "acknowledged", "escalated", "deescalated", "resolved"]

    docs = []
    for seq in range(1, 6):
        response = _get(hub, f"/v1/alerts/{alert_id}/cap/{seq}")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/cap+xml")
        docs.append(valid_cap(response.content))
    assert _get(hub, f"/v1/alerts/{alert_id}/cap/6").status_code == 404  # five messages, no more

    assert [d.findtext(f"{CAP}msgType") for d in docs] == ["Alert", "Update", "Update", "Update", "Update"]
    identifiers = [d.findtext(f"{CAP}identifier") for d in docs]
    assert len(set(identifiers)) == 5
    assert {d.findtext(f"{CAP}sender") for d in docs} == {hub["settings"].alerts_cap_sender}
    assert len({d.findtext(f"{CAP}incidents") for d in docs}) == 1  # one incident, five messages
    sent = [datetime.fromisoformat(d.findtext(f"{CAP}sent")) for d in docs]
    assert sent == sorted(sent)
    # each message references exactly the messages before it, as they were served: sender,identifier,sent
    assert docs[0].find(f"{CAP}references") is None
    for k in range(1, 5):
        assert docs[k].findtext(f"{CAP}references").split(" ") == [_triple(d) for d in docs[:k]]

    levels_told = [[p.findtext(f"{CAP}value") for p in d.find(f"{CAP}info").findall(f"{CAP}parameter")] for d in docs]
    assert [lv[0] for lv in levels_told] == ["2", "3", "4", "3", "0"]  # warningLevel of each message
    assert [lv[1] for lv in levels_told] == ["2", "3", "4", "4", "4"]  # peakWarningLevel so far
    for d in docs:
        infos = d.findall(f"{CAP}info")
        assert [i.findtext(f"{CAP}language") for i in infos] == ["ja-JP", "en-US"]
        ja, en = infos
        assert ja.find(f"{CAP}area").findtext(f"{CAP}areaDesc") == NAME_JA
        assert en.find(f"{CAP}area").findtext(f"{CAP}areaDesc") == NAME_EN
        assert NAME_JA in ja.findtext(f"{CAP}headline") and NAME_EN in en.findtext(f"{CAP}headline")
        for info in infos:
            assert GAUGE not in info.findtext(f"{CAP}headline") + info.find(f"{CAP}area").findtext(f"{CAP}areaDesc")
            assert info.findtext(f"{CAP}web") == f"http://127.0.0.1:{hub['settings'].api_port}/v1/alerts/{alert_id}"
    assert docs[2].find(f"{CAP}info").findtext(f"{CAP}severity") == "Extreme"  # level 4
    assert docs[2].find(f"{CAP}info").findtext(f"{CAP}responseType") == "Evacuate"
    all_clear = docs[4].findall(f"{CAP}info")
    assert {i.findtext(f"{CAP}responseType") for i in all_clear} == {"AllClear"}
    assert {i.findtext(f"{CAP}urgency") for i in all_clear} == {"Past"}
    assert all_clear[0].findtext(f"{CAP}headline") == f"河川水位：解除（{NAME_JA}）"
    assert all_clear[1].findtext(f"{CAP}headline") == f"River water level: All clear at {NAME_EN}"

    # the newest message is what /cap serves; every message is served byte for byte the same each time, even
    # after the device is renamed (the names are those the message was sent with)
    assert etree.tostring(valid_cap(_get(hub, f"/v1/alerts/{alert_id}/cap").content)) == etree.tostring(docs[4])
    upsert_device(
        hub["db"],
        device_id=GAUGE,
        tenant_id="toyota-city",
        device_type="river_gauge",
        name="renamed",
        lon=137.179,
        lat=35.094,
        metadata=SITE,
        expected_interval=timedelta(minutes=10),
    )
    for seq, doc in enumerate(docs, start=1):
        again = valid_cap(_get(hub, f"/v1/alerts/{alert_id}/cap/{seq}").content)
        assert etree.tostring(again) == etree.tostring(doc)

    # an aggregator polling the feed sees the all clear of the ended alert, not only active alerts
    feed = etree.fromstring(_get(hub, "/v1/alerts/feed.atom").content)
    (entry,) = feed.findall(f"{ATOM}entry")
    link = f"http://127.0.0.1:{hub['settings'].api_port}/v1/alerts/{alert_id}/cap/5"
    assert entry.findtext(f"{ATOM}id") == link
    assert entry.find(f"{ATOM}link").get("href") == link
    in_feed = valid_cap(entry.find(f"{ATOM}content").find(f"{CAP}alert"))
    assert etree.tostring(in_feed, method="c14n", exclusive=True) == etree.tostring(
        docs[4], method="c14n", exclusive=True
    )


def test_a_new_alert_after_the_all_clear_starts_a_new_chain(hub):
    t0 = datetime.now(UTC) - timedelta(hours=2)
    _feed(hub, [4.6, 2.0, 6.2], t0)  # raised, resolved, raised again: two alerts
    ids = sorted(a["id"] for a in _get(hub, "/v1/alerts").json())
    assert len(ids) == 2
    first = [valid_cap(_get(hub, f"/v1/alerts/{ids[0]}/cap/{n}").content) for n in (1, 2)]
    second = valid_cap(_get(hub, f"/v1/alerts/{ids[1]}/cap").content)
    assert [d.findtext(f"{CAP}msgType") for d in first] == ["Alert", "Update"]
    assert second.findtext(f"{CAP}msgType") == "Alert" and second.find(f"{CAP}references") is None
    assert second.findtext(f"{CAP}identifier") not in {d.findtext(f"{CAP}identifier") for d in first}
    feed = etree.fromstring(_get(hub, "/v1/alerts/feed.atom").content)
    entries = feed.findall(f"{ATOM}entry")
    assert len(entries) == 2  # the active alert and the earlier one's all clear
    for entry in entries:
        valid_cap(entry.find(f"{ATOM}content").find(f"{CAP}alert"))


def test_cap_message_requests_that_name_no_message_are_4xx(hub):
    _feed(hub, [4.6], datetime.now(UTC) - timedelta(hours=1))
    alert_id = _get(hub, "/v1/alerts").json()[0]["id"]
    assert _get(hub, f"/v1/alerts/{alert_id}/cap/2").status_code == 404
    assert _get(hub, f"/v1/alerts/{alert_id + 1000}/cap").status_code == 404
    assert _get(hub, f"/v1/alerts/{alert_id + 1000}/cap/1").status_code == 404
    for bad in ("0", "-1", "abc", "1.5", str(2**31), "9" * 40):
        assert _get(hub, f"/v1/alerts/{alert_id}/cap/{bad}").status_code == 422, bad
    for path in (f"/v1/alerts/{'9' * 40}/cap", f"/v1/alerts/{'9' * 40}/cap/1", "/v1/alerts/x/cap"):
        assert 400 <= _get(hub, path).status_code < 500, path


def test_migration_0056_gives_stored_alerts_the_messages_the_hub_now_records(hub):
    """Alerts from before migration 0056 get their messages from their history: the same rows, byte for byte, as
    the hub records for the same changes (here: recorded live, removed, then rebuilt by the migration's insert)."""
    _feed(hub, [4.6, 6.2, 6.9, 2.0], datetime.now(UTC) - timedelta(hours=1))
    _feed(hub, [6.2], datetime.now(UTC) - timedelta(minutes=5))  # a second alert, still open
    db = hub["db"]
    query = "SELECT * FROM cap_messages ORDER BY alert_id, seq"
    live = db.execute(query).fetchall()
    assert [(r[1], r[5]) for r in live] == [(1, "Alert"), (2, "Update"), (3, "Update"), (4, "Update"), (1, "Alert")]
    sql = (Path(migrations.__file__).parent / "0056_cap_messages.sql").read_text("utf-8")
    backfill = sql[sql.index("INSERT INTO cap_messages") :]
    with db.transaction():
        db.execute("DELETE FROM cap_messages")
        db.execute(backfill)
    assert db.execute(query).fetchall() == live


# -- pure pieces ----------------------------------------------------------------------------------------


def _message(seq: int, kind: str, level: int, previous: int | None, sent: datetime) -> CapMessage:
    return CapMessage(
        alert_id=7,
        seq=seq,
        identifier=identifier_for(7, seq, sent),
        sent=sent,
        msg_type="Alert" if seq == 1 else "Update",
        area_ja="豊田スタジアム付近",
        area_en="near Toyota Stadium",
        kind=kind,
        level=level,
        previous_level=previous,
        state="resolved" if kind == "resolved" else "open",
        value=None if kind == "resolved" else 6.1,
    )


ALERT_ROW = {
    "id": 7,
    "hazard": "flood",
    "title_en": "River water level",
    "title_ja": "河川水位",
    "rule_id": "river-level",
    "area": None,
    "location": {"type": "Point", "coordinates": [137.171, 35.085]},
}


def test_rendering_uses_the_public_url_and_references_every_earlier_message():
    t = datetime(2026, 7, 1, 0, 0, 5, tzinfo=UTC)
    chain = [_message(1, "raised", 3, 0, t), _message(2, "resolved", 0, 3, t + timedelta(minutes=30))]
    ctx = CapContext(sender="bousai@city.toyota.example", base_url="https://bousai.city.toyota.example/hub/")
    first = valid_cap(cap_document(ALERT_ROW, chain, ctx, seq=1))
    last = valid_cap(cap_document(ALERT_ROW, chain, ctx))
    assert first.findtext(f"{CAP}sent") == "2026-07-01T09:00:05+09:00"
    assert first.findtext(f"{CAP}identifier") == "mimamori.alert.7.1.20260701T000005Z"
    assert last.findtext(f"{CAP}references") == (
        "bousai@city.toyota.example,mimamori.alert.7.1.20260701T000005Z,2026-07-01T09:00:05+09:00"
    )
    assert references(ctx, chain) == last.findtext(f"{CAP}references") + " " + _triple(last)
    for doc in (first, last):
        for info in doc.findall(f"{CAP}info"):
            assert info.findtext(f"{CAP}web") == "https://bousai.city.toyota.example/hub/v1/alerts/7"
            assert info.find(f"{CAP}area").findtext(f"{CAP}circle") == "35.085000,137.171000 0.5"
    assert [a.findtext(f"{CAP}areaDesc") for a in last.iter(f"{CAP}area")] == [
        "豊田スタジアム付近",
        "near Toyota Stadium",
    ]
    assert last.find(f"{CAP}info").findtext(f"{CAP}severity") == "Minor"  # levels.yaml all_clear


def test_identifiers_hold_no_characters_cap_forbids():
    for alert_id, seq in ((1, 1), (2**40, 99)):
        ident = identifier_for(alert_id, seq, datetime(2026, 12, 2, 18, 0, tzinfo=UTC))
        assert not set(ident) & set(" ,<&\t\n")


def test_place_names_prefer_names_per_language_then_the_name_then_the_id():
    row = {"device_id": "g1", "device_name": "矢作川 高橋 (Yahagi, Takahashi)", "subject": "g1", "tenant_name": "x"}
    assert place_names({**row, "metadata": {"name_en": "Takahashi"}}) == (
        "矢作川 高橋 (Yahagi, Takahashi)",
        "Takahashi",
    )
    assert place_names({**row, "metadata": {}}) == ("矢作川 高橋 (Yahagi, Takahashi)",) * 2
    assert place_names({**row, "device_name": " ", "metadata": None}) == ("g1", "g1")
    group = {"device_id": None, "device_name": None, "metadata": None, "tenant_name": "Toyota City 豊田市"}
    assert place_names({**group, "subject": "area:Asahi 旭"}) == ("Asahi 旭", "Asahi 旭")
    assert place_names({**group, "subject": "river=Yahagi@acme"}) == ("Yahagi", "Yahagi")
    assert place_names({**group, "subject": "all"}) == ("Toyota City 豊田市",) * 2
    assert group_place("all") == ""


def test_public_url_follows_the_api_port_unless_set():
    unset = {"alerts_public_url": None}  # whatever the environment says
    assert Settings(api_port=8123, **unset).public_url == "http://127.0.0.1:8123"
    assert Settings(api_host="0.0.0.0", api_port=8080, **unset).public_url == "http://127.0.0.1:8080"
    assert Settings(api_host="::1", api_port=8000, **unset).public_url == "http://[::1]:8000"
    assert Settings(alerts_public_url="https://hub.example/mimamori/").public_url == "https://hub.example/mimamori"
    for bad in ("ftp://hub.example", "hub.example", "https://hub.example/?a=1", "https://hub.example:99999"):
        with pytest.raises(ConfigError, match="MIMAMORI_ALERTS_PUBLIC_URL"):
            load_settings(alerts_public_url=bad)
