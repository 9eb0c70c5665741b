#!/usr/bin/env bash
# CI: the sdist builds and installs on its own. Builds it (no compiler, no torch needed), checks that it carries
# every C++/CUDA source, installs it into a fresh venv with CPU torch and runs one op from outside the source tree.
#   bash scripts/check_sdist.sh [PYTHON]        PYTHON: an interpreter with `build` (default .ci-venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-.ci-venv/bin/python}
TORCH=${TORCH:-torch==2.13.0}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$PY" -m pip install -q build
"$PY" -m build --sdist --no-isolation --outdir "$out" . > "$out/build.log" 2>&1 || { cat "$out/build.log"; exit 1; }
sdist=$(ls "$out"/na_cuda-*.tar.gz)
tar tzf "$sdist" > "$out/contents.txt"
missing=0
for f in $(git ls-files csrc); do
  grep -q "/$f\$" "$out/contents.txt" || { echo "check_sdist: $f is missing from $(basename "$sdist")"; missing=1; }
done
[ "$missing" = 0 ] || exit 1
python3 -m venv "$out/venv"
"$out/venv/bin/pip" install -q --upgrade "setuptools>=77" wheel ninja "$TORCH"
"$out/venv/bin/pip" install -q --no-build-isolation "$sdist"
(cd "$out" && "$out/venv/bin/python" - <<'PYEOF'
import torch, na_cuda
info = na_cuda.backends()
assert info["cpu"] and info["load_error"] is None, info
y = na_cuda.lif(torch.rand(5, 3, 8, requires_grad=True), backend="native")
y.sum().backward()
print("check_sdist: installed from the sdist:", na_cuda.__version__, info["built_with_torch"], info["cpu_isa"])
PYEOF
)
