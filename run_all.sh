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
# All experiments run in one Python process (repro/run_all.py); every gin
# configuration is read before the first starts, and the first experiment
# that fails stops the run, which exits non-zero naming it. One process
# peaks at more memory than one experiment alone (7.5 GB against 3.2 GB
# from an empty cache at the embedded scale); where memory is short, run
# them one at a time with --experiments=NAME.
set -euo pipefail
# Relative paths in the arguments are the caller's; the package is found
# beside this script.
here="$(cd "$(dirname "$0")" && pwd)"
export PYTHONPATH="${here}${PYTHONPATH:+:${PYTHONPATH}}"
exec python -m repro.run_all "$@"
