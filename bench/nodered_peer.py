"""The Node-RED peer of bench.ingest: Mosquitto → Node-RED → PostgreSQL, as such a hub is commonly built.

Node-RED 4 and node-postgres (``pg`` 8) come from the npm registry into a folder of their own outside the repository
(~/.cache/mimamori/bench/nodered, ``npm install --prefix`` on first use), as bench/ogc_peer.py puts tipg in an
environment of its own. The flow is generated here and run headless on 127.0.0.1 (no editor, no HTTP nodes):

* an ``mqtt in`` node (QoS 1, JSON) on a shared subscription, its broker node MQTT 5 with a persistent session
  (clean start off, a session expiry), the same broker account as Mimamori's ingest;
* a function node making rows (time, value, device, metric) from a message of one reading or a list of them;
* a join node batching 500 messages or 50 ms, whichever comes first;
* a function node running one parameterised ``INSERT … SELECT … FROM unnest($1, $2, $3, $4) … ON CONFLICT DO
  NOTHING`` through a ``pg`` Pool (given to the flow by ``functionGlobalContext``), which logs ``committed N``
  after each insert: the bench's commit clock, read from Node-RED's standard output.

The peer writes to a table of its own, ``nodered_readings``, made ``LIKE series_readings INCLUDING ALL`` (the same
48-byte row, the same primary key and indexes), looking series numbers up by a join on ``series`` in the same
statement. Its own table so that the counts by SQL are each ingestor's alone and neither's ``ON CONFLICT`` can hide
the other's missing rows. It does less than Mimamori's ingest (no validation against the catalogue, no latest
values, no dead letters) and acknowledges each message on arrival, before it is stored, as Node-RED's MQTT node does.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from psycopg.conninfo import conninfo_to_dict

from devkit.ports import free_port

NODERED_SPEC = "node-red@4"
PG_SPEC = "pg@8"
NODERED_HOME = Path.home() / ".cache" / "mimamori" / "bench" / "nodered"
BATCH_MESSAGES = 500
BATCH_SECONDS = 0.05
POOL_MAX = 4
PEER_TABLE = "nodered_readings"
_COMMITTED = re.compile(rb"committed (\d+)")
_CONNECTED = b"Connected to broker"

# Each row [time, value, device, metric]; the INSERT turns the batch into four arrays.
ROWS_JS = """
const device = msg.topic.split("/")[3];
const docs = Array.isArray(msg.payload) ? msg.payload : [msg.payload];
const rows = [];
for (const doc of docs) {
    for (const metric in doc.values) rows.push([doc.ts, doc.values[metric], device, metric]);
}
msg.payload = rows;
return msg;
"""

INSERT_SQL = (
    f"INSERT INTO {PEER_TABLE} (time, value, series_id, delay_cs)"
    " SELECT r.t, r.v, s.series_id, reading_delay_cs(r.t)"
    " FROM unnest($1::timestamptz[], $2::float8[], $3::text[], $4::text[]) AS r(t, v, d, m)"
    " JOIN series s ON s.device_id = r.d AND s.metric = r.m ON CONFLICT DO NOTHING"
)

INSERT_JS = """
const t = [], v = [], d = [], m = [];
for (const rows of msg.payload) {
    for (const r of rows) { t.push(r[0]); v.push(r[1]); d.push(r[2]); m.push(r[3]); }
}
context.get("pool").query(SQL, [t, v, d, m]).then(
    () => { node.log("committed " + t.length); node.done(); },
    (err) => node.error(err, msg),
);
return null;
"""


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds process ``pid`` has used so far (every thread), from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def missing_tool() -> str | None:
    """Why the peer cannot run here (None: it can)."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            return f"{tool} is not on PATH"
    return None


def nodered_home(home: Path = NODERED_HOME) -> Path:
    """The folder holding Node-RED and pg, installed from the npm registry first when missing (never the repo)."""
    red = home / "node_modules" / "node-red" / "red.js"
    if red.exists() and (home / "node_modules" / "pg" / "package.json").exists():
        return home
    home.mkdir(parents=True, exist_ok=True)
    npm = shutil.which("npm")
    assert npm is not None, "missing_tool() first"
    quiet = ["--no-audit", "--no-fund", "--loglevel", "error"]
    subprocess.run(
        [npm, "install", "--prefix", str(home), *quiet, NODERED_SPEC, PG_SPEC], check=True, stdout=subprocess.DEVNULL
    )
    return home


def versions(home: Path) -> str:
    def version(package: str) -> str:
        return json.loads((home / "node_modules" / package / "package.json").read_text())["version"]

    return f"Node-RED {version('node-red')}, pg {version('pg')}"


def create_peer_table(conn: object) -> None:
    """The peer's own table, the same row, key and indexes as ``series_readings``."""
    conn.execute(f"CREATE TABLE IF NOT EXISTS {PEER_TABLE} (LIKE series_readings INCLUDING ALL)")  # type: ignore[attr-defined]


@dataclass
class BrokerLogin:
    port: int
    username: str | None
    password: str | None = field(repr=False)


