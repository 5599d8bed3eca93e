#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment in .venv with the agent and its
# test tools. Used by scripts/demo.sh and scripts/test.sh; needs only python3.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    # Debian/Ubuntu ship venv/ensurepip separately.
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq python3-venv >/dev/null
fi
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
# The official Node tus server for the transport tests (needs Node.js >= 20).
if [ "${HARVEST_SKIP_NODE:-}" != 1 ]; then
    if ! command -v npm >/dev/null 2>&1; then
        if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
        $SUDO apt-get update -qq && $SUDO apt-get install -y -qq nodejs npm >/dev/null
    fi
    if [ ! -d tests/servers/node_modules/@tus/server ]; then
        (cd tests/servers && npm ci --no-audit --no-fund --loglevel=error)
    fi
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e ".[test]"
    touch "$stamp"
fi
