"""Distribution pieces on their own: CAP rendering (pure), webhook signing, retries and the delivery log against a
dead endpoint, and the multi-process feed (ingestor NOTIFY -> the one evaluator holding the lock)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from alerts import AlertEngine, WebhookDispatcher, cap_polygons, sign, subscribe_webhook, verify
from alerts.cap import cap_time
from alerts.feed import NotifyForwarder, ReadingListener, decode, encode, leadership
from alerts.webhooks import backoff
from devices.keys import Principal, Role
from tests.alerts_helpers import add_gauges, clean_alert_tables, levels, store, write_rules
from tests.services import free_port, wait_until

# -- CAP, pure ------------------------------------------------------------------------------------------


def test_cap_polygon_is_lat_lon_and_closed():
    area = {"type": "Polygon", "coordinates": [[[137.1, 35.0], [137.2, 35.0], [137.2, 35.1], [137.1, 35.1]]]}
    (polygon,) = cap_polygons(area)
    pairs = polygon.split()
    assert pairs[0] == "35.000000,137.100000" == pairs[-1]
    assert len(pairs) == 5


@hypothesis_settings(deadline=None)  # the machine is shared: no timing in tests
@given(
    st.lists(
        st.tuples(st.floats(-180, 180, allow_nan=False), st.floats(-90, 90, allow_nan=False)), min_size=3, max_size=20
    )
)
def test_cap_polygons_always_closed_with_four_pairs_and_swapped(ring):
    result = cap_polygons({"type": "Polygon", "coordinates": [[list(p) for p in ring]]})
    for polygon in result:
        pairs = polygon.split()
        assert pairs[0] == pairs[-1] and len(pairs) >= 4
        lat, lon = (float(v) for v in pairs[0].split(","))
        assert lat == pytest.approx(ring[0][1], abs=1e-6) and lon == pytest.approx(ring[0][0], abs=1e-6)


def test_cap_time_has_an_offset_and_never_z():
    t = datetime(2026, 7, 1, 0, 0, 0, 123456, tzinfo=UTC)
    assert cap_time(t) == "2026-07-01T09:00:00+09:00"
    assert cap_time(t, UTC) == "2026-07-01T00:00:00-00:00"


# -- webhooks -------------------------------------------------------------------------------------------


def test_signature_round_trip_and_tamper():
    body = b'{"kind":"raised"}'
    signature = sign("whsec_x", 1700000000, body)
    assert verify("whsec_x", "1700000000", body, signature)
    assert not verify("whsec_x", "1700000000", body + b" ", signature)
    assert not verify("whsec_y", "1700000000", body, signature)
    assert not verify("whsec_x", "not-a-time", body, signature)


def test_backoff_doubles_and_is_capped(settings):
    s = settings.model_copy(update={"alerts_webhook_backoff_s": 2.0})
    assert [backoff(s, n).total_seconds() for n in (1, 2, 3, 4)] == [2, 4, 8, 16]
    assert backoff(s, 40) == timedelta(hours=1)


@pytest.fixture
def hooked(settings, pool, db, city, tmp_path):
    """The city's g1 and the partner's g2, an engine, and a webhook dispatcher that gives up after 2 tries."""
    clean_alert_tables(db)
    add_gauges(db, ("g1", "toyota-city", 137.179, 35.094), ("g2", "acme", 137.5, 35.2))
    s = settings.model_copy(
        update={
            "alerts_rules_dir": str(write_rules(tmp_path / "rules")),
            "alerts_webhook_max_attempts": 2,
            "alerts_webhook_backoff_s": 0.01,
            "alerts_webhook_timeout_s": 1.0,
        }
    )
    engine = AlertEngine(s, pool)
    engine.reload(force=True)
    return s, engine


def test_dead_endpoint_is_retried_then_given_up_with_a_log(hooked, pool, db):
    settings, engine = hooked
    dead = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
    city = Principal("mk_test", "toyota-city", Role.operator)
    partner = Principal("mk_partner", "acme", Role.partner)
    with pool.connection() as conn:
        city_hook, _ = subscribe_webhook(conn, city, url=dead, min_level=3, all_tenants=True)
        partner_hook, _ = subscribe_webhook(conn, partner, url=dead)
    for o in levels("g1", [6.2]) + levels("g2", [3.6]):  # the city's g1 at level 3, the partner's g2 at 1
        store(db, [o])
        engine.evaluate_batch([o])
    dispatcher = WebhookDispatcher(settings, pool)
    assert dispatcher.fan_out() == 2  # the city's level-3 alert to the city; the partner's own alert to it
    pairs = db.execute(
        "SELECT d.webhook_id, a.subject FROM alert_webhook_deliveries d JOIN alert_events e ON e.id = d.event_id"
        " JOIN alerts a ON a.id = e.alert_id ORDER BY d.webhook_id"
    ).fetchall()
    assert pairs == [(city_hook, "g1"), (partner_hook, "g2")]
    from concurrent.futures import ThreadPoolExecutor

    with httpx.Client(timeout=1.0) as http, ThreadPoolExecutor(2) as senders:
        assert dispatcher.deliver_due(http, senders) == 2
        wait_until(lambda: dispatcher.deliver_due(http, senders) == 2, what="the retry to fall due")
        assert dispatcher.deliver_due(http, senders) == 0  # given up after 2 attempts
    rows = db.execute("SELECT status, attempts, error FROM alert_webhook_deliveries").fetchall()
    assert {(r[0], r[1]) for r in rows} == {("failed", 2)}
    assert all("ConnectError" in r[2] for r in rows)


# -- the multi-process feed ---------------------------------------------------------------------------


def test_notify_payloads_stay_under_the_limit_and_round_trip():
    many = levels("a-rather-long-device-identifier", [float(i) for i in range(500)])
    chunks = encode(many)
    assert len(chunks) > 1 and all(len(c) < 8000 for c in chunks)
    assert [o for c in chunks for o in decode(c)] == many


def test_forwarded_readings_reach_the_single_evaluator(settings, pool, db, city, tmp_path):
    clean_alert_tables(db)
    add_gauges(db, ("g1", "toyota-city", 137.179, 35.094))
    s = settings.model_copy(update={"alerts_rules_dir": str(write_rules(tmp_path / "rules"))})
    stop = threading.Event()
    engine = AlertEngine(s, pool, clock=lambda: datetime(2026, 7, 1, tzinfo=UTC))
    with leadership(s, stop) as leader:
        assert leader
        # a second evaluator stands by while the first holds the lock
        other_stop = threading.Event()
        standby: list[bool] = []

        def second() -> None:
            with leadership(s, other_stop, poll_s=0.1) as ok:
                standby.append(ok)

        t = threading.Thread(target=second, daemon=True)
        t.start()
        threads = [
            threading.Thread(target=engine.run, args=(stop,), daemon=True),
            threading.Thread(target=ReadingListener(s, engine).run, args=(stop,), daemon=True),
        ]
        forwarder = NotifyForwarder(pool)
        threads.append(threading.Thread(target=forwarder.run, args=(stop,), daemon=True))
        for th in threads:
            th.start()
        try:
            assert engine.ready.wait(10)
            wait_until(lambda: engine.stats.rebuilds >= 2, what="the rebuild after LISTEN")  # start + listener
            batch = levels("g1", [4.7])
            store(db, batch)  # committed by an ingestor in another process...
            forwarder.on_readings(batch)  # ...which forwards it
            wait_until(
                lambda: db.execute("SELECT level FROM alerts WHERE subject = 'g1'").fetchall() == [(2,)],
                what="the alert raised from a forwarded reading",
            )
            assert standby == []
        finally:
            other_stop.set()
            t.join(5)
            stop.set()
            for th in threads:
                th.join(10)
    assert standby == [False]
