#!/usr/bin/env bash
# Regenerates every table and figure of the bundle into paper_figures/.
#
#   ./run_all.sh            the embedded scale (CPU, minutes)
#
# Trained models are kept in cache/, so a second run only redraws figures.
# Extra arguments are passed to every experiment, e.g.
#   ./run_all.sh --gin_param='run.seed = 1'
set -euo pipefail
cd "$(dirname "$0")"

EXPERIMENTS=(mi_per_layer)

for name in "${EXPERIMENTS[@]}"; do
  echo "== ${name}"
  if ! python -m repro.main --gin_file="gin/${name}.gin" "$@"; then
    echo "run_all.sh: experiment ${name} failed" >&2
    exit 1
  fi
done
