#!/usr/bin/env bash
# The multi-epoch reproduction runs behind docs/results/reproduction/ (docs/results.md): the paper's MNIST
# network at T = 5 with each training rule, and Fashion-MNIST for NA and STBP.
#
#   bash scripts/reproduce.sh [GROUP...]
#
# GROUP: stbp | na | tssl (MNIST, EPOCHS epochs, seed 0), fmnist-na | fmnist-stbp (Fashion-MNIST), seeds-stbp |
# seeds-na | seeds-tssl (1 epoch, seeds 1 and 2: with seed 0's first epoch, the 1-epoch table); default: all.
#
# Environment: PY (python with na_cuda installed; default .venv/bin/python), DATA (the MNIST / Fashion-MNIST
# directory, passed as --data-dir; default: na_cuda's lookup, $NA_CUDA_DATA or ~/.cache/na_cuda),
# RUNS (run directories with checkpoints; default runs/reproduction), EPOCHS (default 10), JOBS (parallel runs,
# default 2, each with one thread: on a 2-core machine that is faster in total than one run with two threads).
# Each run's metrics.json and config.json are copied to docs/results/reproduction/<run>/; then
# scripts/plot_reproduction.py draws the accuracy-vs-epoch figure and the tables. A run that exists is resumed
# (--resume), so the script can be re-run after an interruption or with a larger EPOCHS.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=${DATA:-}
RUNS=${RUNS:-runs/reproduction}
EPOCHS=${EPOCHS:-10}
JOBS=${JOBS:-2}
DEST=docs/results/reproduction

# name | arguments (after --preset/--epochs/--seed). STBP's rect surrogate of width 1 is the STBP paper's; the
# width-2 rectangle is the wider surrogate (it keeps neurons that drift far from threshold trainable).
runs_stbp="mnist-stbp-rect1|--preset mnist --method stbp
mnist-stbp-rect2|--preset mnist --method stbp --set surrogate_alpha=2"
runs_na="mnist-na-released|--preset mnist --method na --fidelity released
mnist-na-paper|--preset mnist --method na"
runs_tssl="mnist-tssl|--preset mnist --method tssl"
runs_fmnist_na="fmnist-na-paper|--preset fashion-mnist --method na"
runs_fmnist_stbp="fmnist-stbp-rect1|--preset fashion-mnist --method stbp"

groups=("$@")
[ ${#groups[@]} -gt 0 ] || groups=(stbp na tssl fmnist-na fmnist-stbp seeds-stbp seeds-na seeds-tssl)

jobs_file=$(mktemp)
trap 'rm -f "$jobs_file"' EXIT
for g in "${groups[@]}"; do
  epochs=$EPOCHS seeds=0
  case "$g" in
    seeds-*) epochs=1 seeds="1 2" ;;
  esac
  case "${g#seeds-}" in
    stbp) list=$runs_stbp ;; na) list=$runs_na ;; tssl) list=$runs_tssl ;;
    fmnist-na) list=$runs_fmnist_na ;; fmnist-stbp) list=$runs_fmnist_stbp ;;
    *) echo "reproduce.sh: unknown group '$g'" >&2; exit 2 ;;
  esac
  while IFS='|' read -r name args; do
    for s in $seeds; do echo "$name-seed$s|$epochs|$s|$args" >> "$jobs_file"; done
  done <<< "$list"
done

run_one() {
  IFS='|' read -r name epochs seed args <<< "$1"
  out="$RUNS/$name"
  resume=()
  [ -f "$out/checkpoint.pt" ] && resume=(--resume)
  data=()
  [ -n "$DATA" ] && data=(--data-dir "$DATA")
  # shellcheck disable=SC2086
  OMP_NUM_THREADS=1 "$PY" -m na_cuda.train $args --epochs "$epochs" --seed "$seed" "${data[@]}" \
    --out "$out" --no-progress "${resume[@]}" > "$RUNS/$name.log" 2>&1 \
    && { mkdir -p "$DEST/$name"; cp "$out/metrics.json" "$out/config.json" "$DEST/$name/"; echo "done $name"; } \
    || echo "FAILED $name (log: $RUNS/$name.log)"
}
export -f run_one
export PY DATA RUNS DEST
mkdir -p "$RUNS"
tr '\n' '\0' < "$jobs_file" | xargs -0 -P "$JOBS" -I{} bash -c 'run_one "$@"' _ {}
