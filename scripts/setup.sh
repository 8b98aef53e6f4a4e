#!/usr/bin/env bash
# Create ./.venv with otviz and its dependencies. Idempotent and quick when already set up.
# torch is installed first as the pinned 2.13.0 so that pip takes the local CPU wheel
# (/opt/wheels on the project machines) and never resolves a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
stamp=.venv/.otviz-setup
want=$(cat pyproject.toml scripts/setup.sh | sha1sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    pip_install() {
        .venv/bin/python -m pip install --disable-pip-version-check -q "$@" > .venv/pip.log 2>&1 \
            || { cat .venv/pip.log; echo "setup: pip install $* failed" >&2; exit 1; }
    }
    pip_install "torch==2.13.0"
    pip_install -e ".[test]"
    .venv/bin/python -c "import otviz, torch, pythia8mc, fastjet"
    echo "$want" > "$stamp"
fi
# Browser tests drive Debian's Chromium (a Playwright browser download does not work here).
if [ ! -x /usr/bin/chromium ] && [ "${OTVIZ_NO_CHROMIUM:-0}" != 1 ]; then
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO="sudo -n"
    { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium; } \
        > .venv/apt.log 2>&1 || echo "setup: could not install chromium (browser tests will be skipped); see .venv/apt.log" >&2
fi
