#!/bin/sh
# Entry point of the hub image. Secrets arrive as files (Docker secrets, mounted files), never as values in the
# compose file: for each MIMAMORI_<NAME>_FILE=/path, MIMAMORI_<NAME> is set to the file's content. Then the
# broker accounts broker-init wrote for the hub (when present) are loaded, and the command runs.
set -eu

for name in $(env | sed -n 's/^\(MIMAMORI_[A-Z0-9_]*\)_FILE=.*/\1/p'); do
  file=$(printenv "${name}_FILE")
  if [ ! -r "$file" ]; then
    echo "${name}_FILE: cannot read $file" >&2
    exit 2  # the hub's exit code for a configuration error
  fi
  value=$(cat "$file")
  export "${name}=${value}"
  unset "${name}_FILE"
done

# Written by broker-init (deploy/compose/broker-init.sh); variables already set take precedence.
credentials=/run/mimamori/hub-credentials.env
if [ -r "$credentials" ]; then
  while IFS='=' read -r key value; do
    case "$key" in
      MIMAMORI_*) if [ -z "$(printenv "$key" || true)" ]; then export "${key}=${value}"; fi ;;
    esac
  done < "$credentials"
fi

exec "$@"
