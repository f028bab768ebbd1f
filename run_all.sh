#!/usr/bin/env bash
# Regenerates every table and figure of the bundle into paper_figures/.
#
#   ./run_all.sh                  the embedded scale (CPU, under an hour)
#   ./run_all.sh --scale=paper    CIFAR-10 and the full PixelCNN++ (GPUs)
#   ./run_all.sh --scale=smoke    tiny, for checking the machinery
#   ./run_all.sh --shard=I/N      train only shard I of N (see README.md)
#   ./run_all.sh --experiments=mi_per_layer,architectures   a selection
#
# Trained models, estimates and samples are kept in cache/, so a second run
# trains nothing and only redraws the figures. Gin files and bindings given
# here are read after each experiment's own, e.g.
#   ./run_all.sh --gin_param='run.seed = 1' --output_root=/tmp/seed1
# Results of a scale other than the embedded one go to paper_figures/<scale>/.
# All experiments run in one Python process (repro/run_all.py); the first
# that fails stops the run, which exits non-zero naming it.
set -euo pipefail
cd "$(dirname "$0")"
exec python -m repro.run_all "$@"
