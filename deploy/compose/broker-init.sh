#!/bin/sh
# One-shot, before the broker starts (compose service broker-init, run as root): renders the project's broker
# configuration (deploy/mosquitto/mosquitto.conf) for the broker container with its TLS listener switched on,
# creates the dynamic-security file with the hub's accounts on the first run only, and hands the hub's broker
# credentials to the hub containers. Safe to run on every `docker compose up`.
set -eu

# Paths are the containers'; the variables exist so tests/deploy/test_deploy_files.py can run this script as-is.
data=${BROKER_DATA:-/mosquitto/data}
source=${BROKER_TEMPLATE:-/app/deploy/mosquitto/mosquitto.conf}
handoff=${HUB_CREDENTIALS_DIR:-/run/mimamori}
hub_uid=${HUB_UID:-10001}
template=$(mktemp)
trap 'rm -f "$template"' EXIT

# Uncomment the TLS listener block exactly as deploy/mosquitto/README.md tells an operator to.
sed -e 's/^#\(listener 8883\)$/\1/' \
    -e 's/^#\(cafile\|certfile\|keyfile\|tls_version\) /\1 /' \
    "$source" > "$template"
grep -q '^listener 8883$' "$template" || { echo "broker-init: no TLS listener block in the template" >&2; exit 2; }

# The plain listener stays inside the compose network (not published): the hub's own processes use it.
# Every account is bound to one client id: ingest-1 and alerts-1 use the settings' default ids, the others
# below get accounts of their own (named after their id). A broker initialised before that: see
# docs/deployment.md, `mimamori broker migrate`.
mimamori broker init --dir "$data" --port 1883 --bind 0.0.0.0 --template "$template" \
  --ingest-id mimamori-ingest-2 --alerts-id mimamori-alerts-2

# The hub's broker passwords, readable by the hub's user only (uid 10001 in the image).
install -d -m 0700 -o "$hub_uid" -g "$hub_uid" "$handoff"
install -m 0600 -o "$hub_uid" -g "$hub_uid" "$data/hub-credentials.env" "$handoff/hub-credentials.env"
