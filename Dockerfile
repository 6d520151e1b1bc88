# The image of the docker-compose harness (docs/deploy.md): Debian 12 with the project's
# packages, its source and its build. docker-compose.yml runs it as `gateway` and as `tests`.
FROM debian:12

WORKDIR /src
ARG DEBIAN_FRONTEND=noninteractive

# The package list alone decides this layer, so editing the source does not redo it. curl is
# for the healthcheck, ca-certificates for a real Codex talking to an HTTPS provider.
COPY scripts/install-deps scripts/install-deps
RUN scripts/install-deps \
 && apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends curl ca-certificates >/dev/null \
 && rm -rf /var/lib/apt/lists/*

# What scripts/test would fetch with npm (the openai SDK, the pinned Codex CLI), installed from
# the lockfiles at build time so that running the tests needs no network.
COPY tests/sdk/package.json tests/sdk/package-lock.json tests/sdk/
COPY tests/codex/package.json tests/codex/package-lock.json tests/codex/
RUN cd tests/sdk && npm ci --no-audit --no-fund \
 && cd ../codex && npm ci --no-audit --no-fund

COPY . .
RUN scripts/build

ENV PORT=11435
EXPOSE 11435
# scripts/run, opened to the container's network (see the script).
CMD ["scripts/deploy/container-gateway"]
