#!/usr/bin/env bash
# The whole test suite: lint, types, unit and integration tests.
# Installs everything the tests need from the project's own files first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"

echo "== ruff"; ruff check agent tests bench
echo "== mypy"; mypy
# Unit tests first (about 15 s): a failure there stops the run before the integration
# tests (about 12 minutes on a 2-core machine). Arguments go to pytest as given.
run_pytest() {
    set +e
    pytest "$@"
    local status=$?
    set -e
    if [ "$status" = 5 ]; then
        echo "pytest collected no tests: failing" >&2
        return 1
    fi
    return "$status"
}
if [ "$#" -gt 0 ]; then
    echo "== pytest $*"
    run_pytest "$@"
else
    echo "== pytest: unit tests"
    run_pytest tests/unit
    echo "== pytest: integration tests"
    run_pytest tests/integration
fi
