#!/usr/bin/env bash
# Regenerate the shipped samples in data/ (the commands recorded in data/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
O="${OTVIZ:-.venv/bin/otviz}"
$O generate zee   --events 100000 --seed 1 --workers 2 --out data/zee_train.nc   --force --quiet
$O generate zee   --events 50000  --seed 2 --workers 2 --out data/zee_test.nc    --force --quiet
$O generate ttbar --events 50000  --seed 3 --workers 2 --out data/ttbar_train.nc --force --quiet
$O generate ttbar --events 25000  --seed 4 --workers 2 --out data/ttbar_test.nc  --force --quiet
$O generate wjets --events 30000  --seed 5 --workers 2 --out data/wjets.nc       --force --quiet
$O generate wjets --events 30000  --seed 6 --workers 2 --out data/wjets_centred.nc --centre --force --quiet
