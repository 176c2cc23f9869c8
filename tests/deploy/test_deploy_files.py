"""The production deployment files (deploy/compose, deploy/systemd) checked against the project itself.

No Docker engine runs here, so what can run does: the YAML is parsed, every MIMAMORI_* variable must be a
Settings field with a valid value, every command must be a real `mimamori` subcommand, the image must copy every
package, the scripts run for real (secrets from files; the broker's TLS listener and accounts), the units go
through systemd-analyze, and `docker compose config` runs when the client has the compose subcommand.
"""

from __future__ import annotations

import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from mimamori.settings import Settings
from tests.services import ROOT, free_port, outside_environment, wait_for_port, wait_until

COMPOSE_DIR = ROOT / "deploy" / "compose"
SYSTEMD_DIR = ROOT / "deploy" / "systemd"
COMPOSE = yaml.safe_load((COMPOSE_DIR / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]
HUB_SERVICES = {name: s for name, s in SERVICES.items() if s.get("build")}
UNITS = sorted(SYSTEMD_DIR.glob("*.service"))
VAR = re.compile(r"\bMIMAMORI_[A-Z0-9_]+")
# Grafana's own environment, read by its provisioning file (docs/grafana.md), not hub settings.
GRAFANA_VARS = {f"MIMAMORI_GRAFANA_DB_{p}" for p in ("HOST", "NAME", "USER", "PASSWORD", "SSLMODE")}


def setting_name(var: str) -> str:
    """MIMAMORI_X (or MIMAMORI_X_FILE, a secret read from a file by the image's entry point) → field x."""
    name = var.removeprefix("MIMAMORI_").lower()
    return name.removesuffix("_file") if name.endswith("_file") and name != "file" else name


def test_every_mimamori_variable_in_the_deployment_files_is_a_setting():
    files = [
        COMPOSE_DIR / "compose.yaml",
        COMPOSE_DIR / ".env.example",
        COMPOSE_DIR / "Caddyfile",
        SYSTEMD_DIR / "mimamori.env.example",
        *UNITS,
    ]
    used = {var for f in files for var in VAR.findall(f.read_text())} - GRAFANA_VARS - {"MIMAMORI_IMAGE"}
    assert used, "no MIMAMORI_* variables found at all"
    unknown = sorted(v for v in used if setting_name(v) not in Settings.model_fields)
    assert unknown == []


def test_grafana_gets_exactly_the_variables_its_provisioning_file_reads():
    datasource = (ROOT / "deploy/grafana/provisioning/datasources/mimamori.yaml").read_text()
    wanted = set(re.findall(r"\$\{(MIMAMORI_GRAFANA_DB_[A-Z]+)\}", datasource))
    given = set(SERVICES["grafana"]["environment"]) | set(
        VAR.findall(" ".join(SERVICES["grafana"]["command"]))  # the password, exported from a secret file
    )
    assert wanted == GRAFANA_VARS
    assert wanted <= given


@pytest.mark.parametrize("service", sorted(HUB_SERVICES))
def test_each_hub_service_configuration_is_valid_settings(service):
    env = dict(HUB_SERVICES[service].get("environment") or {})
    values = {}
    for key, value in env.items():
        if key.endswith("_FILE"):
            assert value.startswith("/run/secrets/"), f"{key} should point at a Docker secret"
            secret = value.removeprefix("/run/secrets/")
            assert secret in HUB_SERVICES[service]["secrets"], f"{service} lacks the secret {secret}"
            key, value = key.removesuffix("_FILE"), "postgresql://u:p@db:5432/mimamori"
        # compose interpolation: take the default or an example value
        value = re.sub(r"\$\{[A-Z_]+(?::-([^}]*)|:\?[^}]*)\}", lambda m: m.group(1) or "example.city", str(value))
        values[setting_name(key)] = value
    settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
    if "ingest" in service or "api" in service or "alerts" in service:
        assert settings.timescaledb.value == "on"
        assert settings.mqtt.host == "mosquitto"


def test_hub_commands_are_real_mimamori_subcommands():
    commands = {tuple(s["command"]) for s in HUB_SERVICES.values() if s.get("command")}
    for unit in UNITS:
        line = next(ln for ln in unit.read_text().splitlines() if ln.startswith("ExecStart="))
        argv = line.removeprefix("ExecStart=").split()
        if argv[0] == "/usr/bin/env":  # variables that must win over EnvironmentFile=, then the command
            argv = [a for a in argv[1:] if not re.match(r"^MIMAMORI_[A-Z0-9_]+=", a)]
        assert argv[0] == "/opt/mimamori/.venv/bin/mimamori"
        commands.add(("mimamori", *argv[1:]))
    required = {
        ("mimamori", "ingest"),
        ("mimamori", "api"),
        ("mimamori", "alerts", "run"),
        ("mimamori", "db", "migrate"),
    }
    assert required <= commands
    for command in sorted(commands):
        assert command[0] == "mimamori"
        run = subprocess.run(
            [sys.executable, "-m", "hub.cli", *command[1:], "--help"], capture_output=True, text=True, timeout=60
        )
        assert run.returncode == 0, f"`{' '.join(command)}` is not a mimamori command: {run.stderr}"


def test_long_running_processes_restart_and_have_stable_distinct_client_ids():
    ingest = {n: s for n, s in HUB_SERVICES.items() if s.get("command") == ["mimamori", "ingest"]}
    alerts = {n: s for n, s in HUB_SERVICES.items() if s.get("command") == ["mimamori", "alerts", "run"]}
    assert len(ingest) >= 2 and len(alerts) >= 2
    ingest_ids = [s["environment"]["MIMAMORI_MQTT_CLIENT_ID"] for s in ingest.values()]
    alert_ids = [s["environment"]["MIMAMORI_ALERTS_MQTT_CLIENT_ID"] for s in alerts.values()]
    assert len(set(ingest_ids)) == len(ingest_ids) and len(set(alert_ids)) == len(alert_ids)
    for name, service in SERVICES.items():
        if name in ("migrate", "broker-init", "grafana-role"):
            assert service["restart"] == "no"
        else:
            assert service["restart"] == "always", name
    for unit in UNITS:
        text = unit.read_text()
        if "Type=oneshot" not in text:
            assert "Restart=always" in text, unit.name
    assert "MIMAMORI_MQTT_CLIENT_ID=mimamori-ingest-%i" in (SYSTEMD_DIR / "mimamori-ingest@.service").read_text()


def test_each_hub_process_logs_in_with_the_account_bound_to_its_client_id():
    """The broker binds each account to one client id: a process other than the first of its kind logs in with
    the account named after its id (what `mimamori broker init|migrate --ingest-id/--alerts-id` creates)."""
    for service in HUB_SERVICES.values():
        env = service.get("environment") or {}
        for id_var, user_var, first in (
            ("MIMAMORI_MQTT_CLIENT_ID", "MIMAMORI_MQTT_USERNAME", "mimamori-ingest-1"),
            ("MIMAMORI_ALERTS_MQTT_CLIENT_ID", "MIMAMORI_ALERTS_MQTT_USERNAME", "mimamori-alerts-1"),
        ):
            client_id = env.get(id_var)
            if client_id and client_id != first:
                assert env.get(user_var) == client_id, (client_id, env)
                assert (
                    f"--{'ingest' if 'ALERTS' not in id_var else 'alerts'}-id {client_id}"
                    in (COMPOSE_DIR / "broker-init.sh").read_text()
                )
    unit = (SYSTEMD_DIR / "mimamori-ingest@.service").read_text()
    assert "MIMAMORI_MQTT_USERNAME=mimamori-ingest-%i " in unit.split("ExecStart=", 1)[1]


def test_only_https_and_mqtts_are_published_and_metrics_stay_inside():
    published = {name: s["ports"] for name, s in SERVICES.items() if s.get("ports")}
    assert published == {"mosquitto": ["8883:8883"], "caddy": ["80:80", "443:443", "443:443/udp"]}
    caddy = (COMPOSE_DIR / "Caddyfile").read_text()
    assert re.search(r"@internal path /metrics /metrics/\*\s+respond @internal 404", caddy)
    upstreams = set(re.search(r"reverse_proxy (api-[^{]+)\{", caddy).group(1).split())  # type: ignore[union-attr]
    api_services = {n for n, s in HUB_SERVICES.items() if s.get("command") == ["mimamori", "api"]}
    assert upstreams == {f"{n}:8000" for n in api_services}


def test_no_secret_is_written_in_the_compose_file():
    for name, service in SERVICES.items():
        for key in service.get("environment") or {}:
            if re.search(r"PASSWORD|TOKEN|SECRET|DATABASE_URL", key) and not key.endswith(("_FILE", "__FILE")):
                pytest.fail(f"{name}: {key} has a value in the compose file")
    for secret in COMPOSE["secrets"].values():
        assert secret["file"].startswith("./secrets/")
    assert "secrets/" in (COMPOSE_DIR / ".gitignore").read_text().split()


def test_the_image_holds_every_package_and_syncs_the_lock_without_dev_tools():
    dockerfile = (COMPOSE_DIR / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", dockerfile, re.M)
    assert "uv sync --locked --no-dev" in dockerfile
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"][
        "packages"
    ]
    copied = set(re.findall(r"^COPY (\S+) \1$", dockerfile, re.M))
    assert set(packages) <= copied
    for source in re.findall(r"^COPY (?!--)([^\n]+) \S+$", dockerfile, re.M):
        for path in source.split():
            assert (ROOT / path).exists(), f"the Dockerfile copies {path}, which is not in the repository"
    build = HUB_SERVICES["migrate"]["build"]
    assert (COMPOSE_DIR / build["context"] / build["dockerfile"]).resolve() == (COMPOSE_DIR / "Dockerfile")
    for service in SERVICES.values():
        for volume in service.get("volumes", []):
            host = volume.split(":")[0]
            if host.startswith("../") or host in ("./Caddyfile", "./grafana-role.sql"):
                assert (COMPOSE_DIR / host).exists(), f"{host} is mounted but missing"
        if "image" in service and not service.get("build"):
            assert not service["image"].endswith(":latest") and ":" in service["image"], "pin third-party images"


def test_entrypoint_turns_secret_files_into_settings(tmp_path):
    secret = tmp_path / "database_url"
    secret.write_text("postgresql://mimamori:s3cret@db:5432/mimamori\n")
    env = {"PATH": os.environ["PATH"], "MIMAMORI_DATABASE_URL_FILE": str(secret)}
    run = subprocess.run(
        [
            "sh",
            str(COMPOSE_DIR / "entrypoint.sh"),
            "sh",
            "-c",
            'echo "$MIMAMORI_DATABASE_URL|${MIMAMORI_DATABASE_URL_FILE-}"',
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout == "postgresql://mimamori:s3cret@db:5432/mimamori|\n"

    env["MIMAMORI_DATABASE_URL_FILE"] = str(tmp_path / "missing")
    run = subprocess.run(["sh", str(COMPOSE_DIR / "entrypoint.sh"), "true"], env=env, capture_output=True, text=True)
    assert run.returncode == 2
    assert "MIMAMORI_DATABASE_URL_FILE: cannot read" in run.stderr


def _self_signed(folder: Path) -> None:
    openssl = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost"]
    subprocess.run(
        [
            *openssl,
            "-addext",
            "subjectAltName=DNS:localhost",
            "-keyout",
            str(folder / "server.key"),
            "-out",
            str(folder / "server.crt"),
        ],
        check=True,
        capture_output=True,
    )
    shutil.copy(folder / "server.crt", folder / "ca.crt")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed: cannot make a test certificate")
@pytest.mark.services  # starts a Mosquitto of its own
def test_broker_init_renders_the_project_config_with_tls_and_the_hub_can_log_in():
    # Mosquitto started as root drops to its own user, which must reach these folders (pytest's tmp_path is 0700).
    root = Path(tempfile.mkdtemp(prefix="mimamori-deploy-"))
    root.chmod(0o755)
    try:
        _broker_init_then_tls_login(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _broker_init_then_tls_login(root: Path) -> None:
    data, handoff, certs = root / "data", root / "handoff", root / "certs"
    certs.mkdir(mode=0o755)
    _self_signed(certs)
    for f in certs.iterdir():
        f.chmod(0o644)  # a throw-away test key; in production: readable by the broker's user only (README.md)
    env = outside_environment() | {
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "BROKER_DATA": str(data),
        "BROKER_TEMPLATE": str(ROOT / "deploy/mosquitto/mosquitto.conf"),
        "HUB_CREDENTIALS_DIR": str(handoff),
        "HUB_UID": str(os.getuid()),
    }
    for _ in range(2):  # it runs on every `compose up`: the second run keeps the accounts
        run = subprocess.run(["sh", str(COMPOSE_DIR / "broker-init.sh")], env=env, capture_output=True, text=True)
        assert run.returncode == 0, run.stdout + run.stderr
    conf = (data / "mosquitto.conf").read_text()
    assert re.search(r"^listener 1883 0\.0\.0\.0$", conf, re.M)
    assert re.search(r"^listener 8883$", conf, re.M) and re.search(r"^tls_version tlsv1\.2$", conf, re.M)
    assert oct((handoff / "hub-credentials.env").stat().st_mode & 0o777) == "0o600"
    creds = dict(ln.split("=", 1) for ln in (handoff / "hub-credentials.env").read_text().splitlines())

    # Start the rendered configuration (ports and certificate folder moved for this machine) and log in over TLS
    # as the hub's ingestor.
    plain, tls = free_port(), free_port()
    conf = conf.replace("listener 1883 0.0.0.0", f"listener {plain} 127.0.0.1").replace(
        "listener 8883", f"listener {tls} 127.0.0.1"
    )
    (data / "mosquitto.conf").write_text(conf.replace("/etc/mosquitto/certs/", f"{certs}/"))
    broker = subprocess.Popen(["mosquitto", "-c", str(data / "mosquitto.conf")], stderr=subprocess.PIPE)
    try:
        try:
            wait_for_port(tls)
        except TimeoutError:
            broker.kill()
            pytest.fail(f"the rendered configuration did not start: {broker.communicate()[1].decode()[-2000:]}")
        # Each compose service's account, under its client id (and only that: the broker binds them).
        ingest, alerts = creds["MIMAMORI_MQTT_PASSWORD"], creds["MIMAMORI_ALERTS_MQTT_PASSWORD"]
        for username, password, client_id, accepted in (
            (creds["MIMAMORI_MQTT_USERNAME"], ingest, "mimamori-ingest-1", True),
            ("mimamori-ingest-2", ingest, "mimamori-ingest-2", True),
            (creds["MIMAMORI_ALERTS_MQTT_USERNAME"], alerts, "mimamori-alerts-1", True),
            ("mimamori-alerts-2", alerts, "mimamori-alerts-2", True),
            (creds["MIMAMORI_MQTT_USERNAME"], ingest, "deploy-test", False),
        ):
            connected: list[object] = []
            client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
            client.username_pw_set(username, password)
            client.tls_set(ca_certs=str(certs / "ca.crt"), cert_reqs=ssl.CERT_REQUIRED)
            client.on_connect = lambda _c, _u, _f, reason, _p, got=connected: got.append(reason)
            client.connect("localhost", tls)
            client.loop_start()
            wait_until(lambda got=connected: got, what="a CONNACK over TLS")
            client.loop_stop()
            client.disconnect()
            assert connected[0].is_failure is not accepted, (username, client_id, connected[0])
    finally:
        broker.terminate()
        broker.wait(timeout=10)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_units_pass_systemd_analyze_verify(tmp_path):
    # Installed paths and the service user do not exist on a development machine: point them at this checkout.
    for unit in [*UNITS, *SYSTEMD_DIR.glob("*.target")]:
        text = (
            unit.read_text()
            .replace("/opt/mimamori/.venv/bin/mimamori", str(Path(sys.executable).parent / "mimamori"))
            .replace("/opt/mimamori", str(ROOT))
            .replace("/etc/mimamori/mimamori.env", str(SYSTEMD_DIR / "mimamori.env.example"))
            .replace("User=mimamori", "User=root")
            .replace("Group=mimamori", "Group=root")
        )
        name = unit.name.replace("@.service", "@1.service")
        (tmp_path / name).write_text(text)
    names = sorted(str(p) for p in tmp_path.glob("*.service"))
    run = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *names], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    problems = [ln for ln in (run.stdout + run.stderr).splitlines() if "mimamori" in ln]
    assert run.returncode == 0 and problems == [], "\n".join(problems)


def test_docker_compose_config_accepts_the_file(tmp_path):
    probe = (
        subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
        if shutil.which("docker")
        else None
    )
    if probe is None or probe.returncode != 0:
        pytest.skip(
            "`docker compose` is not available on this machine (docker client without the compose plugin): "
            "the compose file was checked by the other tests only"
        )
    env = os.environ | {
        "HUB_DOMAIN": "hub.example",
        "GRAFANA_DOMAIN": "grafana.example",
        "ACME_EMAIL": "ops@example",
        "MIMAMORI_ALERTS_CAP_SENDER": "hub@example",
    }
    run = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE_DIR / "compose.yaml"), "config", "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
