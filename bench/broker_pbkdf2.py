"""What the broker's PBKDF2 iteration count costs and buys: `python -m bench.broker_pbkdf2 [--connects 200]`.

Starts a private Mosquitto with the project's configuration and one account per iteration count (written into
the dynamic-security file, where the plugin keeps each hash's own count), then times sequential MQTT 5 CONNECTs
of each account, and the cost of one guess (one PBKDF2-HMAC-SHA512) in this process. Also reports the count the
plugin itself uses for an account created at run time (``createClient``), which is what device accounts get.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from devices import dynsec
from devices.broker import BrokerAdmin
from devices.broker_setup import prepare_broker
from mimamori.settings import Settings

TEMPLATE = Path(__file__).resolve().parents[1] / "deploy" / "mosquitto" / "mosquitto.conf"
COUNTS = (101, 1_000, 10_000, 100_000, 210_000)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _connect_ms(port: int, username: str, password: str) -> float:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=username, protocol=mqtt.MQTTv5)
    client.username_pw_set(username, password)
    got: list[object] = []
    client.on_connect = lambda _c, _u, _f, rc, _p: got.append(rc)
    start = time.perf_counter()
    client.connect("127.0.0.1", port)
    while not got:
        client.loop(timeout=0.01)
    elapsed = (time.perf_counter() - start) * 1000
    assert not getattr(got[0], "is_failure", True), got[0]
    client.disconnect()
    client.loop(timeout=0.01)
    return elapsed


def _guess_ms(iterations: int, tries: int = 5) -> float:
    start = time.perf_counter()
    for _ in range(tries):
        hashlib.pbkdf2_hmac("sha512", b"guess", b"salt-salt-sa", iterations)
    return (time.perf_counter() - start) * 1000 / tries


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--connects", type=int, default=200, help="CONNECTs per account")
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="mimamori-pbkdf2-"))
    port = _free_port()
    accounts = tuple(dynsec.Account(f"bench-{n}", f"pw-{n}", {}, client_id=f"bench-{n}", iterations=n) for n in COUNTS)
    conf, hub, _ = prepare_broker(TEMPLATE, folder, port=port, topic_prefix="mimamori/v1", extra_accounts=accounts)
    broker = subprocess.Popen(["mosquitto", "-c", str(conf)], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        rows = []
        for n in COUNTS:
            times = sorted(_connect_ms(port, f"bench-{n}", f"pw-{n}") for _ in range(args.connects))
            rows.append(
                {
                    "iterations": n,
                    "connect_ms_median": round(statistics.median(times), 2),
                    "connect_ms_p95": round(times[int(len(times) * 0.95) - 1], 2),
                    "guess_ms": round(_guess_ms(n), 3),
                }
            )
        settings = Settings(mqtt_url=f"mqtt://127.0.0.1:{port}", mqtt_admin_password=hub.admin_password)  # type: ignore[arg-type]
        with BrokerAdmin(settings) as admin:
            admin.execute([dynsec.create_client("bench-runtime", "pw", [], client_id="bench-runtime")])
        time.sleep(0.5)  # the plugin rewrites its file after each change
        saved = json.loads((folder / "dynamic-security.json").read_text())
        runtime = next(c["iterations"] for c in saved["clients"] if c["username"] == "bench-runtime")
        print(json.dumps({"accounts": rows, "createClient_iterations": runtime}, indent=1))
    finally:
        broker.terminate()
        broker.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
