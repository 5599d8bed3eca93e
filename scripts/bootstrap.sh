#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment in .venv.
#
#   bash scripts/bootstrap.sh            the agent and its test tools (what scripts/test.sh needs)
#   bash scripts/bootstrap.sh runtime    the agent only (what scripts/demo.sh needs)
#
# Needs Python >= 3.11: python3 if it is recent enough, else the newest python3.1x found,
# or the one named by PYTHON=/path/to/python3.x. A .venv made by an older Python is rebuilt.
# The test tools also need Node.js >= 20.19 for the tus server the transport tests run.
# Every Python package is installed at the version constraints.txt locks (scripts/lock.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
MODE="${1:-test}"
case "$MODE" in runtime | test) ;; *) echo "usage: $0 [runtime|test]" >&2; exit 2 ;; esac

say() { echo "bootstrap: $*" >&2; }
die() { echo "bootstrap: $*" >&2; exit 1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

recent_enough() {  # recent_enough PYTHON: exit 0 if it is Python >= 3.11
    "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null
}
version_of() { "$1" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null || echo "unknown"; }

pick_python() {
    if [ -n "${PYTHON:-}" ]; then
        command -v "$PYTHON" >/dev/null 2>&1 || die "PYTHON=$PYTHON: no such program"
        recent_enough "$PYTHON" || die "PYTHON=$PYTHON is Python $(version_of "$PYTHON"); the agent needs 3.11 or newer"
        echo "$PYTHON"
        return
    fi
    local candidate
    for candidate in python3 python3.14 python3.13 python3.12 python3.11; do
        if command -v "$candidate" >/dev/null 2>&1 && recent_enough "$candidate"; then
            echo "$candidate"
            return
        fi
    done
    local found="none"
    command -v python3 >/dev/null 2>&1 && found="python3 is $(version_of python3)"
    die "the agent needs Python 3.11 or newer ($found). Install one (Ubuntu 22.04:" \
        "apt install python3.11 python3.11-venv; or python.org) and run again, or name it: PYTHON=/path/to/python3.11 $0"
}

PY="$(pick_python)"
if ! "$PY" -c 'import venv, ensurepip' 2>/dev/null; then
    # Debian/Ubuntu ship venv/ensurepip separately, per Python version.
    package="python$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')-venv"
    say "installing $package (the venv module is missing)"
    as_root apt-get update -qq && as_root apt-get install -y -qq "$package" python3-venv >/dev/null
fi
if [ -e .venv ] && ! { [ -x .venv/bin/python ] && recent_enough .venv/bin/python; }; then
    say "rebuilding .venv: it was made by $(version_of .venv/bin/python 2>/dev/null) or is incomplete"
    rm -rf .venv
fi
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi

if [ "$MODE" = test ] && [ "${HARVEST_SKIP_NODE:-}" != 1 ]; then
    # The official Node tus server for the transport tests: @tus/server 2.x declares
    # "engines": {"node": ">=20.19.0"}, and that is what we require.
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        say "installing Node.js from the distribution (for the tus test server)"
        as_root apt-get update -qq && as_root apt-get install -y -qq nodejs npm >/dev/null
    fi
    node_version="$(node --version 2>/dev/null | sed 's/^v//')"
    if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)'; then
        die "the tus test server (@tus/server 2.x) needs Node.js 20.19 or newer; this machine has ${node_version:-none}" \
            "(Debian 12 ships 18.19). Install Node 20 or 22 LTS (nodejs.org or NodeSource) and run again."
    fi
    if [ ! -d tests/servers/node_modules/@tus/server ]; then
        say "installing the tus test server (npm ci)"
        (cd tests/servers && npm ci --no-audit --no-fund --loglevel=error)
    fi
fi

if [ "$MODE" = test ]; then extras=".[test]"; what="the agent and its test tools"; else extras="."; what="the agent"; fi
stamp=".venv/.installed-$MODE-$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
    say "installing $what into .venv (about a minute the first time)..."
    pip=(.venv/bin/python -m pip --disable-pip-version-check)
    "${pip[@]}" install -q --upgrade pip
    if [ "$MODE" = test ]; then
        # The locked set as wheels in .venv/wheels: installed from there, and the proof
        # (tests/unit/test_lock.py) that it resolves offline, with nothing but itself.
        "${pip[@]}" download -q --no-deps -d .venv/wheels -r constraints.txt
        for sdist in .venv/wheels/*.tar.gz; do
            [ -e "$sdist" ] || continue
            "${pip[@]}" wheel -q --no-deps -w .venv/wheels "$sdist" && rm "$sdist"
        done
        "${pip[@]}" install -q --constraint constraints.txt --find-links .venv/wheels -e "$extras"
    else
        "${pip[@]}" install -q --constraint constraints.txt -e "$extras"
    fi
    rm -f .venv/.installed-"$MODE"-*
    touch "$stamp"
fi
