#!/usr/bin/env bash
# Compile-check the torch-free CUDA kernel translation units (csrc/cuda/lif_kernels.cu, with csrc/core) with nvcc for sm_80 and
# sm_90. Needs no GPU and no CUDA build of torch. Exits 0 with "skipped: nvcc not found" when nvcc is absent,
# non-zero when a unit fails to compile.
#
# The flags mirror what torch's CUDAExtension passes (plus setup.py's -O3 -fmad=false --expt-relaxed-constexpr),
# in particular the -D__CUDA_NO_HALF_*__ macros that remove __half's implicit conversions, so a kernel that only
# compiles without them fails here rather than in the full build. Front-end warnings are errors.
#
# Usage: scripts/check_cuda_compile.sh     (NVCC=/path/to/nvcc picks a compiler; CUDA_ARCHS="80 90" the targets)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NVCC="${NVCC:-$(command -v nvcc || true)}"
if [[ -z "${NVCC}" && -x /usr/local/cuda/bin/nvcc ]]; then NVCC=/usr/local/cuda/bin/nvcc; fi
if [[ -z "${NVCC}" ]]; then
  echo "check_cuda_compile: skipped: nvcc not found (set NVCC or put nvcc on PATH)"
  exit 0
fi

# Translation units without torch headers (csrc/cuda/lif_cuda.cu is the torch binding; the full build checks it).
UNITS=("csrc/cuda/lif_kernels.cu")
read -r -a ARCHS <<<"${CUDA_ARCHS:-80 90}"

GENCODE=()
for a in "${ARCHS[@]}"; do GENCODE+=(-gencode "arch=compute_${a},code=sm_${a}"); done
TORCH_LIKE=(-D__CUDA_NO_HALF_OPERATORS__ -D__CUDA_NO_HALF_CONVERSIONS__ -D__CUDA_NO_BFLOAT16_CONVERSIONS__
            -D__CUDA_NO_HALF2_OPERATORS__ --expt-relaxed-constexpr)

OUTDIR="$(mktemp -d "${TMPDIR:-/tmp}/na_cuda_check.XXXXXX")"
trap 'rm -rf "${OUTDIR}"' EXIT

# Summarises ptxas -v output: one line per kernel (the forward, or the backward of a rule), reset policy, NA bucket
# (template argument B: T <= B on chip; 0 = the workspace path, any T), dtype and arch with registers, stack and
# spills.
summarise() {
  awk '
    /Compiling entry function/ {
      k = "forward"; if (match($0, /(NaRule|StbpRule|TsslRule)/)) k = substr($0, RSTART, RLENGTH - 4) " backward"
      r = ($0 ~ /ResetE1E/) ? "soft" : ($0 ~ /ResetE2E/) ? "after" : "hard"
      b = ""; if (match($0, /ResetE[012]ELi[0-9]+E/)) { b = substr($0, RSTART, RLENGTH); sub(/.*Li/, "", b); sub(/E$/, "", b); b = "B=" b }
      t = ($0 ~ /E(Li[0-9]+E)?ddE/) ? "float64" : ($0 ~ /E(Li[0-9]+E)?ffE/) ? "float32" \
        : ($0 ~ /BFloat16/) ? "bfloat16" : "float16"
      match($0, /sm_[0-9]+/); arch = substr($0, RSTART, RLENGTH); next }
    /bytes stack frame/ { split($0, f, " "); stack = f[1]; spill = f[5]; next }
    /Used [0-9]+ registers/ { match($0, /Used [0-9]+/); regs = substr($0, RSTART + 5, RLENGTH - 5)
      printf "    %-6s %-14s %-4s %-9s %-5s %3s registers, %s B stack, %s B spill stores\n", arch, k, r, t, b, regs, stack, spill }
  ' "$1" | sort -V
}

echo "check_cuda_compile: $("${NVCC}" --version | grep -o 'release [0-9.]*' || echo 'nvcc') at ${NVCC}"
status=0
for unit in "${UNITS[@]}"; do
  name="$(basename "${unit}" .cu)"
  echo "check_cuda_compile: ${unit} for$(printf ' sm_%s' "${ARCHS[@]}")"
  if "${NVCC}" -std=c++17 -O3 -fmad=false -lineinfo "${TORCH_LIKE[@]}" -Werror all-warnings -Xcompiler -Wall -Xcompiler -Werror=switch -Xptxas -v \
      "${GENCODE[@]}" -c "${ROOT}/${unit}" -o "${OUTDIR}/${name}.o" 2>"${OUTDIR}/${name}.log"; then
    summarise "${OUTDIR}/${name}.log"
    grep -v -e '^ptxas info' -e '^    [0-9]* bytes' "${OUTDIR}/${name}.log" || true
    echo "check_cuda_compile: ok: ${unit}"
  else
    grep -v -e '^ptxas info' -e '^    [0-9]* bytes' "${OUTDIR}/${name}.log" >&2 || true
    echo "check_cuda_compile: FAILED: ${unit}" >&2
    status=1
  fi
done
exit "${status}"
