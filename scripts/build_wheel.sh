#!/usr/bin/env bash
# Build one na_cuda wheel with the torch of the current environment:
#   bash scripts/build_wheel.sh OUTDIR            (PYTHON=/path/to/python picks the environment)
# The wheel holds the CPU library (AVX2 + baseline kernels, picked at load time) and, when that torch is a CUDA
# build and nvcc is found, the CUDA library for sm_80 and sm_90 plus PTX (TORCH_CUDA_ARCH_LIST overrides). Both are
# built on the LibTorch stable ABI (target torch 2.10) and the CPython limited API, so the wheel is tagged
# cp310-abi3 and serves every torch >= 2.10 and CPython >= 3.10. Its platform tag states the glibc floor the build
# machine's toolchain set: manylinux_2_N with N the newest GLIBC symbol version the libraries need.
set -euo pipefail
OUT=${1:?usage: scripts/build_wheel.sh OUTDIR}
PY=${PYTHON:-python}
[[ "$PY" == */* ]] && PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")"  # absolute: the script cds
cd "$(dirname "$0")/.."
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-8.0;9.0+PTX}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Build from a copy of the source files (tracked, or new and not ignored): never from objects that an earlier build
# against another torch left in build/.
mkdir "$tmp/src"
if git rev-parse --git-dir >/dev/null 2>&1; then
  git ls-files -co --exclude-standard -z | while IFS= read -r -d '' f; do [[ -e "$f" ]] && printf '%s\0' "$f"; done \
    | xargs -0 cp --parents -t "$tmp/src"
else
  tar --exclude=./build --exclude='*.so' -cf - . | tar -xf - -C "$tmp/src"
fi
"$PY" -m pip wheel -q --no-build-isolation --no-deps -w "$tmp" "$tmp/src" 2>&1 | grep -v "^WARNING: Location" || true
wheel=$(ls "$tmp"/na_cuda-*.whl 2>/dev/null) || { echo "build_wheel: the build failed" >&2; exit 1; }
# The glibc floor: the newest GLIBC_x.y symbol version any compiled library of the wheel references.
mkdir "$tmp/x" && (cd "$tmp/x" && "$PY" -m zipfile -e "$wheel" .)
glibc=$(find "$tmp/x" -name '*.so' -exec objdump -T {} + | grep -o 'GLIBC_2\.[0-9]*' | sort -t. -k2 -n -u | tail -1)
minor=${glibc#GLIBC_2.}
"$PY" -m wheel tags --remove --platform-tag "manylinux_2_${minor}_$(uname -m)" "$wheel" >/dev/null
wheel=$(ls "$tmp"/na_cuda-*.whl)
mv "$wheel" "$OUT/"
echo "build_wheel: $OUT/$(basename "$wheel") ($(du -h "$OUT/$(basename "$wheel")" | cut -f1); glibc >= 2.${minor})"
"$PY" -m zipfile -l "$OUT/$(basename "$wheel")" | grep '\.so' || true
