"""How the MQTT ingestor gathers queued messages into one database transaction: closed by size or by time."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from psycopg_pool import ConnectionPool

from ingest.mqtt_consumer import MqttIngestor, _Item
from ingest.pipeline import Message, Outcome
from mimamori.settings import Settings


def item(n: int) -> _Item:
    message = Message("mqtt", f"mimamori/v1/t/d/telemetry#{n}", b"{}", None, None)  # type: ignore[arg-type]
    return _Item(message, Outcome(), mid=n, qos=1, generation=1, cost=0)


@pytest.fixture
def ingestor(settings: Settings, pool: ConnectionPool) -> Iterator[MqttIngestor]:
    # Never connected: these tests feed its queue directly, as paho's network thread does.
    yield MqttIngestor(settings.model_copy(update={"ingest_batch_max": 5, "ingest_batch_ms": 400}), pool)


def test_a_full_batch_closes_at_once_and_the_rest_waits_for_the_next(ingestor: MqttIngestor) -> None:
    for n in range(12):
        ingestor._queue.put(item(n))
    stop = threading.Event()
    batches = [[i.mid for i in ingestor._take_batch(stop)] for _ in range(3)]
    assert batches == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 11]]
    assert ingestor._take_batch(stop) == []  # nothing queued: an empty hand, not a wait forever


def test_messages_arriving_within_the_window_join_the_batch_and_later_ones_start_the_next(
    ingestor: MqttIngestor,
) -> None:
    ingestor._queue.put(item(0))

    def network_thread() -> None:
        time.sleep(0.02)
        ingestor._queue.put(item(1))  # well inside the 400 ms window
        time.sleep(1.5)
        ingestor._queue.put(item(2))  # long after it closed

    feeder = threading.Thread(target=network_thread, daemon=True)
    feeder.start()
    stop = threading.Event()
    assert [i.mid for i in ingestor._take_batch(stop)] == [0, 1]
    feeder.join()
    assert [i.mid for i in ingestor._take_batch(stop)] == [2]


def test_stopping_closes_the_batch_in_hand(ingestor: MqttIngestor) -> None:
    ingestor._queue.put(item(0))
    stop = threading.Event()
    stop.set()
    assert [i.mid for i in ingestor._take_batch(stop)] == [0]
    assert ingestor._in_hand == 1  # counted as in hand until its commit is acknowledged
