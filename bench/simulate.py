"""How many simulated devices one process can drive: `python -m bench.simulate --devices 10000 --seconds 30`.

Starts a private Mosquitto that allows anonymous clients (a benchmark of the simulator, not of the ACLs), plays
the typhoon to it with one connection per device (or --mode load), and reports connect time, messages per second
and the process's peak memory.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import shutil
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from devkit.ports import free_port, wait_for_port
from simulators import (
    DEVICES,
    BrokerTarget,
    Credentials,
    PublisherStats,
    SimClock,
    Simulation,
    load_scenario,
    sized_fleet,
)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, default=10_000)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--speed", type=float, default=60)
    ap.add_argument("--mode", default=DEVICES)
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="mimamori-bench-sim-"))
    port = free_port()
    (folder / "m.conf").write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n")
    broker = subprocess.Popen(["mosquitto", "-c", str(folder / "m.conf")], stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        # A subscriber, as the hub's ingestors are: without one the broker answers every publish "no matching
        # subscribers" (PUBACK 0x10) and the devices keep resending, as the device contract asks.
        sink = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-sink", protocol=mqtt.MQTTv5)
        sink.connect("127.0.0.1", port)
        sink.subscribe("#", qos=1)
        sink.loop_start()
        scenario = load_scenario("typhoon")
        fleet = sized_fleet([], args.devices, seed=1)
        clock = SimClock.anchored(datetime.now(UTC), args.speed, timedelta(hours=scenario.duration_h))
        sim = Simulation(scenario, fleet, clock.sim_start)
        stats = PublisherStats()

        async def go() -> None:
            from simulators.publisher import play

            stop = asyncio.Event()
            task = asyncio.ensure_future(
                play(sim, clock, BrokerTarget("127.0.0.1", port), Credentials(), stats, stop, mode=args.mode)
            )
            t0 = time.monotonic()
            while stats.connected < stats.connections or stats.connections == 0:
                await asyncio.sleep(0.1)
                if time.monotonic() - t0 > 300:
                    break
            connect_s = time.monotonic() - t0
            m0 = stats.messages
            await asyncio.sleep(args.seconds)
            rate = (stats.messages - m0) / args.seconds
            stop.set()
            await task
            peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(
                f"{args.devices} devices ({args.mode}, {stats.connections} connections) at {args.speed:g}×: "
                f"all connected in {connect_s:.1f} s; {rate:.0f} messages/s sustained over {args.seconds:g} s; "
                f"errors {stats.errors}; resent {stats.retried}, unheard {stats.unheard}; peak RSS {peak_mb:.0f} MB"
            )

        asyncio.run(go())
        sink.loop_stop()
        sink.disconnect()
    finally:
        broker.terminate()
        broker.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
