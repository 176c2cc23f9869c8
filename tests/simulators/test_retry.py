"""Simulated devices honour "PUBACK reason code 0x10 means not heard" (docs/device-integration.md).

Mosquitto answers a QoS-1 publish that matches no subscriber with reason code 0x10, which MQTT counts as
success. A device must keep such a reading and send it again later, with back-off, and give up only within
bounds, counting and logging the loss. Each broker test has a private Mosquitto, so no other test's persistent
ingestor session is subscribed to the device topics. Time bounds are limits on waiting, never asserts.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg_pool import ConnectionPool
from pydantic import SecretStr

from devices.seed import seed_city
from ingest import MqttIngestor
from mimamori.settings import Settings
from simulators import (
    DEVICES,
    LOAD,
    BrokerTarget,
    Credentials,
    Login,
    Outgoing,
    RetryPolicy,
    SimClock,
    Simulation,
    SimulationRun,
    city_devices,
    load_scenario,
    start_run,
)
from tests.services import Mosquitto, wait_until
from tests.simulators.test_broker import readings_of

FLEET = ("yahagi-takahashi", "rain-asahi")


# --- the retry bookkeeping, pure ---------------------------------------------------------------------------------


def test_the_pause_doubles_from_the_first_delay_up_to_the_cap() -> None:
    policy = RetryPolicy(first_delay_s=1.0, max_delay_s=30.0, max_tries=100, max_age_s=1e9)
    assert [policy.delay(tries, 0.0) for tries in range(1, 9)] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


def test_it_gives_up_after_max_tries_sends() -> None:
    policy = RetryPolicy(first_delay_s=0.5, max_delay_s=4.0, max_tries=3, max_age_s=1e9)
    assert policy.delay(1, 0.0) == 0.5
    assert policy.delay(2, 0.5) == 1.0
    assert policy.delay(3, 1.5) is None  # the third send was unheard too: that was the last


def test_it_gives_up_once_unheard_for_max_age_whatever_the_tries_left() -> None:
    policy = RetryPolicy(first_delay_s=1.0, max_delay_s=30.0, max_tries=1000, max_age_s=60.0)
    assert policy.delay(5, 59.9) == 16.0
    assert policy.delay(6, 60.0) is None


def test_a_single_try_never_resends() -> None:
    assert RetryPolicy(max_tries=1).delay(1, 0.0) is None


def test_the_default_keeps_a_reading_for_minutes_not_forever() -> None:
    policy = RetryPolicy()
    assert policy.delay(1, 0.0) == 1.0  # "send it again a second later"
    waited, tries = 0.0, 1
    while (pause := policy.delay(tries, waited)) is not None:
        waited, tries = waited + pause, tries + 1
    assert tries == policy.max_tries or waited >= policy.max_age_s
    assert waited <= policy.max_age_s + policy.max_delay_s


@pytest.mark.parametrize(
    "bad",
    [
        {"max_tries": 0},
        {"first_delay_s": 0.0},
        {"first_delay_s": 5.0, "max_delay_s": 1.0},
    ],
)
def test_a_policy_that_cannot_work_is_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="bad retry policy"):
        RetryPolicy(**bad)


# --- against a real Mosquitto -------------------------------------------------------------------------------------


@pytest.fixture
def own_broker() -> Iterator[Mosquitto]:
    """A broker of this test's own: nothing subscribed to the device topics until the test says so."""
    mosq = Mosquitto()
    mosq.start()
    yield mosq
    mosq.cleanup()


def one_hour(speed: float = 3600) -> tuple[Simulation, SimClock, list[Outgoing]]:
    """An hour of a calm day for two city devices (about 12 messages), ending now; and every message it will send."""
    scenario = replace(load_scenario("calm"), duration_h=1.0)
    fleet = [d for d in city_devices() if d.id in FLEET]
    clock = SimClock.anchored(datetime.now(UTC), speed, timedelta(hours=1))
    sim = Simulation(scenario, fleet, clock.sim_start)
    sent = Simulation(scenario, fleet, clock.sim_start).advance(clock.sim_end)
    # Devices report on a grid of wall time a few seconds past each slot: the hour's edge may fall between a slot and
    # its report, so each sends 5 or 6.
    assert 10 <= len(sent) <= 12
    return sim, clock, sent


def play_to(broker: Mosquitto, retry: RetryPolicy | None, mode: str = DEVICES) -> tuple[SimulationRun, list[Outgoing]]:
    sim, clock, sent = one_hour()
    login = Credentials(default=Login(broker.username, broker.password))
    target = BrokerTarget("127.0.0.1", broker.port)
    return start_run(sim, clock, target, login, mode=mode, connections=2, retry=retry), sent


