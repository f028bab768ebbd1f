#!/usr/bin/env bash
# Regenerates every table and figure of the bundle into paper_figures/.
#
#   ./run_all.sh                  the embedded scale (CPU, under an hour)
#   ./run_all.sh --scale=paper    CIFAR-10 and the full PixelCNN++ (GPUs)
#   ./run_all.sh --scale=smoke    tiny, for checking the machinery
#   ./run_all.sh --shard=I/N      train only shard I of N (see README.md)
#
# Trained models are kept in cache/, so a second run trains nothing. Other
# arguments are passed to every experiment, e.g.
#   ./run_all.sh --gin_param='run.seed = 1'
# Results of a scale other than the embedded one go to paper_figures/<scale>/.
set -euo pipefail
cd "$(dirname "$0")"

EXPERIMENTS=(mi_per_layer inversion_samples architectures mi_training_dynamics)

scale=embedded
args=()
for arg in "$@"; do
  case "$arg" in
    --scale=*) scale="${arg#--scale=}" ;;
    --shard=*)
      shard="${arg#--shard=}"
      if ! [[ "$shard" =~ ^[0-9]+/[0-9]+$ ]]; then
        echo "run_all.sh: --shard=${shard}; accepted: INDEX/COUNT, e.g. 0/4" >&2
        exit 2
      fi
      args+=("--gin_param=run.shard_index = ${shard%/*}"
             "--gin_param=run.num_shards = ${shard#*/}") ;;
    *) args+=("$arg") ;;
  esac
done
case "$scale" in
  embedded|paper|smoke) ;;
  *) echo "run_all.sh: --scale=${scale}; accepted: embedded, paper, smoke" >&2
     exit 2 ;;
esac

count=${#EXPERIMENTS[@]}
index=0
for name in "${EXPERIMENTS[@]}"; do
  index=$((index + 1))
  echo "== [${index}/${count}] ${name} (${scale} scale)"
  files=(--gin_file="gin/${name}.gin")
  output=()
  if [ "$scale" != embedded ]; then
    files+=(--gin_file="gin/scale/${scale}.gin")
    output=(--output_dir="paper_figures/${scale}/${name}")
  fi
  if ! python -m repro.main "${files[@]}" "${output[@]}" "${args[@]}"; then
    echo "run_all.sh: experiment ${name} failed" >&2
    exit 1
  fi
done
echo "run_all.sh: all ${count} experiments done (${scale} scale)."
