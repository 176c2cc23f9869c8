"""bench/mqtt_clients.py measures real connections: both drivers connect, publish and count every PUBACK against
a private Mosquitto, and the reason-code gap the scaling guide reports is aiomqtt's, not the benchmark's."""

from __future__ import annotations

import asyncio
import getpass
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import mqtt_clients as bench
from tests.services import free_port, wait_for_port

USES_SERVICES = True  # a private broker of its own
N = 20


@pytest.fixture(scope="module")
def bench_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    broker, port = bench.start_broker(tmp_path_factory.mktemp("bench-mqtt"))
    yield port
    broker.terminate()
    broker.wait(10)


@pytest.mark.parametrize("run", [bench._run_paho, bench._run_aiomqtt], ids=["paho-loop", "aiomqtt"])
def test_each_driver_connects_all_and_counts_every_puback(bench_broker: int, run) -> None:
    result = asyncio.run(run(bench_broker, N))
    assert result["connected"] == N
    assert result["acked"] == N * bench.MESSAGES
    assert result["errors"] == 0, result["last_error"]
    assert result["connect_s"] > 0 and result["publish_s"] > 0
    assert result["connect_cpu_s"] > 0 and result["publish_cpu_s"] > 0


def test_process_figures_come_from_the_kernel() -> None:
    before = bench.rss_kb()
    ballast = bytearray(32 * 1024 * 1024)
    ballast[::4096] = b"x" * len(ballast[::4096])  # touch every page so it is resident
    assert bench.rss_kb() - before >= 30 * 1024
    assert bench.time_wait() >= 0
    del ballast


def test_a_refused_publish_is_seen_by_the_simulators_link_and_not_by_aiomqtt(tmp_path: Path) -> None:
    """Mosquitto answers a QoS-1 publish outside the ACL with PUBACK 0x87; only the paho loop hands that on."""
    port = free_port()
    (tmp_path / "acl").write_text("topic write allowed/#\n")
    conf = tmp_path / "m.conf"
    # Started as root, Mosquitto would drop to its own user, who cannot read the test's private folder.
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\nacl_file {tmp_path / 'acl'}\nlog_dest none\n"
        f"user {getpass.getuser()}\n"
    )
    broker = subprocess.Popen(["mosquitto", "-c", str(conf)], stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        assert asyncio.run(_paho_reason(port)) == (False, True)
        assert asyncio.run(_aiomqtt_outcome(port)) == (None, None)
    finally:
        broker.terminate()
        broker.wait(10)


async def _paho_reason(port: int) -> tuple[object, object]:
    from simulators.credentials import Login
    from simulators.publisher import BrokerTarget, PublisherStats, _Link

    stop = asyncio.Event()
    link = _Link(asyncio.get_running_loop(), BrokerTarget("127.0.0.1", port), "t-paho", Login(), None, PublisherStats())
    assert await link.connect(stop)
    allowed = await link.publish("allowed/x", b"1", None)
    refused = await link.publish("forbidden/x", b"1", None)
    link.close()
    return getattr(allowed, "is_failure", None), getattr(refused, "is_failure", None)


async def _aiomqtt_outcome(port: int) -> tuple[object, object]:
    import aiomqtt

    async with aiomqtt.Client("127.0.0.1", port, identifier="t-aiomqtt", protocol=aiomqtt.ProtocolVersion.V5) as c:
        # Both return None without raising: the PUBACK's reason code is not handed on.
        return await c.publish("allowed/x", b"1", qos=1), await c.publish("forbidden/x", b"1", qos=1)
