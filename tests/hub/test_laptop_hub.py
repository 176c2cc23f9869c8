"""`make up` as a newcomer runs it: the repository cloned into a private directory (mode 0700, like root's home),
the laptop hub started there (private Mosquitto, migrations, seed, simulators), a reading stored, a way in printed at
the end of start-up, and then every command of the README's table and the docs' command blocks typed as written in
another terminal (the checkout's .venv activated), against that running hub."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.services import ROOT, create_scratch_database, drop_database, free_port, outside_environment, wait_until

pytestmark = pytest.mark.slow

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
KEY = re.compile(r"admin key \(also kept in (?P<file>\S+), mode 0600\): (?P<key>mk_[0-9a-f]+\.\S+)")

# The hub's own long-running processes: `make up` already runs them (a second one beside it would take the
# broker sessions of the first, or its port); tests/alerts/test_split_layout.py and tests/ingest/test_faults.py run
# them as separate processes. Server set-up belongs to docs/deployment.md's machines, not to a laptop.
NOT_BESIDE_A_RUNNING_HUB = {
    "mimamori up": "it is what `make up` runs",
    "mimamori ingest": "the hub's ingestor; a second beside `make up` would share its session",
    "mimamori ingest --workers N": "the hub's ingestor, in N processes",
    "mimamori api": "the hub's API; `make up` holds its port",
    "mimamori alerts run": "the evaluator of a split layout; `make up` evaluates in-process",
    "mimamori broker init --dir /var/lib/mosquitto --port 1883": "a server's broker (docs/deployment.md)",
    "mimamori grafana sync": "needs a Grafana server (docs/grafana.md); tests/dashboards/test_grafana_sync.py runs it",
    "mimamori broker add-sta-reader acme-dashboard --tenant acme": "a partner's SensorThings MQTT reader, made in the"
    " broker with the admin account; tests/hub/test_sta_reader_cli.py runs it against the test broker",
    "mimamori broker sync-sta-readers": "tests/hub/test_sta_reader_cli.py runs it against the test broker",
    "mimamori simulate -n 10000 --mode load --connections 4": "load mode logs in with one account for many devices, "
    "which a broker binding accounts to client ids refuses (docs/simulators.md)",
}

# Placeholders and sizes of the documented commands, made concrete for a test that runs in seconds.
CONCRETE = {
    "mimamori db migrate | db info": ["mimamori db migrate", "mimamori db info"],
    "mimamori devices … | tenants … | keys … | broker …": [
        "mimamori devices list",
        "mimamori devices types",
        "mimamori tenants list",
        "mimamori keys list",
        'mimamori keys create --tenant toyota-city --role operator --name "Hana Suzuki"',
        "mimamori devices add school-rain-1 --tenant toyota-city --type rain_gauge --lon 137.16 --lat 35.08",
        "mimamori devices provision school-rain-1 --output creds.csv",
        "mimamori broker add-publisher river-office-gateway --tenant toyota-city",
    ],
    "mimamori rules check FILE": ["mimamori rules check {rules}"],
    "mimamori rules check my-rules.yaml": ["mimamori rules check {rules}"],
    "mimamori rules list": ["mimamori rules list"],
    "mimamori stands import FILE | sample": ["mimamori stands sample stands.gpkg --count 50"],
    "mimamori stands sample stands.gpkg --count 25000": ["mimamori stands sample stands.gpkg --count 50"],
    "mimamori stands import stands.gpkg": ["mimamori stands import stands.gpkg"],
    "mimamori stands import register.csv --crs EPSG:6675 --encoding cp932 --column-map my_columns.yaml "
    "--rejects bad.csv": [],  # a city's own register file; tests/geo/test_stands.py imports such files
    "mimamori evacuation import FILE | export FILE --kind K": [
        "mimamori evacuation import geo/samples/toyota_shelters.sample.csv",
        "mimamori evacuation export emergency-sites.csv --kind emergency_site",
    ],
    "mimamori evacuation import geo/samples/toyota_emergency_sites.sample.csv": [
        "mimamori evacuation import geo/samples/toyota_emergency_sites.sample.csv"
    ],
    "mimamori evacuation export shelters.csv --kind shelter --bom": [
        "mimamori evacuation export shelters.csv --kind shelter --bom"
    ],
    "mimamori evacuation import emergency_sites.csv --kind emergency_site --encoding cp932 --rejects bad.csv": [],
    # a city's own list; tests/geo/test_evacuation.py imports such files through the same command
    "mimamori grafana export | check | sync": ["mimamori grafana export --out grafana-out", "mimamori grafana check"],
}
# Commands that run until stopped: started, watched for a line that shows them working, then stopped with Ctrl-C.
RUNS_UNTIL_STOPPED = [
    "mimamori simulate --scenario typhoon --speed 60",
    "mimamori simulate --scenario calm -n 2000 --register",
    "mimamori simulate --scenario faults --format senml",
    "mimamori simulate --replay recorded.csv --speed 10",
    "mimamori simulate --from-db --provision",
]
SIZES = {"-n 2000": "-n 20"}


def documented_commands() -> list[str]:
    """Every `mimamori …` line of a command block in README.md and docs/*.md, comments and prompts stripped."""
    found: list[str] = []
    for page in DOCS:
        inside = False
        for line in page.read_text("utf-8").splitlines():
            if line.startswith("```"):
                inside = not inside
                continue
            text = line.strip().removeprefix("$ ")
            if inside and text.startswith("mimamori "):
                command = re.split(r"\s{2,}|\s#\s", text)[0].strip()
                if command not in found:
                    found.append(command)
    return found


@dataclass
class Laptop:
    checkout: Path
    env: dict[str, str]
    output: list[str]
    key: str
    key_file: Path
    api: str
    dsn: str


def _clone_into_a_private_directory(tmp_path: Path) -> Path:
    private = tmp_path / "home"
    private.mkdir(mode=0o700)
    checkout = private / "mimamori"
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(checkout)], check=True)
    # The working tree as it is now (a test run may be of changes not yet committed).
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in tracked.decode().split("\0"):
        if name and (ROOT / name).is_file():
            (checkout / name).parent.mkdir(parents=True, exist_ok=True)
            (checkout / name).write_bytes((ROOT / name).read_bytes())
    return checkout


@contextmanager
def started_laptop(folder: Path, *args: str) -> Iterator[Laptop]:
    """`make up` (its script, set-up already done by the test run) in a fresh clone under ``folder``."""
    checkout = _clone_into_a_private_directory(folder)
    dsn = create_scratch_database("mimamori_laptop")
    api_port = free_port()
    started = outside_environment() | {
        "MIMAMORI_DATABASE_URL": dsn,
        "MIMAMORI_API_PORT": str(api_port),
        "MIMAMORI_LAPTOP_MQTT_PORT": str(free_port()),
        "MIMAMORI_TIMESCALEDB": "off",
    }
    started.pop("MIMAMORI_LAPTOP_ENV_FILE")
    started.pop("VIRTUAL_ENV", None)  # the clone gets its own .venv, as a fresh checkout does
    hub = subprocess.Popen(
        ["bash", "deploy/laptop-hub.sh", "--speed", "3600", "--sample-stands", "100", *args],
        cwd=checkout,
        env=started,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output: list[str] = []
    threading.Thread(target=lambda: output.extend(hub.stdout), daemon=True).start()  # type: ignore[arg-type]
    try:
        wait_until(
            lambda: hub.poll() is not None or any(KEY.search(line) for line in output),
            timeout=300,
            what="the laptop hub to print its way in",
        )
        assert hub.poll() is None, "".join(output[-60:])
        found = next(m for line in output if (m := KEY.search(line)))
        # Another terminal: nothing of the hub's environment, only the checkout with its .venv activated.
        terminal = {k: v for k, v in os.environ.items() if not k.startswith("MIMAMORI_") and k != "VIRTUAL_ENV"}
        terminal["PATH"] = f"{checkout / '.venv' / 'bin'}:{terminal['PATH']}"
        terminal["VIRTUAL_ENV"] = str(checkout / ".venv")
        terminal["COLUMNS"] = "200"
        yield Laptop(checkout, terminal, output, found["key"], Path(found["file"]), f"http://127.0.0.1:{api_port}", dsn)
    finally:
        if hub.poll() is None:
            os.killpg(hub.pid, signal.SIGINT)
            try:
                hub.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(hub.pid, signal.SIGKILL)
        drop_database(dsn)


@pytest.fixture(scope="module")
def laptop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Laptop]:
    """The laptop hub as a newcomer starts it: the city's devices simulated."""
    with started_laptop(tmp_path_factory.mktemp("laptop")) as hub:
        yield hub


@pytest.fixture(scope="module")
def quiet_laptop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Laptop]:
    """The laptop hub playing no devices itself (`mimamori up --no-simulate`), for the simulator's commands."""
    with started_laptop(tmp_path_factory.mktemp("quiet"), "--no-simulate") as hub:
        yield hub


def test_make_up_from_a_private_directory_stores_readings_and_prints_a_way_in(laptop: Laptop) -> None:
    with psycopg.connect(laptop.dsn) as conn:
        wait_until(
            lambda: conn.execute("SELECT count(*) FROM readings").fetchone()[0] > 0,  # type: ignore[index]
            timeout=120,
            what="a simulated reading stored",
        )
    assert laptop.key_file == laptop.checkout / "var" / "admin-key"
    assert oct(laptop.key_file.stat().st_mode & 0o777) == "0o600"
    assert laptop.key_file.read_text().strip() == laptop.key
    answer = httpx.get(laptop.api + "/v1/alerts", headers={"X-API-Key": laptop.key})
    assert answer.status_code == 200, answer.text
    serving = next(i for i, line in enumerate(laptop.output) if "Mimamori is serving" in line)
    assert any("Uvicorn running" in line for line in laptop.output[:serving]), (
        "the way in comes after the server's lines"
    )


def test_a_second_start_after_a_lost_key_still_gives_a_way_in(laptop: Laptop) -> None:
    """What a failed first run leaves: a migrated database with keys in it, and no key the newcomer knows."""
    from devices.seed import admin_way_in

    lost = laptop.checkout / "var" / "lost-key"
    with psycopg.connect(laptop.dsn) as conn:
        made = admin_way_in(conn, str(lost))
        assert made.new_secret and lost.read_text().strip() == made.new_secret
        kept = admin_way_in(conn, str(lost))
        assert (kept.new_secret, kept.kept_in) == (None, lost.resolve())
        assert f"cat {lost.resolve()}" in kept.lines()[0]
        lost.write_text("mk_0000000000000000.revoked-or-made-up\n")
        again = admin_way_in(conn, str(lost))
        assert again.new_secret and again.new_secret != made.new_secret


def test_every_documented_command_is_either_run_here_or_excluded_with_a_reason() -> None:
    known = set(NOT_BESIDE_A_RUNNING_HUB) | set(CONCRETE) | set(RUNS_UNTIL_STOPPED)
    missing = [c for c in documented_commands() if c not in known]
    assert not missing, f"documented commands this test neither runs nor excludes: {missing}"
    assert len(documented_commands()) >= 20


def _as_typed(command: str, laptop: Laptop) -> list[str]:
    rules = laptop.checkout / "alerts" / "rules" / "flood.yaml"
    for documented, concrete in SIZES.items():
        command = command.replace(documented, concrete)
    return shlex.split(command.format(rules=rules))


def _run(laptop: Laptop, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _as_typed(command, laptop), cwd=laptop.checkout, env=laptop.env, capture_output=True, text=True, timeout=180
    )


@pytest.mark.parametrize(
    "documented", [c for c in CONCRETE if CONCRETE[c]], ids=lambda c: c.removeprefix("mimamori ")[:40]
)
def test_a_documented_command_works_as_written_beside_the_running_hub(laptop: Laptop, documented: str) -> None:
    for command in CONCRETE[documented]:
        if command == "mimamori stands import stands.gpkg" and not (laptop.checkout / "stands.gpkg").exists():
            assert _run(laptop, "mimamori stands sample stands.gpkg --count 50").returncode == 0
        done = _run(laptop, command)
        assert done.returncode == 0, f"{command}\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        assert "Traceback" not in done.stderr


@pytest.mark.parametrize("documented", RUNS_UNTIL_STOPPED, ids=lambda c: c.removeprefix("mimamori ")[:40])
def test_a_documented_simulation_runs_as_written_beside_the_running_hub(quiet_laptop: Laptop, documented: str) -> None:
    laptop = quiet_laptop
    if "--replay recorded.csv" in documented:
        (laptop.checkout / "recorded.csv").write_text(
            "time,device_id,metric,value\n2026-12-01T00:00:00Z,yahagi-takahashi,water_level,1.2\n"
            "2026-12-01T00:10:00Z,yahagi-takahashi,water_level,1.3\n"
        )
    started = _database_now(laptop)
    process = subprocess.Popen(
        _as_typed(documented, laptop),
        cwd=laptop.checkout,
        env=laptop.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True).start()  # type: ignore[arg-type]
    try:
        wait_until(
            lambda: process.poll() is not None or any("(Ctrl-C stops)" in ln for ln in lines),
            timeout=90,
            what=f"`{documented}` to start",
        )
        threading.Event().wait(8)  # a few seconds of simulated devices publishing
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            process.wait(30)
    text = "".join(lines)
    assert process.returncode == 0, text[-3000:]
    sent = re.search(r"sent (\d+) messages \((\d+) readings\).*refused (\d+).*errors (\d+)", text, re.S)
    assert sent, text[-3000:]
    messages, readings, refused, errors = map(int, sent.groups())
    assert messages > 0 and readings > 0, text[-3000:]
    assert (refused, errors) == (0, 0), text[-3000:]
    # The hub heard them: a replayed timeline may repeat readings already stored (the same 10-minute slots), so
    # what is checked is that the hub processed messages of the simulated devices after the run began.
    wait_until(lambda: _heard_since(laptop, started) > 0, timeout=60, what="the simulated devices heard by the hub")


def _database_now(laptop: Laptop) -> object:
    with psycopg.connect(laptop.dsn) as conn:
        return conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]


def _heard_since(laptop: Laptop, since: object) -> int:
    with psycopg.connect(laptop.dsn) as conn:
        query = "SELECT count(*) FROM device_liveness WHERE updated_at > %s"
        return int(conn.execute(query, (since,)).fetchone()[0])  # type: ignore[index]
