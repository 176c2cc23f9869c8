#!/usr/bin/env bash
# Idempotent set-up of a fresh machine for Mimamori: system packages, uv, the locked Python
# environment, and a running PostgreSQL. Used by `make up`, `make test` (with --tests: also what only the
# tests need) and CI.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1;34m[setup]\033[0m %s\n' "$*"; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

apt_packages=()
command -v mosquitto >/dev/null 2>&1 || apt_packages+=(mosquitto mosquitto-clients)
if ! command -v pg_ctlcluster >/dev/null 2>&1 && ! command -v psql >/dev/null 2>&1; then
  apt_packages+=(postgresql)
fi
pg_major() { (psql --version 2>/dev/null || echo "psql (PostgreSQL) 15") | sed -E 's/[^0-9]*([0-9]+).*/\1/'; }
PGV=$(pg_major)
if [ ! -f "/usr/share/postgresql/${PGV}/extension/postgis.control" ]; then
  apt_packages+=("postgresql-${PGV}-postgis-3")
fi
command -v ogrinfo >/dev/null 2>&1 || apt_packages+=(gdal-bin)
if [ "${1:-}" = "--tests" ]; then  # what only the test suite needs
  # the web map's browser tests drive Debian's chromium; a Japanese font so its screenshots show the Japanese UI
  command -v chromium >/dev/null 2>&1 || apt_packages+=(chromium fonts-ipafont-gothic)
  # QGIS's own OGC API – Features provider reads the geo-API in a test, through Debian's python3 and PyQGIS
  /usr/bin/python3 -c "import qgis.core" >/dev/null 2>&1 || apt_packages+=(python3-qgis qgis-providers)
fi
if [ ${#apt_packages[@]} -gt 0 ]; then
  say "installing ${apt_packages[*]} (apt)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${apt_packages[@]}" >/dev/null
fi

if ! command -v uv >/dev/null 2>&1; then
  say "installing uv (pip)"
  python3 -m pip install --quiet uv
  hash -r
fi

say "syncing the locked Python environment (uv)"
uv sync --locked --extra grafana --quiet  # the tests cover `mimamori grafana sync`

# PostgreSQL: start the local cluster when it does not answer (laptops and CI machines alike).
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  say "starting PostgreSQL"
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    cluster=$(ls /etc/postgresql | sort -V | tail -n 1)
    $SUDO pg_ctlcluster --skip-systemctl-redirect "$cluster" main start || true
  fi
  for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
  pg_isready -h 127.0.0.1 -p 5432 -q || { echo "PostgreSQL did not start" >&2; exit 1; }
fi
say "ready"
