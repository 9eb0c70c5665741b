#!/usr/bin/env bash
# One-shot GPU check for a session that has a GPU machine (H100/H200, CUDA torch, nvcc, no internet). It returns
# the numbers first: a step that runs out of time only costs the steps after it.
#
#   bash scripts/gpu_check.sh          (from anywhere; OUT=dir for the results, default ./gpu_check_out)
#
# Steps, in this order, each under its own `timeout` and the whole within GPU_CHECK_BUDGET seconds (default 470):
#   env        nvidia-smi, python/torch/nvcc versions; installs the wheels carried in .whl/ (spikingjelly + loguru)
#   build      installs the na_cuda wheel carried in .whl/ or dist/ (the one CI's scripts/build_wheel.sh makes:
#              the stable ABI lets a wheel built against torch 2.14 run under the GPU image's torch), else builds
#              from source: pip install --no-build-isolation --no-deps --no-index -e . (TORCH_CUDA_ARCH_LIST=9.0,
#              MAX_JOBS=16), falling back to `setup.py build_ext --inplace`
#   import     na_cuda.backends() reports CUDA kernels and a GPU
#   smoke      scripts/gpu_smoke.py --large: every op x dtype on CUDA against the CPU kernels (and how many are
#              bit-identical), T*N > 2^31
#   bench      benchmarks/bench_kernels.py --device cuda: N = 2^22, T = 5/10/20/50, fp32 + bf16, copy, targets
#   scaling    benchmarks/run.py --sections scaling: T = 5 ... 500 at 3 % and 15 % firing, NA / STBP / TSSL-BP and
#              spikingjelly, forward+backward and each backward kernel alone (warp divergence: the gap between the
#              rates); scaling.json, scaling.png
#   compile    the MNIST training step's steps/s eager against torch.compile (default, reduce-overhead = CUDA
#              graphs), NA and STBP at T = 5 (benchmarks/sections/e2e.py bench_compiled); compile.json
#   ncu        Nsight Compute metrics of the forward, NA and STBP kernels at T = 20 (DRAM/L2 bytes, instructions,
#              achieved occupancy, registers)
#   pytest     python -m pytest -m cuda tests (among them the host-sync count of tests/test_host_sync.py on CUDA;
#              against the installed wheel when one was installed)
#   initcheck  compute-sanitizer --tool initcheck on scripts/gpu_smoke.py --quick (reads before writes)
#   memcheck   compute-sanitizer --tool memcheck on scripts/gpu_smoke.py --quick (out-of-bounds accesses)
# Python: the first of $PYTHON, python3, python that imports torch (the GPU image's torch is in python3).
# GPU_CHECK_DEVICE=cpu is a dry run of the script itself on a machine without a GPU: import does not require
# CUDA, smoke and bench run with --device cpu (small N), ncu and the sanitizers are skipped.
#
# Files under $OUT (at most 8; the device runner returns no more): gpu_check.log (every step's full output),
# summary.txt (one line per step, then the benchmark's targets), bench.json, scaling.json, scaling.png, compile.json,
# ncu.csv. Status per step: ok,
# FAILED, TIMEOUT (a failure), SKIPPED (not run: no time, tool or prerequisite), INCONCLUSIVE (ncu or a sanitizer
# ran out of time: no verdict, not a failure). Exit status 0 when no step failed.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT="${OUT:-$PWD/gpu_check_out}"
mkdir -p "${OUT}"
LOG="${OUT}/gpu_check.log"
SUMMARY="${OUT}/summary.txt"
: >"${LOG}"
: >"${SUMMARY}"
BUDGET="${GPU_CHECK_BUDGET:-470}"
DEVICE="${GPU_CHECK_DEVICE:-cuda}"
export DEVICE
SCRATCH="$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")"
trap 'rm -rf "${SCRATCH}"' EXIT
FAILED=0

note() { echo "[gpu_check] $*" | tee -a "${LOG}"; }
record() { echo "$*" | tee -a "${SUMMARY}" >>"${LOG}"; echo "[gpu_check] $*"; }

# step NAME CAP SOFT CMD...: runs CMD under timeout min(CAP, time left - 15 s), output appended to the log.
# SOFT=1: a time-out is INCONCLUSIVE rather than a failure. Returns CMD's status (99: skipped).
step() {
  local name="$1" cap="$2" soft="$3"
  shift 3
  local left=$((BUDGET - SECONDS - 15))
  local limit=$((cap < left ? cap : left))
  if ((limit < 10)); then
    record "${name}: SKIPPED (out of time budget)"
    return 99
  fi
  note "=== ${name} (limit ${limit} s): $*"
  local t0=${SECONDS} rc status
  timeout --kill-after=10 "${limit}" "$@" >"${SCRATCH}/step.log" 2>&1
  rc=$?
  cat "${SCRATCH}/step.log" >>"${LOG}"
  if ((rc == 124 || rc == 137)); then
    if ((soft)); then
      status="INCONCLUSIVE (timed out after ${limit} s: no verdict)"
    else
      status="TIMEOUT"
      FAILED=1
    fi
  elif ((rc != 0)); then
    status="FAILED rc=${rc}"
    FAILED=1
  else
    status="ok"
  fi
  record "${name}: ${status} ($((SECONDS - t0)) s)"
  if [[ "${status}" != ok ]]; then tail -n 15 "${SCRATCH}/step.log" | sed 's/^/    /'; fi
  return "${rc}"
}

