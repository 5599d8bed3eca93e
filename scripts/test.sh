#!/usr/bin/env bash
# The whole test suite: lint, types, unit and integration tests.
# Installs everything the tests need from the project's own files first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"

echo "== ruff"; ruff check agent tests bench
echo "== mypy"; mypy
echo "== pytest"
set +e
pytest "$@"
status=$?
set -e
if [ "$status" = 5 ]; then
    echo "pytest collected no tests: failing" >&2
    exit 1
fi
exit "$status"
