#!/bin/bash
# Run once by the influxdb:2.7 image, after its first-run setup (scripts in
# /docker-entrypoint-initdb.d; the influx CLI is configured with the admin
# token, and DOCKER_INFLUXDB_INIT_ORG_ID / _BUCKET_ID are set).
#
# Gives Grafana its own InfluxQL (v1) credential that can only read the
# PlaceGuard bucket: a leaked Grafana credential can neither write nor
# delete telemetry, and cannot reach other buckets (least privilege; STRIDE
# T and I). The collector keeps the token that writes.
set -euo pipefail

: "${GRAFANA_INFLUX_USERNAME:?set GRAFANA_INFLUX_USERNAME}"
: "${GRAFANA_INFLUX_PASSWORD:?set GRAFANA_INFLUX_PASSWORD}"

influx v1 auth create \
  --org-id "${DOCKER_INFLUXDB_INIT_ORG_ID}" \
  --read-bucket "${DOCKER_INFLUXDB_INIT_BUCKET_ID}" \
  --username "${GRAFANA_INFLUX_USERNAME}" \
  --password "${GRAFANA_INFLUX_PASSWORD}" \
  --description "grafana: read-only InfluxQL access to the PlaceGuard bucket" >/dev/null
echo "grafana-reader: created read-only InfluxQL user ${GRAFANA_INFLUX_USERNAME} for bucket ${DOCKER_INFLUXDB_INIT_BUCKET}"
