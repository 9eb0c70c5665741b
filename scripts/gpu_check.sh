#!/usr/bin/env bash
# One-shot GPU check for a session that has a GPU machine (H100/H200, CUDA torch, nvcc, ninja, no internet).
# Run from the repository root:   bash scripts/gpu_check.sh
#
# Steps (each under `timeout`, the whole script within GPU_CHECK_BUDGET seconds, default 520 < 9 minutes):
#   env       nvidia-smi, torch, nvcc versions
#   compile   scripts/check_cuda_compile.sh for sm_90 (torch-free kernel TU)
#   build     pip install --no-build-isolation --no-deps --no-index -e .  (TORCH_CUDA_ARCH_LIST=9.0);
#             falls back to `python setup.py build_ext --inplace`
#   import    na_cuda.backends() must report cuda True with a GPU visible
#   smoke     scripts/gpu_smoke.py --large: every op x dtype on CUDA against the CPU kernels, T*N > 2^31
#   pytest    python -m pytest -q -m cuda tests
#   memcheck  compute-sanitizer --tool memcheck python -m pytest -q -x -m cuda tests -k "not large"
#             (caching allocator off, so an out-of-bounds access is not hidden inside a pooled block)
#   initcheck compute-sanitizer --tool initcheck on scripts/gpu_smoke.py --quick (workspace read before written)
#   bench     python benchmarks/bench_lif.py --device cuda --out $OUT/bench   (if that file exists)
#             else scripts/gpu_smoke.py --quick --bench
# Logs go to $OUT/gpu_check/ (the device runner sets OUT; default ./gpu_check_out): one log per step and
# summary.txt with each step's status and time. A step skipped for lack of time, or a pytest that collected no
# test (exit 5), is reported but not a failure. Exit status: 0 when every step that ran passed.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUTDIR="${OUT:-$PWD/gpu_check_out}/gpu_check"
mkdir -p "${OUTDIR}"
SUMMARY="${OUTDIR}/summary.txt"
: >"${SUMMARY}"
BUDGET="${GPU_CHECK_BUDGET:-520}"
PY="${PYTHON:-$(command -v python || command -v python3)}"
export PY
FAILED=0

# step NAME CAP_SECONDS CMD...: runs CMD under timeout min(CAP, time left - 10 s), logs to $OUTDIR/NAME.log.
step() {
  local name="$1" cap="$2"
  shift 2
  local left=$((BUDGET - SECONDS - 10))
  local limit=$((cap < left ? cap : left))
  if ((limit < 15)); then
    echo "[gpu_check] ${name}: SKIPPED (out of time budget)" | tee -a "${SUMMARY}"
    return 99
  fi
  echo "[gpu_check] ${name}: running (limit ${limit} s): $*"
  local t0=${SECONDS}
  timeout --kill-after=10 "${limit}" "$@" >"${OUTDIR}/${name}.log" 2>&1
  local rc=$?
  local status=ok
  if ((rc == 124 || rc == 137)); then status="TIMEOUT"; elif ((rc != 0)); then status="FAILED rc=${rc}"; fi
  echo "[gpu_check] ${name}: ${status} ($((SECONDS - t0)) s)" | tee -a "${SUMMARY}"
  tail -n 25 "${OUTDIR}/${name}.log" | sed "s/^/    /"
  return "${rc}"
}

# check NAME CAP CMD...: step, and a failure (other than a skip, or pytest's "no test collected") fails the run.
check() {
  step "$@"
  local rc=$?
  case "${rc}" in
    0 | 99) ;;                                                   # passed, or skipped for lack of time
    5) [[ "$1" == pytest || "$1" == memcheck ]] || FAILED=1 ;;  # pytest's "no test collected"
    *) FAILED=1 ;;
  esac
  return "${rc}"
}

# CUDA_HOME: torch derives it from `which nvcc`, which is wrong when nvcc is a wrapper script (e.g. /usr/local/bin
# -> CUDA_HOME=/usr/local, no libcudart to link). Prefer the directory nvcc really lives in.
if [[ -z "${CUDA_HOME:-}" ]]; then
  NVCC_BIN="$(command -v nvcc || true)"
  for cand in "$(dirname "$(dirname "$(readlink -f "${NVCC_BIN:-/nonexistent}")")")" /usr/local/cuda; do
    if [[ -x "${cand}/bin/nvcc" && -e "${cand}/include/cuda_runtime.h" ]]; then export CUDA_HOME="${cand}"; break; fi
  done
