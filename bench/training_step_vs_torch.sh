#!/usr/bin/env bash
# Interleaved rounds of fsbi's training step and the PyTorch reference at one shape, so that both
# see the same phase of a shared machine (bench/README.md, "Training step throughput").
#
#   bench/training_step_vs_torch.sh [--rounds R] [--model vector|energy] [--size DxK] [--block 64|128]
#                                   [--blas DIR]
#
# Per round: fsbi on 2 threads (best of 3 repetitions of BM_TrainingStepParallel with blocks of
# 64 samples, the trainer's step, unless --block 128), then
# torch_reference.py on 2 threads (best formulation of the batched ones, 2 timing rounds), and
# the ratio. Run from a configured build tree at build/ (cmake --build build).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rounds=5 model=vector size=5x10 block=64 blas=()
while (($#)); do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --block) block=$2; shift 2 ;;
    --blas) blas=(--blas "$2"); shift 2 ;;
    *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
kind=$([[ $model == energy ]] && echo 1 || echo 0)
d=${size%x*} k=${size#*x}
bench=$root/build/bench/training_step
[[ -x $bench ]] || { echo "$bench not found: build fsbi first (cmake --build build)" >&2; exit 1; }
for ((r = 1; r <= rounds; ++r)); do
  f=$("$bench" --benchmark_filter="BM_TrainingStepParallel/kind:$kind/obj:0/d:$d/k:$k/threads:2/block:$block/" \
        --benchmark_repetitions=3 --benchmark_format=csv 2>/dev/null |
      awk -F, '/^"BM_TrainingStepParallel/ && !/_(mean|median|stddev|cv)"/ {print $7}' | sort -g | tail -1)
  t=$(OPENBLAS_NUM_THREADS=1 /usr/bin/python3 "$root/bench/torch_reference.py" "${blas[@]}" --threads 2 \
        --models "$model" --sizes "$size" --formulations data:batched_vjp,u:batched_vjp --repeats 2 2>/dev/null |
      awk -v m="$model" -v d="$d" -v k="$k" '$1 == m && $2 == d && $3 == k {print $5}')
  printf 'round %d %s load %s: fsbi %.0f/s  PyTorch %s/s  ratio %.2f\n' "$r" "$(date -u +%H:%M:%S)" \
    "$(cut -d' ' -f1 /proc/loadavg)" "$f" "$t" "$(awk -v a="$f" -v b="$t" 'BEGIN {print a / b}')"
done
