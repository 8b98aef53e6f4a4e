#!/usr/bin/env bash
# Regenerate the shipped samples in data/ with the commands recorded in data/README.md (and in
# each file's attributes); the same as `otviz data regenerate` from the repository root.
#   data/make_data.sh [--only FILE]   the shipped samples
#   data/make_data.sh calibration     the issue-14 calibration samples in data/calibration/ (not
#                                     shipped: git-ignored; W and QCD jets, sim and data domains)
#   data/make_data.sh clusters        the issue-15 reference cluster-model samples in data/clusters/
#                                     (shipped; HadML's training sample and v2's "data")
set -euo pipefail
cd "$(dirname "$0")/.."
O="${OTVIZ:-.venv/bin/otviz}"
if [ "${1:-}" = "calibration" ]; then
  mkdir -p data/calibration
  export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
  $O generate wjets --events 20000 --seed 141 --workers 2 --centre --domain sim --out data/calibration/wjets_sim.nc --force --quiet --json
  $O generate wjets --events 20000 --seed 142 --workers 2 --centre --domain data --out data/calibration/wjets_data.nc --force --quiet --json
  $O generate qcd --events 20000 --seed 143 --workers 2 --centre --domain sim --out data/calibration/qcd_sim.nc --force --quiet --json
  $O generate qcd --events 20000 --seed 144 --workers 2 --centre --domain data --out data/calibration/qcd_data.nc --force --quiet --json
  # independent simulation the tagger never saw: the source of the OT calibration
  $O generate wjets --events 10000 --seed 145 --workers 2 --centre --domain sim --out data/calibration/wjets_simcal.nc --force --quiet --json
  $O generate qcd --events 10000 --seed 146 --workers 2 --centre --domain sim --out data/calibration/qcd_simcal.nc --force --quiet --json
  # more of the same for the calibration's closure tests (its discriminators train on 7,500-10,000 jets per side)
  $O generate wjets --events 30000 --seed 147 --workers 2 --centre --domain sim --out data/calibration/wjets_simcal_extra.nc --force --quiet --json
  $O generate wjets --events 40000 --seed 148 --workers 2 --centre --domain data --out data/calibration/wjets_data_extra.nc --force --quiet --json
  $O generate qcd --events 20000 --seed 149 --workers 2 --centre --domain sim --out data/calibration/qcd_simcal_extra.nc --force --quiet --json
  $O generate qcd --events 20000 --seed 150 --workers 2 --centre --domain data --out data/calibration/qcd_data_extra.nc --force --quiet --json
  exit 0
fi
if [ "${1:-}" = "clusters" ]; then
  mkdir -p data/clusters
  export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
  $O generate clusters --events 5000 --seed 1 --workers 2 --out data/clusters/zqq_clusters.nc --force --quiet --json
  $O generate clusters --events 2500 --seed 2 --workers 2 --smearing 0.2 --out data/clusters/zqq_clusters_smear.nc --force --quiet --json
  exit 0
fi
OTVIZ_HOME="$PWD" $O data regenerate --workers 2 "$@"
