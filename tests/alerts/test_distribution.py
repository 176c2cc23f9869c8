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

from alerts import (
    AlertEngine,
    WebhookDestinations,
    WebhookDispatcher,
    cap_polygons,
    sign,
    subscribe_webhook,
    verify,
)
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
            "alerts_webhook_allow": ["127.0.0.1/32"],  # the dead endpoint is on loopback
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
    allowed = WebhookDestinations.from_settings(settings)
    with pool.connection() as conn:
        city_hook, _ = subscribe_webhook(conn, city, url=dead, min_level=3, all_tenants=True, destinations=allowed)
        partner_hook, _ = subscribe_webhook(conn, partner, url=dead, destinations=allowed)
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


# -- where webhooks may go --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "refused"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("169.254.169.254", "cloud metadata"),
        ("fd00:ec2::254", "cloud metadata"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.0.1", "private"),
        ("fc00::1", "private"),  # unique-local
        ("224.0.0.251", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "not globally routable"),  # shared (CGNAT)
        ("::ffff:127.0.0.1", "loopback (embedded in IPv6)"),
        ("::ffff:10.0.0.1", "private (embedded in IPv6)"),
        ("2002:a9fe:a9fe::1", "cloud metadata (embedded in IPv6)"),  # 6to4 of 169.254.169.254
        ("64:ff9b::7f00:1", "loopback (embedded in IPv6)"),  # NAT64 of 127.0.0.1
        ("8.8.8.8", None),
        ("93.184.216.34", None),
        ("2606:4700:4700::1111", None),
    ],
)
def test_address_rules(address, refused):
    import ipaddress

    from alerts import address_refusal

    assert address_refusal(ipaddress.ip_address(address)) == refused


def _resolving(table: dict[str, list[str]]):
    def resolve(host: str, _port: int) -> list[str]:
        if host not in table:
            raise OSError("no such host")
        return table[host]

    return resolve


def test_every_address_of_a_host_must_pass_and_the_allowlist_admits_networks_and_names():
    from alerts import DestinationRefused

    names = {
        "public.test": ["93.184.216.34"],
        "mixed.test": ["93.184.216.34", "10.0.0.1"],  # one good answer beside a bad one is refused
        "inside.test": ["10.20.0.5"],
        "hooks.internal": ["192.168.7.7"],
        "v6.test": ["2606:4700::6810:85e5"],
    }
    strict = WebhookDestinations([], _resolving(names))
    assert strict.check("https://public.test/x").address == "93.184.216.34"
    for url in ("https://mixed.test/x", "http://inside.test/x", "http://hooks.internal/x", "http://gone.test/x"):
        with pytest.raises(DestinationRefused):
            strict.check(url)
    allowing = WebhookDestinations(["10.20.0.0/16", "Hooks.Internal"], _resolving(names))
    assert allowing.check("http://inside.test:8080/x").address == "10.20.0.5"
    assert allowing.check("http://hooks.internal./x").address == "192.168.7.7"
    with pytest.raises(DestinationRefused):
        allowing.check("http://mixed.test/x")  # 10.0.0.1 is outside the allowed network
    target = strict.check("https://v6.test:8443/a?b=1")
    assert (target.pinned_url, target.host_header) == ("https://[2606:4700::6810:85e5]:8443/a?b=1", "v6.test:8443")


class _Receiver:
    """An HTTP endpoint on loopback that records what it is sent."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((dict(self.headers), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def _deliver_once(dispatcher, settings):
    from concurrent.futures import ThreadPoolExecutor

    with httpx.Client(timeout=settings.alerts_webhook_timeout_s) as http, ThreadPoolExecutor(2) as senders:
        assert dispatcher.fan_out() == 1
        assert dispatcher.deliver_due(http, senders) == 1


def test_a_name_that_rebinds_to_loopback_after_registration_is_not_delivered_to(hooked, pool, db):
    """Registered while the name resolved to a public address; at delivery it resolves to the hub's loopback,
    where something listens. Real DNS cannot be made to do this in a test: both resolvers are hooks."""
    settings, engine = hooked
    receiver = _Receiver()
    try:
        url = f"http://rebind.test:{receiver.port}/hook"
        partner = Principal("mk_partner", "acme", Role.partner)
        at_registration = WebhookDestinations([], _resolving({"rebind.test": ["93.184.216.34"]}))
        with pool.connection() as conn:
            subscribe_webhook(conn, partner, url=url, destinations=at_registration)
        store(db, levels("g2", [3.6]))
        engine.evaluate_batch(levels("g2", [3.6]))
        rebound = WebhookDestinations([], _resolving({"rebind.test": ["127.0.0.1"]}))
        _deliver_once(WebhookDispatcher(settings, pool, destinations=rebound), settings)
        assert receiver.received == []
        (error,) = db.execute("SELECT error FROM alert_webhook_deliveries").fetchone()
        assert error == "refused: rebind.test resolves to a loopback address"
    finally:
        receiver.close()


def test_a_delivery_connects_to_the_address_it_checked(hooked, pool, db):
    """The allowlisted receiver is reached at the address the check resolved (the system resolver knows no
    rebind.test), with the URL's host in the Host header and a valid signature."""
    settings, engine = hooked  # hooked allows 127.0.0.1/32
    receiver = _Receiver()
    try:
        url = f"http://rebind.test:{receiver.port}/hook"
        partner = Principal("mk_partner", "acme", Role.partner)
        destinations = WebhookDestinations(settings.alerts_webhook_allow, _resolving({"rebind.test": ["127.0.0.1"]}))
        with pool.connection() as conn:
            _, secret = subscribe_webhook(conn, partner, url=url, destinations=destinations)
        store(db, levels("g2", [3.6]))
        engine.evaluate_batch(levels("g2", [3.6]))
        _deliver_once(WebhookDispatcher(settings, pool, destinations=destinations), settings)
        ((headers, body),) = receiver.received
        assert headers["Host"] == f"rebind.test:{receiver.port}"
        assert verify(secret, headers["X-Mimamori-Timestamp"], body, headers["X-Mimamori-Signature"])
        assert db.execute("SELECT status FROM alert_webhook_deliveries").fetchone() == ("delivered",)
    finally:
        receiver.close()


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
        heard: list = []  # a further listener of the feed, as the STA MQTT publisher is
        threads = [
            threading.Thread(target=engine.run, args=(stop,), daemon=True),
            threading.Thread(target=ReadingListener(s, engine, also=[heard.extend]).run, args=(stop,), daemon=True),
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
            wait_until(lambda: heard, what="the forwarded reading at the further listener")
            assert [(r.device_id, r.metric, r.value) for r in heard] == [
                (r.device_id, r.metric, r.value) for r in batch
            ]
            assert standby == []
        finally:
            other_stop.set()
            t.join(5)
            stop.set()
            for th in threads:
                th.join(10)
    assert standby == [False]
