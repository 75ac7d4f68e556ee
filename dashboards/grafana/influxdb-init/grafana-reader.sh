#!/bin/bash
# The `influxdb-init` one-shot service of docker-compose.yml runs this after
# InfluxDB is healthy (its first-run setup has finished), on every
# `docker compose up`: it must succeed when run again.
#
# Gives Grafana its own InfluxQL (v1) credential that can only read the
# PlaceGuard bucket: a leaked Grafana credential can neither write nor
# delete telemetry, and cannot reach other buckets (least privilege; STRIDE
# T and I). The collector keeps the token that writes. InfluxQL finds the
# bucket through the virtual DBRP mapping InfluxDB 2.7 keeps for every
# bucket (database = bucket name), so no mapping is created here.
#
# Why not the image's /docker-entrypoint-initdb.d: a failing init script
# makes the influxdb:2.7 entrypoint delete the new data but keep the CLI
# config on the influxdb-config volume, and every later start then fails
# with `config name "default" already exists` (influxdata-docker #542).
# Here a failure only fails this one-shot; fix .env and run it again.
#
# Environment (docker-compose.yml sets it from .env): INFLUX_HOST,
# INFLUX_TOKEN (the admin token), INFLUX_ORG, PLACEGUARD_INFLUX_BUCKET,
# GRAFANA_INFLUX_USERNAME, GRAFANA_INFLUX_PASSWORD.
set -euo pipefail

: "${GRAFANA_INFLUX_USERNAME:?set GRAFANA_INFLUX_USERNAME}"
: "${GRAFANA_INFLUX_PASSWORD:?set GRAFANA_INFLUX_PASSWORD in .env (see .env.example)}"

# InfluxDB refuses v1 passwords under 8 characters, and bcrypt reads at most
# 72 bytes (anything after would be ignored). Checked before InfluxDB is
# asked, so the message names the variable to fix.
length=$(LC_ALL=C; printf '%s' "${#GRAFANA_INFLUX_PASSWORD}")
if (( length < 8 || length > 72 )); then
  echo "grafana-reader: GRAFANA_INFLUX_PASSWORD in .env is ${length} characters; InfluxDB needs 8 to 72. Set a new one (openssl rand -base64 32) and run \`docker compose up -d\` again." >&2
  exit 1
fi

: "${INFLUX_HOST:?set INFLUX_HOST}"
: "${INFLUX_TOKEN:?set INFLUXDB_ADMIN_TOKEN in .env (see .env.example)}"
: "${INFLUX_ORG:?set PLACEGUARD_INFLUX_ORG}"
: "${PLACEGUARD_INFLUX_BUCKET:?set PLACEGUARD_INFLUX_BUCKET}"
export INFLUX_HOST INFLUX_TOKEN INFLUX_ORG

bucket_id=$(influx bucket list --name "${PLACEGUARD_INFLUX_BUCKET}" --hide-headers | awk 'NR == 1 { print $1 }')
if [[ -z "${bucket_id}" ]]; then
  echo "grafana-reader: no bucket ${PLACEGUARD_INFLUX_BUCKET} in org ${INFLUX_ORG}; InfluxDB's first-run setup makes it (DOCKER_INFLUXDB_INIT_BUCKET)" >&2
  exit 1
fi

# Read whole before grep: an early-exiting grep could SIGPIPE the CLI, and
# pipefail would then take an existing login for a missing one.
existing=$(influx v1 auth list --username "${GRAFANA_INFLUX_USERNAME}" --json)
if grep -q '"id"' <<<"${existing}"; then
  # Already there (a restart, or a second run): the password follows .env,
  # which is how GRAFANA_INFLUX_PASSWORD is rotated (docs/deploy.md).
  influx v1 auth set-password --username "${GRAFANA_INFLUX_USERNAME}" --password "${GRAFANA_INFLUX_PASSWORD}" >/dev/null
  echo "grafana-reader: read-only InfluxQL user ${GRAFANA_INFLUX_USERNAME} exists; password set from .env"
else
  influx v1 auth create \
    --read-bucket "${bucket_id}" \
    --username "${GRAFANA_INFLUX_USERNAME}" \
    --password "${GRAFANA_INFLUX_PASSWORD}" \
    --description "grafana: read-only InfluxQL access to the PlaceGuard bucket" >/dev/null
  echo "grafana-reader: created read-only InfluxQL user ${GRAFANA_INFLUX_USERNAME} for bucket ${PLACEGUARD_INFLUX_BUCKET}"
fi