fi
export PATH="${CUDA_HOME:+${CUDA_HOME}/bin:}${PATH}"
# torch's ATen/cuda headers include cusparse.h / cublas_v2.h; a minimal toolkit may lack them while the pip CUDA
# wheels next to torch ship them: append those include dirs (CPATH comes after -I, so the toolkit's own win).
if [[ ! -e "${CUDA_HOME:-/nonexistent}/include/cusparse.h" ]]; then
  SITE="$("${PY}" -c 'import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))' 2>/dev/null)"
  for inc in "${SITE}"/nvidia/*/include; do
    [[ -e "${inc}/cusparse.h" || -e "${inc}/cublas_v2.h" ]] && export CPATH="${CPATH:+${CPATH}:}${inc}"
  done
fi
export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}"
export MAX_JOBS="${MAX_JOBS:-$(nproc)}"

env_report() {
  nvidia-smi || true
  echo "python: ${PY} ($("${PY}" --version 2>&1))"
  "${PY}" -c 'import torch; ok = torch.cuda.is_available()
print("torch", torch.__version__, "cuda", torch.version.cuda, "gpu", ok, torch.cuda.get_device_name() if ok else "")'
  echo "nvcc: $(command -v nvcc) $(nvcc --version | grep -o 'release [0-9.]*')"
  echo "CUDA_HOME=${CUDA_HOME:-} CPATH=${CPATH:-} TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST} MAX_JOBS=${MAX_JOBS}"
  local san
  san="$(command -v compute-sanitizer || ls "${CUDA_HOME:-/nonexistent}/bin/compute-sanitizer" 2>/dev/null \
    || echo none)"
  echo "compute-sanitizer: ${san}"
}

build() {
  "${PY}" -m pip install --no-build-isolation --no-deps --no-index -v -e . && return 0
  echo "[gpu_check] pip install -e failed; trying setup.py build_ext --inplace"
  "${PY}" setup.py build_ext --inplace
}

import_check() {
  "${PY}" - <<'EOF'
import na_cuda, torch
info = na_cuda.backends()
print(info)
assert info["cuda"], "na_cuda was built without CUDA kernels"
assert torch.cuda.is_available(), "no GPU visible to torch"
c = torch.randn(8, 1024, device="cuda")
y = torch.ops.na_cuda.lif(c, 5.0, 3.0, 1.0, False, "psc", "na", "paper", 1, 1.0, "rect", 1.0, False)
torch.cuda.synchronize()
print("lif on", y.device, "sum", float(y.sum()))
EOF
}

export -f env_report build import_check

step env 30 bash -c env_report
check compile 90 env CUDA_ARCHS=90 bash scripts/check_cuda_compile.sh
if check build 300 bash -c build; then
  check import 60 bash -c import_check
  check smoke 120 "${PY}" scripts/gpu_smoke.py --large
  HAVE_TESTS=0
  if ! compgen -G "tests/*.py" >/dev/null; then
    echo "[gpu_check] pytest: SKIPPED (no tests/*.py)" | tee -a "${SUMMARY}"
  elif ! "${PY}" -c "import pytest" 2>/dev/null; then
    echo "[gpu_check] pytest: SKIPPED (pytest not installed for ${PY}; the smoke step ran)" | tee -a "${SUMMARY}"
  else
    HAVE_TESTS=1
    check pytest 180 "${PY}" -m pytest -q -m cuda tests
  fi
  SANITIZER="$(command -v compute-sanitizer || true)"
  if [[ -z "${SANITIZER}" && -x "${CUDA_HOME:-/nonexistent}/bin/compute-sanitizer" ]]; then
    SANITIZER="${CUDA_HOME}/bin/compute-sanitizer"
  fi
  if [[ -n "${SANITIZER}" ]]; then
    if ((HAVE_TESTS)); then
      check memcheck 150 env PYTORCH_NO_CUDA_MEMORY_CACHING=1 "${SANITIZER}" --tool memcheck --error-exitcode 1 \
        "${PY}" -m pytest -q -x -m cuda tests -k "not large"
    fi
    check initcheck 90 env PYTORCH_NO_CUDA_MEMORY_CACHING=1 "${SANITIZER}" --tool initcheck --error-exitcode 1 \
      "${PY}" scripts/gpu_smoke.py --quick
  else
    echo "[gpu_check] memcheck/initcheck: SKIPPED (compute-sanitizer not found)" | tee -a "${SUMMARY}"
  fi
  if [[ -f benchmarks/bench_lif.py ]]; then
    check bench 150 "${PY}" benchmarks/bench_lif.py --device cuda --out "${OUT:-$PWD/gpu_check_out}/bench"
  else
    check bench 60 "${PY}" scripts/gpu_smoke.py --quick --bench
  fi
fi

echo "[gpu_check] total ${SECONDS} s; logs in ${OUTDIR}" | tee -a "${SUMMARY}"
echo "[gpu_check] summary:"
cat "${SUMMARY}"
if ((FAILED)); then echo "[gpu_check] RESULT: FAILED"; else echo "[gpu_check] RESULT: ok"; fi
exit "${FAILED}"
