#!/usr/bin/env bash
# `make up`: the whole hub on one laptop. Starts a private Mosquitto with the project's configuration
# (dynamic security, no anonymous clients) on 127.0.0.1:1884 with its data in ./var/mosquitto, unless
# MIMAMORI_MQTT_URL names a broker of your own (then give MIMAMORI_MQTT_USERNAME/_PASSWORD and
# MIMAMORI_MQTT_ADMIN_USERNAME/_PASSWORD yourself). The hub's broker passwords are kept in
# ./var/mosquitto/hub-credentials.env (mode 0600), never in the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
MQTT_PORT="${MIMAMORI_LAPTOP_MQTT_PORT:-1884}"
private_pid=""
cleanup() { [ -n "$private_pid" ] && kill "$private_pid" 2>/dev/null || true; }
trap cleanup EXIT

if [ -z "${MIMAMORI_MQTT_URL:-}" ]; then
  mkdir -p var/mosquitto
  uv run --locked mimamori broker init --dir var/mosquitto --port "${MQTT_PORT}"
  set -a
  # shellcheck disable=SC1091
  . var/mosquitto/hub-credentials.env
  set +a
  if ! (exec 3<>"/dev/tcp/127.0.0.1/${MQTT_PORT}") 2>/dev/null; then
    conf=var/mosquitto/mosquitto.conf
    # Run as root, Mosquitto drops to user mosquitto, which cannot reach a checkout in a private directory (root's
    # home, mode 0700): this laptop broker, on 127.0.0.1 only, then keeps root's rights instead.
    if [ "$(id -u)" = 0 ] && id mosquitto >/dev/null 2>&1 \
      && ! runuser -u mosquitto -- test -r "${PWD}/var/mosquitto/dynamic-security.json" -a -w "${PWD}/var/mosquitto" 2>/dev/null; then
      { cat var/mosquitto/mosquitto.conf; echo "user root"; } > var/mosquitto/mosquitto-as-root.conf
      conf=var/mosquitto/mosquitto-as-root.conf
    fi
    echo "[up] starting a private Mosquitto on port ${MQTT_PORT} (${conf})"
    mosquitto -c "${conf}" >> var/mosquitto/mosquitto.log 2>&1 &
    private_pid=$!
    for _ in $(seq 50); do
      (exec 3<>"/dev/tcp/127.0.0.1/${MQTT_PORT}") 2>/dev/null && break
      kill -0 "$private_pid" 2>/dev/null || { echo "[up] Mosquitto failed: see var/mosquitto/mosquitto.log" >&2; exit 1; }
      sleep 0.1
    done
  else
    echo "[up] reusing the Mosquitto already on port ${MQTT_PORT} (started by an earlier make up)"
  fi
  export MIMAMORI_MQTT_URL="mqtt://127.0.0.1:${MQTT_PORT}"
  # Every `mimamori` command run from this checkout (another terminal, the docs' commands) reads this file
  # (mimamori/settings.py): the laptop broker's address and the hub's accounts on it, as this script uses them.
  (
    umask 077
    {
      echo "# written by make up (deploy/laptop-hub.sh); the environment and ./.env win over it"
      echo "MIMAMORI_ADMIN_KEY_FILE=${MIMAMORI_ADMIN_KEY_FILE:-${PWD}/var/admin-key}"
      # The broker's address and the hub's accounts (exported above), and what this hub was started with (its
      # database, its ports): they hold for the commands beside it too.
      env | grep -E '^MIMAMORI_[A-Z0-9_]+=' | grep -vE "^MIMAMORI_(ADMIN_KEY_FILE|LAPTOP_[A-Z_]+)=|'" \
        | sed -E "s/^([^=]+)=(.*)$/\1='\2'/" || true
    } > var/laptop.env.tmp
    mv var/laptop.env.tmp var/laptop.env
  )
  # A broker initialised by an older `make up` gets its accounts bound to their client ids (a no-op after that).
  uv run --locked mimamori db migrate >/dev/null
  uv run --locked mimamori broker migrate --quiet
fi
export MIMAMORI_ADMIN_KEY_FILE="${MIMAMORI_ADMIN_KEY_FILE:-${PWD}/var/admin-key}"
uv run --locked mimamori up "$@"
