#!/usr/bin/env bash
# The whole check, from a fresh machine: install everything, then lint, type-check and run every test
# against real local services. `.ci/run` runs exactly this with CI=true (a missing service fails).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install.sh

export TIERMEM_CHECKOV="${TIERMEM_CHECKOV:-$PWD/.tools/checkov/bin/checkov}"
PY=.venv/bin/python

printf '\n==> ruff\n'
.venv/bin/ruff check lib tests benchmarks
.venv/bin/ruff format --check lib tests benchmarks

printf '\n==> mypy --strict lib/\n'
.venv/bin/mypy

printf '\n==> pytest\n'
set +e
$PY -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit "$status"
