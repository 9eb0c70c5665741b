#!/usr/bin/env bash
# CI (no GPU needed): the CUDA build, and one wheel for every torch.
#  1. A fresh venv with the CUDA build of torch (TORCH_CUDA, default torch==2.14.1: cu130, ~5.5 GB from the local
#     wheel cache) builds ONE wheel with scripts/build_wheel.sh: the CPU library (AVX2 + baseline kernels) and the
#     CUDA library for sm_80 and sm_90 plus PTX.
#  2. The SASS and PTX embedded in the CUDA library are listed (cuobjdump of the toolkit, or the one in triton);
#     torch-abi-audit (PyPI) must find both libraries on the stable ABI with minimum torch 2.10.0.
#  3. That wheel file is installed, without a rebuild, into the same venv: every op must have CPU, CUDA and Meta
#     kernels; the not-slow tests run against the installed wheel with the native CPU backend asserted.
#  4. The same wheel file is installed into a fresh venv with the CPU build of torch (TORCH_CPU, default
#     torch==2.13.0): it must import, run natively on the CPU, report the CUDA library as unloaded with the
#     reason, and pass the not-slow tests.
# Exits 0 with "skipped: nvcc not found" where there is no nvcc. Prints the time of each phase.
#
# Usage: bash scripts/check_cuda_build.sh [WORKDIR]     (WORKDIR: where the venvs and the wheel go, default
#        .ci-cuda; KEEP=1 keeps it afterwards; PYTHON picks the interpreter that makes the venvs)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
WORK=${1:-.ci-cuda}
PY=${PYTHON:-python3}
TORCH_CUDA=${TORCH_CUDA:-torch==2.14.1}
TORCH_CPU=${TORCH_CPU:-torch==2.13.0}
TORCH_ABI_AUDIT=0.3.0
MIN_TORCH=2.10.0  # setup.py's TARGET_TORCH: the oldest torch the wheel must serve
if ! command -v nvcc >/dev/null && [[ ! -x /usr/local/cuda/bin/nvcc && -z "${CUDA_HOME:-}" ]]; then
  echo "check_cuda_build: skipped: nvcc not found (set CUDA_HOME or put nvcc on PATH)"
  exit 0
fi
rm -rf "$WORK"
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
[[ "${KEEP:-0}" == 1 ]] || trap 'rm -rf "$WORK"' EXIT
t0=$SECONDS
phase() { echo "check_cuda_build: [$((SECONDS - t0)) s] $*"; }
quiet_pip() { "$@" 2>&1 | grep -v -e '^WARNING: Location' -e 'is ignored: it is neither' || true; }

# The not-slow tests against the installed wheel (scripts/installed_tests.sh), the native CPU backend asserted.
run_tests() { NA_CUDA_TEST_REQUIRE_NATIVE=cpu bash scripts/installed_tests.sh "$1/bin/python" -q -m "not slow" tests; }

phase "venv with the CUDA torch ($TORCH_CUDA)"
"$PY" -m venv "$WORK/cuda"
quiet_pip "$WORK/cuda/bin/pip" install -q --upgrade "setuptools>=77" wheel ninja "$TORCH_CUDA" numpy
"$WORK/cuda/bin/python" -c "import torch; assert torch.version.cuda, torch.__version__; print('torch', torch.__version__, 'CUDA', torch.version.cuda)"

phase "building one wheel (scripts/build_wheel.sh)"
PYTHON="$WORK/cuda/bin/python" bash scripts/build_wheel.sh "$WORK/dist"
WHEEL=$(ls "$WORK"/dist/na_cuda-*.whl)
case "$(basename "$WHEEL")" in *-cp310-abi3-manylinux_2_*) ;; *) echo "check_cuda_build: unexpected wheel tags: $WHEEL" >&2; exit 1 ;; esac
"$WORK/cuda/bin/python" -m zipfile -l "$WHEEL" | grep -q 'na_cuda/_C_cuda.so' || { echo "check_cuda_build: the wheel has no CUDA library" >&2; exit 1; }

phase "SASS and PTX in the CUDA library"
mkdir "$WORK/unzipped" && "$WORK/cuda/bin/python" -m zipfile -e "$WHEEL" "$WORK/unzipped"
CUOBJDUMP=$(command -v cuobjdump || ls /usr/local/cuda/bin/cuobjdump "$WORK"/cuda/lib/python3*/site-packages/triton/backends/nvidia/bin/cuobjdump 2>/dev/null | head -1 || true)
if [[ -n "$CUOBJDUMP" ]]; then
  listing=$("$CUOBJDUMP" --list-elf --list-ptx "$WORK/unzipped/na_cuda/_C_cuda.so")
  echo "$listing" | sed 's/^/    /'
  for want in "ELF.*sm_80" "ELF.*sm_90" "PTX.*sm_90"; do
    grep -q "$want" <<<"$listing" || { echo "check_cuda_build: nothing matches '$want' in the CUDA library" >&2; exit 1; }
  done
