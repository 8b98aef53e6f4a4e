#!/usr/bin/env bash
# Regenerate the shipped samples in data/ with the commands recorded in data/README.md (and in
# each file's attributes); the same as `otviz data regenerate` from the repository root.
set -euo pipefail
cd "$(dirname "$0")/.."
O="${OTVIZ:-.venv/bin/otviz}"
OTVIZ_HOME="$PWD" $O data regenerate --workers 2 "$@"
