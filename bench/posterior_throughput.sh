#!/usr/bin/env bash
# Posterior sampling throughput: for two_moons and gaussian_linear, 10^4 simulations, a model
# trained with fsbi's defaults, then `fsbi sample` of 10^4 samples with the default sampler
# (MALA, 2000 chains x 5 draws, thin 10, 500 warm-up steps). Prints the sampling wall time and
# samples/s, and the sampler's own step rate. Run on a quiet machine; see bench/README.md.
#
#   bench/posterior_throughput.sh [BUILD_DIR] [THREADS]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-"$root/build"}
threads=${2:-0}
fsbi="$build/bin/fsbi"
shared="$root/../shared/sbibm"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for task in two_moons gaussian_linear; do
  obs="$shared/$task/obs_1/observation.csv"
  [ -f "$obs" ] || { echo "missing $obs (the sbibm data beside the project)" >&2; exit 1; }
  "$fsbi" simulate -s "$task" -n 10000 --seed 1 -o "$work/$task.sims.h5" -q
  "$fsbi" train -d "$work/$task.sims.h5" -o "$work/$task.model.h5" --seed 1 -q
  start=$(date +%s.%N)
  "$fsbi" sample -m "$work/$task.model.h5" --observation "$obs" --num-samples 10000 -o "$work/$task.post.h5" \
    --seed 1 -t "$threads" > /dev/null 2> "$work/$task.log" || { cat "$work/$task.log" >&2; exit 1; }
  end=$(date +%s.%N)
  awk -v t="$task" -v a="$start" -v b="$end" -v info="$(grep -o 'sampling (mala).*step/s' "$work/$task.log" | tail -1)" \
    'BEGIN { s = b - a; printf "%-16s 10000 samples in %6.2f s = %8.0f samples/s   (%s)\n", t, s, 10000 / s, info }' 
done
