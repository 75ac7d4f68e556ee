# syntax=docker/dockerfile:1
# The `placeguard` command in an image: `docker build -t placeguard .`, or let
# docker-compose.yml build it. Node 24 runs the TypeScript sources as they are
# (type stripping), so nothing is compiled: the stages keep npm's work and
# cache out of the image that runs.
ARG NODE_IMAGE=node:24-bookworm-slim

# --- dependencies: the lockfile's production packages, nothing else ----------
# --omit=dev: the `node` devDependency pins Node 24 for npm scripts on a host;
# here the base image is Node 24. --ignore-scripts: no runtime dependency needs
# an install script, and none runs at build time.
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# --- runtime -----------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    PLACEGUARD_DATA_DIR=/data
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json package-lock.json ./
# Only what the CLI loads; the files stay root-owned, so the service cannot
# rewrite its own code or policies (mount a policies directory to change them).
COPY bin ./bin
COPY cli ./cli
COPY app ./app
COPY shared ./shared
COPY pki ./pki
COPY broker ./broker
COPY cluster ./cluster
COPY collector ./collector
COPY detection ./detection
COPY fleet ./fleet
COPY policies ./policies
COPY delivery ./delivery
COPY db ./db
COPY audit ./audit
COPY advisories ./advisories
COPY agent-sim ./agent-sim
COPY dashboards ./dashboards
# The data directory (fleet PKI with the CA key, spool, alert book) and
# /pki-public (where docker-compose's pki-crl service publishes the PKI's
# public part for the broker, without the CA key) belong to the unprivileged
# `node` user of the base image; a new named volume takes this ownership.
RUN mkdir -p /data /pki-public && chown node:node /data /pki-public && chmod 700 /data /pki-public
USER node
VOLUME /data
# MQTT over mutual TLS (broker), HTTP API and web dashboard (collector).
EXPOSE 8883 8080
# No HEALTHCHECK here: one image runs the broker, the collector, the simulator
# and one-shot PKI commands, and each is checked its own way in
# docker-compose.yml.
ENTRYPOINT ["node", "bin/placeguard.js"]
CMD ["--help"]