skip() { record "$1: SKIPPED ($2)"; }

# The interpreter: the first candidate that imports torch.
PY=""
for cand in ${PYTHON:-} python3 python; do
  if command -v "${cand}" >/dev/null 2>&1 && "${cand}" -c "import torch" >/dev/null 2>&1; then
    PY="$(command -v "${cand}")"
    break
  fi
done
if [[ -z "${PY}" ]]; then
  record "env: FAILED (none of \$PYTHON, python3, python imports torch)"
  exit 1
fi
export PY

# CUDA_HOME: torch derives it from `which nvcc`, which is wrong when nvcc is a wrapper script (e.g. /usr/local/bin
# -> CUDA_HOME=/usr/local, no libcudart to link). Prefer the directory nvcc really lives in.
if [[ -z "${CUDA_HOME:-}" ]]; then
  NVCC_BIN="$(command -v nvcc || true)"
  for cand in "$(dirname "$(dirname "$(readlink -f "${NVCC_BIN:-/nonexistent}")")")" /usr/local/cuda; do
    if [[ -x "${cand}/bin/nvcc" && -e "${cand}/include/cuda_runtime.h" ]]; then export CUDA_HOME="${cand}"; break; fi
  done
fi
export PATH="${CUDA_HOME:+${CUDA_HOME}/bin:}${PATH}"
export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}"
export MAX_JOBS="${MAX_JOBS:-16}"
SANITIZER="$(command -v compute-sanitizer || true)"
if [[ -z "${SANITIZER}" && -x "${CUDA_HOME:-/nonexistent}/bin/compute-sanitizer" ]]; then
  SANITIZER="${CUDA_HOME}/bin/compute-sanitizer"
fi
NCU="$(command -v ncu || true)"
if [[ -z "${NCU}" && -x "${CUDA_HOME:-/nonexistent}/bin/ncu" ]]; then NCU="${CUDA_HOME}/bin/ncu"; fi
export SANITIZER NCU

