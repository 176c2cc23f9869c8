#!/usr/bin/env bash
# `make up`: the whole hub on one laptop. Uses the Mosquitto on 127.0.0.1:1883 when one answers,
# otherwise starts a private one with the project's configuration (stopped again on exit).
set -euo pipefail
cd "$(dirname "$0")/.."
MQTT_PORT="${MIMAMORI_LAPTOP_MQTT_PORT:-1883}"
private_pid=""
cleanup() { [ -n "$private_pid" ] && kill "$private_pid" 2>/dev/null || true; }
trap cleanup EXIT

if ! (exec 3<>"/dev/tcp/127.0.0.1/${MQTT_PORT}") 2>/dev/null; then
  mkdir -p var/mosquitto
  sed -e "s|^listener 1883 .*|listener ${MQTT_PORT} 127.0.0.1|" \
      -e "s|^persistence_location .*|persistence_location $(pwd)/var/mosquitto/|" \
      deploy/mosquitto/mosquitto.conf > var/mosquitto/mosquitto.conf
  echo "[up] starting a private Mosquitto on port ${MQTT_PORT} (deploy/mosquitto/mosquitto.conf)"
  mosquitto -c var/mosquitto/mosquitto.conf >> var/mosquitto/mosquitto.log 2>&1 &
  private_pid=$!
  sleep 0.5
fi
export MIMAMORI_MQTT_URL="${MIMAMORI_MQTT_URL:-mqtt://127.0.0.1:${MQTT_PORT}}"
uv run --locked mimamori up "$@"
