#!/usr/bin/env bash
# Create ./.venv with otviz, its dependencies, the test tools and JupyterLab (for notebooks/).
# Idempotent and quick when already set up.
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
    pip_install -e ".[test,notebook]"
    .venv/bin/python -c "import otviz, torch, pythia8mc, fastjet"
    .venv/bin/jupyter lab --version > /dev/null
    echo "$want" > "$stamp"
fi
# Browser tests drive Debian's Chromium (a Playwright browser download does not work here).
# apt waits up to 5 minutes for another package manager's lock instead of giving up at once.
if [ ! -x /usr/bin/chromium ] && [ "${OTVIZ_NO_CHROMIUM:-0}" != 1 ]; then
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO="sudo -n"
    APT="$SUDO apt-get -o DPkg::Lock::Timeout=300 -o Acquire::Retries=3"
    if ! { $APT update -qq && DEBIAN_FRONTEND=noninteractive $APT install -y -qq chromium; } > .venv/apt.log 2>&1; then
        cat .venv/apt.log >&2
        echo "setup: could not install chromium (see above); the browser tests skip without it, and fail with CI set" >&2
        [ -z "${CI:-}" ] || exit 1
    fi
fi