env_report() {
  nvidia-smi || true
  echo "python: ${PY} ($("${PY}" --version 2>&1))"
  "${PY}" -c 'import torch; ok = torch.cuda.is_available()
print("torch", torch.__version__, "cuda", torch.version.cuda, "gpu", ok, torch.cuda.get_device_name() if ok else "")'
  echo "nvcc: $(command -v nvcc) $(nvcc --version | grep -o 'release [0-9.]*')"
  echo "CUDA_HOME=${CUDA_HOME:-} TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST} MAX_JOBS=${MAX_JOBS}"
  echo "compute-sanitizer: ${SANITIZER:-none}  ncu: ${NCU:-none}  cores: $(nproc)"
  local peers
  peers=$(ls .whl/*.whl 2>/dev/null | grep -v '/na_cuda-' || true)
  if [[ -n "${peers}" ]]; then
    echo "installing the carried wheels: $(echo ${peers})"
    "${PY}" -m pip install --no-index --no-deps ${peers} || echo "wheel install failed (benchmark runs without them)"
  fi
}

# The na_cuda wheel to test, if one was carried (newest first).
WHEEL="$(ls -t .whl/na_cuda-*.whl dist/na_cuda-*.whl 2>/dev/null | head -1 || true)"
export WHEEL

build() {
  if [[ -n "${WHEEL}" ]]; then
    echo "[gpu_check] installing the wheel ${WHEEL} (no build)"
    "${PY}" -m pip install --no-index --no-deps --force-reinstall "${WHEEL}"
    return
  fi
  "${PY}" -m pip install --no-build-isolation --no-deps --no-index -e . && return 0
  echo "[gpu_check] pip install -e failed; trying setup.py build_ext --inplace"
  "${PY}" setup.py build_ext --inplace
}

import_check() {
  (cd "${SCRATCH}" && "${PY}" - <<'EOF'
import os, na_cuda, torch
print("na_cuda from", os.path.dirname(na_cuda.__file__))
info = na_cuda.backends()
print(info)
dev = os.environ["DEVICE"]
assert info[dev], f"na_cuda was built without {dev} kernels"
assert dev == "cpu" or torch.cuda.is_available(), "no GPU visible to torch"
EOF
  )
}

# The T sweep (benchmarks/sections/scaling.py) into scaling.json and scaling.png; --quick on a CPU dry run.
scaling_sweep() {
  local quick=""
  [[ "${DEVICE}" == cuda ]] || quick="--quick"
  "${PY}" benchmarks/run.py --device "${DEVICE}" ${quick} --sections scaling --out "${SCRATCH}/scaling" || return
  cp "${SCRATCH}/scaling/results.json" "${OUT}/scaling.json"
  cp "${SCRATCH}/scaling/scaling.png" "${OUT}/scaling.png" 2>/dev/null || true
}

# Nsight Compute: the forward, NA and STBP kernels of one --once run (fp32 and bf16, T = 20, N = 2^22).
ncu_metrics() {
  local metrics="gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum,lts__t_bytes.sum"
  metrics+=",smsp__inst_executed.sum,sm__warps_active.avg.pct_of_peak_sustained_active,launch__registers_per_thread"
  "${NCU}" --metrics "${metrics}" -k 'regex:lif_forward|na_backward|stbp_backward' --launch-count 6 \
    --export "${SCRATCH}/ncu" --force-overwrite \
    "${PY}" benchmarks/bench_kernels.py --device cuda --Ts 20 --dtypes float32,bfloat16 --once || return
  "${NCU}" --import "${SCRATCH}/ncu.ncu-rep" --csv --page raw >"${OUT}/ncu.csv"
}

# Steps/s of the MNIST training step eager against torch.compile (benchmarks/sections/e2e.py bench_compiled, the
# comparison of the benchmark suite's e2e section): NA and STBP at T = 5, batch 64; modes default and (GPU)
# reduce-overhead (CUDA graphs). Writes $OUT/compile.json and one summary line per row.
compile_check() {
  "${PY}" - <<'EOF'
import json, os, sys
sys.path.insert(0, "benchmarks")
from sections.e2e import bench_compiled
dev = os.environ["DEVICE"]
modes = ["default", "reduce-overhead"] if dev == "cuda" else ["default"]
plan = dict(e2e_compile_T=5, e2e_compile=modes, e2e_compile_methods=["na", "stbp"], e2e_batch=64,
            e2e_repeats=5, slow_repeats=2)
res = bench_compiled(plan, dev)
json.dump(res, open(os.path.join(os.environ["OUT"], "compile.json"), "w"), indent=1)
with open(os.environ["SUMMARY"], "a") as f:
    for r in res["rows"]:
        if "skipped" not in r:
            vs = r["speedup_vs_eager"]
            print(f"compile: {r['method']} T={r['T']} {r['mode']}: {r['steps_per_s']:.1f} steps/s"
                  + (f" (x{vs:.2f} eager, compile {r['compile_s']:.0f} s)" if vs else ""), file=f)
EOF
}

export -f env_report build import_check ncu_metrics compile_check scaling_sweep
export SCRATCH OUT SUMMARY

step env 60 0 bash -c env_report
if step build 240 0 bash -c build && step import 45 0 bash -c import_check; then
  if [[ "${DEVICE}" == cuda ]]; then
    step smoke 100 0 "${PY}" scripts/gpu_smoke.py --large
    step bench 120 0 "${PY}" benchmarks/bench_kernels.py --device cuda --json "${OUT}/bench.json"
  else
    step smoke 100 0 "${PY}" scripts/gpu_smoke.py --device cpu --quick
    step bench 120 0 "${PY}" benchmarks/bench_kernels.py --device cpu --N 4096 --Ts 5,20 --json "${OUT}/bench.json"
    NCU="" SANITIZER=""
  fi
  step scaling 120 0 bash -c scaling_sweep
  step compile 150 0 bash -c compile_check
  if [[ -n "${NCU}" ]]; then step ncu 90 1 bash -c ncu_metrics; else skip ncu "ncu not found or a CPU dry run"; fi
  if "${PY}" -c "import pytest" 2>/dev/null; then
    # pytest's exit 5 (no test collected) is not a failure.
    step pytest 120 0 bash -c 'if [[ -n "${WHEEL}" ]]; then bash scripts/installed_tests.sh "${PY}" -q -m cuda tests
      else "${PY}" -m pytest -q -m cuda -p no:cacheprovider tests; fi; rc=$?; exit $((rc == 5 ? 0 : rc))'
  else
    skip pytest "pytest not installed for ${PY}"
  fi
  if [[ -n "${SANITIZER}" ]]; then
    for tool in initcheck memcheck; do
      step "${tool}" 75 1 env PYTORCH_NO_CUDA_MEMORY_CACHING=1 "${SANITIZER}" --tool "${tool}" --error-exitcode 1 \
        "${PY}" scripts/gpu_smoke.py --quick
    done
  else
    skip "initcheck/memcheck" "compute-sanitizer not found or a CPU dry run"
  fi
else
  skip "smoke, bench, ncu, pytest, sanitizers" "the build or import failed"
fi

if [[ -f "${OUT}/bench.json" ]]; then
  "${PY}" - "${OUT}/bench.json" <<'EOF' | tee -a "${SUMMARY}"
import json, sys
res = json.load(open(sys.argv[1]))
print("targets (benchmarks/bench_kernels.py):")
for t in res["targets"]:
    value = "-" if t["value"] is None else f"{t['value']:.3g}"
    print(f"  {({True: 'met', False: 'MISSED', None: 'n/a'})[t['met']]:>6s}  {value:>7s}  {t['goal']}")
EOF
fi
grep -h "bit-identical" "${LOG}" | tail -n 1 | tee -a "${SUMMARY}"
record "total ${SECONDS} s; RESULT: $( ((FAILED)) && echo FAILED || echo ok)"
exit "${FAILED}"