else
  echo "    (no cuobjdump found: SASS/PTX not listed)"
fi
# Only the stable C shim of libtorch: no C++ symbol of c10/ATen/torch may be referenced.
for so in "$WORK"/unzipped/na_cuda/*.so; do
  n=$(nm -DC --undefined-only "$so" | grep -c -e 'c10::' -e 'at::' -e 'torch::' || true)
  echo "    $(basename "$so"): $n libtorch C++ symbols, $(nm -D --undefined-only "$so" | grep -c -e aoti_torch -e torch_) shim symbols"
  [[ "$n" == 0 ]] || { echo "check_cuda_build: $(basename "$so") uses libtorch's C++ ABI" >&2; exit 1; }
done

phase "torch-abi-audit $TORCH_ABI_AUDIT: both libraries on the stable ABI, minimum torch $MIN_TORCH"
# The one-wheel promise, checked by an independent tool: every shim symbol each library references maps to the torch
# release that introduced it (PyTorch's shim_function_versions.txt), so "min torch" is the oldest torch it runs on.
"$PY" -m venv "$WORK/audit"
quiet_pip "$WORK/audit/bin/pip" install -q "torch-abi-audit==$TORCH_ABI_AUDIT"
"$WORK/audit/bin/torch-abi-audit" "$WORK/unzipped/na_cuda" --check torch | sed 's/^/    /'
"$WORK/audit/bin/torch-abi-audit" "$WORK/unzipped/na_cuda" --json >"$WORK/audit.json"
"$WORK/audit/bin/python" - "$WORK/audit.json" "$MIN_TORCH" <<'PYEOF'
import json, sys
report, want = json.load(open(sys.argv[1])), sys.argv[2]
libs = {lib["path"].rsplit("/", 1)[-1]: lib for lib in report["extensions"] + report["bundled_libs"]}
bad = [f"{name}: {lib['torch']}" for name, lib in libs.items()
       if not (lib["torch"]["stable"] and not lib["torch"]["unstable_symbols"]
               and lib["torch"]["min_torch_version"] == want)]
if sorted(libs) != ["_C.so", "_C_cuda.so"] or bad:
    sys.exit(f"check_cuda_build: torch-abi-audit wants _C.so and _C_cuda.so stable with min torch {want}: "
             f"{sorted(libs)} {bad}")
PYEOF

phase "the wheel under the CUDA torch: registrations and not-slow tests"
quiet_pip "$WORK/cuda/bin/pip" install -q pytest hypothesis tqdm matplotlib scikit-learn
quiet_pip "$WORK/cuda/bin/pip" install -q --no-deps "$WHEEL"  # --no-deps: never touch the venv's torch
(cd "$WORK" && "$WORK/cuda/bin/python" - <<'PYEOF'
import torch, na_cuda
info = na_cuda.backends()
assert "site-packages" in na_cuda.__file__, na_cuda.__file__
assert info["cpu"] and info["cuda"], info
ops = ("lif_forward", "lif_na", "lif_stbp", "lif_tssl", "na_backward", "stbp_backward", "tssl_backward")
has = torch._C._dispatch_has_kernel_for_dispatch_key
print("    op              CPU   CUDA  Meta")
for op in ops:
    row = [has(f"na_cuda::{op}", k) for k in ("CPU", "CUDA", "Meta")]
    print(f"    {op:<15} " + "  ".join(f"{str(x):<5}" for x in row))
    assert all(row), op
print("    torch", torch.__version__, "| wheel built with", info["built_with_torch"], "| target", info["target_torch"],
      "| cpu_isa", info["cpu_isa"], "| cuda", info["cuda_version"], info["cuda_archs"])
PYEOF
)
run_tests "$WORK/cuda"

phase "the same wheel file under the CPU torch ($TORCH_CPU)"
"$PY" -m venv "$WORK/cpu"
quiet_pip "$WORK/cpu/bin/pip" install -q "$TORCH_CPU" numpy pytest hypothesis tqdm matplotlib scikit-learn
quiet_pip "$WORK/cpu/bin/pip" install -q --no-deps "$WHEEL"
(cd "$WORK" && "$WORK/cpu/bin/python" - <<'PYEOF'
import torch, na_cuda
info = na_cuda.backends()
assert "site-packages" in na_cuda.__file__, na_cuda.__file__
assert info["cpu"] and not info["cuda"] and "CPU build" in info["cuda_error"], info
print("    torch", torch.__version__, "| wheel built with", info["built_with_torch"], "| cpu_isa", info["cpu_isa"],
      "| CUDA library not loaded:", info["cuda_error"])
PYEOF
)
run_tests "$WORK/cpu"
phase "ok: $(basename "$WHEEL") ($(du -h "$WHEEL" | cut -f1))"