def test_readings_nobody_heard_are_sent_again_and_stored_once_the_ingestor_subscribes(
    settings: Settings, pool: ConnectionPool, db: psycopg.Connection, own_broker: Mosquitto
) -> None:
    seed_city(db)
    s = settings.model_copy(
        update={
            "mqtt_url": own_broker.url,
            "mqtt_username": own_broker.ingest_username,
            "mqtt_password": SecretStr(own_broker.ingest_password),
        }
    )
    # The devices start before any ingestor (as after a broker restart, before the shared subscription is back).
    run, sent = play_to(own_broker, None)
    stop = threading.Event()
    worker: threading.Thread | None = None
    try:
        wait_until(lambda: run.stats.retried >= 1, timeout=30, what="a resend of a reading nobody heard")
        assert run.stats.messages == 0  # nothing counted as delivered while nobody listened
        ingestor = MqttIngestor(s, pool)  # on the shared subscription, as in production
        ingestor.connect()
        worker = threading.Thread(target=ingestor.run, args=(stop,), daemon=True)
        worker.start()
        assert run.wait(timeout=120), "the devices did not finish"
        assert run.error is None
        assert run.stats.unheard == 0 and run.stats.errors == 0, run.stats.last_error
        assert run.stats.messages == len(sent)
        assert run.stats.births == len(FLEET)  # each device's birth, unheard at first too, was sent again
        assert run.stats.readings == sum(m.readings for m in sent)
        # The ingestor took every message once: the births and every telemetry message.
        wait_until(lambda: ingestor.stats.messages == len(sent) + len(FLEET), timeout=30, what="every message")
        expected = readings_of(sent)
        wait_until(
            lambda: db.execute("SELECT count(*) FROM readings").fetchone()[0] >= len(expected),
            timeout=30,
            what=f"{len(expected)} readings",
        )
        rows = db.execute("SELECT device_id, metric, time FROM readings").fetchall()
        assert len(rows) == len(expected)
        assert set(rows) == expected  # the first readings, unheard at first, among them
        assert db.execute("SELECT count(*) FROM dead_letters").fetchone()[0] == 0
    finally:
        run.stop()
        stop.set()
        if worker:
            worker.join(30)


@pytest.mark.parametrize("mode", [DEVICES, LOAD])
def test_readings_still_unheard_after_the_last_try_are_counted_and_logged(
    own_broker: Mosquitto, caplog: pytest.LogCaptureFixture, mode: str
) -> None:
    caplog.set_level(logging.WARNING, logger="simulators.publisher")
    policy = RetryPolicy(first_delay_s=0.05, max_delay_s=0.1, max_tries=3, max_age_s=60.0)
    run, sent = play_to(own_broker, policy, mode)  # nobody ever subscribes
    assert run.wait(timeout=120), "the devices did not finish"
    assert run.error is None
    births = len(FLEET) if mode == DEVICES else 0  # a device announces itself first; load mode does not
    assert run.stats.messages == 0 and run.stats.readings == 0 and run.stats.births == 0
    assert run.stats.unheard == len(sent) + births
    assert run.stats.retried == (len(sent) + births) * (policy.max_tries - 1)
    assert run.stats.errors == len(sent) + births
    assert "nobody heard (PUBACK 0x10) after 3 sends" in (run.stats.last_error or "")
    lost = [r for r in caplog.records if r.levelno == logging.WARNING and "nobody heard" in r.getMessage()]
    assert len(lost) == len(sent) + births
    assert sum("/status " in r.getMessage() for r in lost) == births
    assert all(any(device in r.getMessage() for r in lost) for device in FLEET)


def test_messages_waiting_when_stopped_are_counted_not_dropped(
    own_broker: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="simulators.publisher")
    policy = RetryPolicy(first_delay_s=600.0, max_delay_s=600.0)  # the resend would come long after the stop
    run, sent = play_to(own_broker, policy)
    wait_until(
        lambda: sum("nobody heard" in r.getMessage() for r in caplog.records) == len(FLEET),
        timeout=30,
        what="each device's first message (its birth) to go unheard",
    )
    end = run.clock.sim_end
    wait_until(lambda: run.stats.sim_time is not None and run.stats.sim_time >= end, what="the hour to be played")
    run.stop()
    assert run.wait(timeout=30)
    assert run.error is None
    assert run.stats.messages == 0 and run.stats.retried == 0
    assert run.stats.unheard == len(FLEET)  # one message in hand per device (its birth), the rest in order behind it
    assert "stopped before anyone heard it" in (run.stats.last_error or "")
    # Behind it, every reading message of the hour, never sent: counted and logged, not silently gone.
    assert run.stats.unsent == len(sent) and run.stats.dropped == 0
    said = f"stopped with {len(sent)} message(s) still in the devices' buffers"
    assert any(said in r.getMessage() for r in caplog.records)


def test_a_full_device_buffer_loses_its_oldest_message_and_keeps_the_newest() -> None:
    from simulators.engine import Outgoing
    from simulators.publisher import buffer_newest

    def msg(n: int) -> Outgoing:
        return Outgoing("d", "t", str(n).encode(), None, datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=n), 1)

    queue: asyncio.Queue[Outgoing] = asyncio.Queue(3)
    lost = [buffer_newest(queue, msg(n)) for n in range(5)]
    assert lost == [False, False, False, True, True]
    assert [queue.get_nowait().payload for _ in range(3)] == [b"2", b"3", b"4"]