def flow(login: BrokerLogin, client_id: str, topic: str, dsn: str, session_expiry_s: int) -> list[dict[str, object]]:
    """The peer's flow: mqtt in → rows → join (500 messages or 50 ms) → INSERT through a pg Pool."""
    db = conninfo_to_dict(dsn)
    pool = {
        "host": db.get("host", "127.0.0.1"),
        "port": int(db.get("port", 5432)),
        "database": db["dbname"],
        "user": db.get("user", "postgres"),
        "max": POOL_MAX,
    }
    if db.get("password"):
        pool["password"] = db["password"]
    start_pool = f'const {{ Pool }} = global.get("pg");\ncontext.set("pool", new Pool({json.dumps(pool)}));\n'
    return [
        {"id": "tab", "type": "tab", "label": "ingest"},
        {
            "id": "broker",
            "type": "mqtt-broker",
            "broker": "127.0.0.1",
            "port": str(login.port),
            "clientid": client_id,
            "autoConnect": True,
            "usetls": False,
            "protocolVersion": "5",
            "keepalive": "30",
            "cleansession": False,
            "autoUnsubscribe": False,
            "sessionExpiry": str(session_expiry_s),
            "birthTopic": "",
            "closeTopic": "",
            "willTopic": "",
        },
        {
            "id": "in",
            "type": "mqtt in",
            "z": "tab",
            "topic": topic,
            "qos": "1",
            "datatype": "json",
            "broker": "broker",
            "nl": False,
            "rap": True,
            "rh": 0,
            "inputs": 0,
            "wires": [["rows"]],
        },
        {"id": "rows", "type": "function", "z": "tab", "func": ROWS_JS, "outputs": 1, "wires": [["batch"]]},
        {
            "id": "batch",
            "type": "join",
            "z": "tab",
            "mode": "custom",
            "build": "array",
            "property": "payload",
            "propertyType": "msg",
            "key": "topic",
            "joiner": "\\n",
            "joinerType": "str",
            "accumulate": False,
            "timeout": str(BATCH_SECONDS),
            "count": str(BATCH_MESSAGES),
            "reduceRight": False,
            "wires": [["insert"]],
        },
        {
            "id": "insert",
            "type": "function",
            "z": "tab",
            "func": f"const SQL = {json.dumps(INSERT_SQL)};\n{INSERT_JS}",
            "initialize": start_pool,
            "finalize": 'context.get("pool").end();',
            "outputs": 0,
            "wires": [],
        },
    ]


def settings_js(home: Path, port: int) -> str:
    """Headless: no editor, no HTTP nodes; pg handed to function nodes; logs at info (the commit clock)."""
    pg = json.dumps(str(home / "node_modules" / "pg"))
    return (
        "module.exports = {\n"
        f'  uiHost: "127.0.0.1", uiPort: {port}, httpAdminRoot: false, httpNodeRoot: false,\n'
        '  flowFile: "flows.json", credentialSecret: false, flowFilePretty: true,\n'
        f"  functionGlobalContext: {{ pg: require({pg}) }},\n"
        '  logging: { console: { level: "info", metrics: false, audit: false } },\n'
        "  editorTheme: { tours: false }, telemetry: { enabled: false },\n"
        "};\n"
    )


class NodeRed:
    """One Node-RED process running the peer's flow; counts what its insert node reports committed."""

    def __init__(self, home: Path, user_dir: Path, login: BrokerLogin, client_id: str, topic: str, dsn: str) -> None:
        user_dir.mkdir(parents=True, exist_ok=True)
        (user_dir / "settings.js").write_text(settings_js(home, free_port()))
        (user_dir / "flows.json").write_text(json.dumps(flow(login, client_id, topic, dsn, 3600)))
        creds = {"broker": {"user": login.username or "", "password": login.password or ""}}
        cred_file = user_dir / "flows_cred.json"
        cred_file.write_text(json.dumps(creds))
        cred_file.chmod(0o600)
        self.connected = threading.Event()
        self.connected_at = 0.0
        self.cpu_at_connect = 0.0
        self.committed = 0
        self.last = 0.0
        self.log: list[bytes] = []
        self.errors: list[bytes] = []
        red = home / "node_modules" / "node-red" / "red.js"
        env = os.environ | {"NODE_RED_HOME": str(user_dir)}
        self.proc = subprocess.Popen(
            ["node", str(red), "--userDir", str(user_dir), "--settings", str(user_dir / "settings.js"), "flows.json"],
            cwd=user_dir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        assert self.proc.stdout is not None
        self._reader = threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True)
        self._reader.start()

    def _read(self, stream: IO[bytes]) -> None:
        for line in stream:
            now = time.perf_counter()
            found = _COMMITTED.search(line)
            if found:
                self.committed += int(found.group(1))
                self.last = now
                continue
            if b"[error]" in line:
                self.errors.append(line)
            if _CONNECTED in line and not self.connected.is_set():
                self.connected_at, self.cpu_at_connect = now, cpu_seconds(self.proc.pid)
                self.connected.set()
            self.log.append(line)

    def wait_connected(self, timeout: float = 60) -> None:
        if not self.connected.wait(timeout):
            raise RuntimeError("Node-RED did not connect to the broker:\n" + b"".join(self.log[-30:]).decode())

    def wait_committed(self, expected: int, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while self.committed < expected:
            if time.monotonic() > deadline or self.proc.poll() is not None or self.errors:
                tail = b"".join(self.errors[:5] or self.log[-30:]).decode()
                raise RuntimeError(f"Node-RED committed {self.committed} of {expected}:\n{tail}")
            time.sleep(0.005)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=5)


class NodeRedPeer:
    """Starts Node-RED processes of the peer's flow for one broker and database, each in a user folder of its own."""

    def __init__(self, home: Path, folder: Path, login: BrokerLogin, dsn: str) -> None:
        self.home, self.folder, self.login, self.dsn = home, folder, login, dsn
        self.version = versions(home)

    def start(self, client_id: str, topic: str) -> NodeRed:
        red = NodeRed(self.home, self.folder / client_id, self.login, client_id, topic, self.dsn)
        try:
            red.wait_connected()
        except BaseException:
            red.stop()
            raise
        return red
