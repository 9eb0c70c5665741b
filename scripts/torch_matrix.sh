#!/usr/bin/env bash
# One wheel across torch releases (not in CI: it downloads ~3-5 GB per torch). Installs the SAME wheel file with
# --no-deps into a fresh venv per (torch, Python) row, each torch the default (CUDA) build from PyPI with a matching
# CPython from pyenv, and runs the not-slow tests against the installed wheel (scripts/installed_tests.sh):
#   torch >= 2.10   the native CPU kernels must load (NA_CUDA_TEST_REQUIRE_NATIVE=cpu) and pass;
#   torch <  2.10   the wheel must refuse its kernels with the minimum-version message, and the tests run on the
#                   pure-PyTorch reference.
# The CUDA library is reported as loaded or not (with cuda_error): a cu13x torch loads it, another CUDA major is
# refused. No GPU is needed (the CUDA tests skip).
#
# Usage: bash scripts/torch_matrix.sh WHEEL [WORKDIR]
#   WORKDIR (default .ci-matrix) keeps the venvs: a venv whose torch already matches is reused, not reinstalled.
#   MATRIX overrides the rows: "torch python;torch python;..." (python: a version under $PYENV_ROOT/versions).
#   TEST_PATHS picks the test files (default: tests, the whole not-slow suite: ~10 min per row on 2 free cores).
# Writes WORKDIR/table.md (the table in docs/install.md) and prints it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WHEEL=$(realpath "${1:?usage: scripts/torch_matrix.sh WHEEL [WORKDIR]}")
WORK=${2:-$ROOT/.ci-matrix}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
PYENV=${PYENV_ROOT:-$HOME/.pyenv}/versions
MATRIX=${MATRIX:-"2.10.0 3.10.13;2.11.0 3.12.1;2.12.1 3.11.7;2.15.0 3.13.0;2.9.1 3.11.7"}
read -r -a TESTS <<<"${TEST_PATHS:-tests}"
# A machine-wide pip constraint may cap torch at what it mirrors; these releases come from PyPI.
export PIP_CONSTRAINT=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1
t0=$SECONDS
say() { echo "torch_matrix: [$((SECONDS - t0)) s] $*"; }
quiet_pip() { "$@" 2>&1 | grep -v -e '^WARNING: Location' -e 'is ignored: it is neither' || true; }
ver_lt() { [[ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -1)" == "$1" && "$1" != "$2" ]]; }

echo "| torch | Python | passed | skipped | failed | native CPU | native CUDA (cuda_error) |" >"$WORK/table.md"
echo "| --- | --- | --- | --- | --- | --- | --- |" >>"$WORK/table.md"
IFS=';' read -r -a ROWS <<<"$MATRIX"
for row in "${ROWS[@]}"; do
  read -r tv pv <<<"$row"
  venv="$WORK/torch-$tv"
  py="$PYENV/$pv/bin/python"
  if [[ ! -x "$py" ]]; then
    say "torch $tv: no Python $pv under $PYENV"
    echo "| $tv | $pv | - | - | - | not run: no Python $pv | |" >>"$WORK/table.md"
    continue
  fi
  if ! "$venv/bin/python" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$tv')" 2>/dev/null; then
    say "torch $tv: a fresh venv with Python $pv"
    rm -rf "$venv"
    "$py" -m venv "$venv"
    quiet_pip "$venv/bin/pip" install -q "torch==$tv" numpy pytest hypothesis tqdm matplotlib scikit-learn
    if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
      say "torch $tv: could not be installed"
      echo "| $tv | $pv | - | - | - | not run: torch $tv not installable here | |" >>"$WORK/table.md"
      continue
    fi
  fi
  quiet_pip "$venv/bin/pip" install -q --no-deps --force-reinstall "$WHEEL"
  # What the wheel says about itself under this torch (from outside the source tree: the installed package).
  probe=$(cd "$WORK" && "$venv/bin/python" - "$tv" <<'PYEOF'
import sys, warnings
warnings.simplefilter("ignore")
import torch, na_cuda
info = na_cuda.backends()
assert "site-packages" in na_cuda.__file__, na_cuda.__file__
old = tuple(int(x) for x in sys.argv[1].split(".")[:2]) < (2, 10)
if old:  # refused with the minimum-version message, before loading; the reference still computes
    assert not info["native_loaded"] and "need torch >= 2.10" in info["load_error"], info
    assert not torch.ops.loaded_libraries, torch.ops.loaded_libraries
    c = torch.rand(6, 3, 4, dtype=torch.float64)
    torch.testing.assert_close(na_cuda.lif(c), na_cuda.lif(c, backend="torch"), rtol=0, atol=0)
else:
    assert info["cpu"], info
def first_clause(reason):  # the table's cell: the sentence up to its fix
    return str(reason).split(": ")[0].split("; ")[0].replace("|", "/")


cpu = "yes" if info["cpu"] else f"no: {first_clause(info['load_error'])}"
cuda = "yes" if info["cuda"] else f"no: {first_clause(info['cuda_error'])}" if info["native_loaded"] else "-"
print(f"{torch.__version__}\t{sys.version.split()[0]}\t{cpu}\t{cuda}")
PYEOF
  ) || { say "torch $tv: the import check failed"; echo "| $tv | $pv | - | - | - | import check failed | |" >>"$WORK/table.md"; continue; }
  IFS=$'\t' read -r torch_full py_full native_cpu native_cuda <<<"$probe"
  say "torch $torch_full, Python $py_full: native CPU $native_cpu; CUDA $native_cuda"
  require=cpu
  ver_lt "$tv" 2.10 && require=
  xml="$WORK/junit-$tv.xml"
  NA_CUDA_TEST_REQUIRE_NATIVE=$require nice -n 10 bash "$ROOT/scripts/installed_tests.sh" "$venv/bin/python" -q \
    --junitxml="$xml" -m "not slow" "${TESTS[@]}" >"$WORK/pytest-$tv.log" 2>&1 || true
  tail -1 "$WORK/pytest-$tv.log" | sed "s/^/    /"
  counts=$("$venv/bin/python" - "$xml" <<'PYEOF'
import sys, xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except (OSError, ET.ParseError):
    print("-\t-\t-"); sys.exit()
s = root if root.tag == "testsuite" else root.find("testsuite")
n, skip = int(s.get("tests")), int(s.get("skipped"))
fail = int(s.get("failures")) + int(s.get("errors"))
print(f"{n - skip - fail}\t{skip}\t{fail}")
PYEOF
  )
  IFS=$'\t' read -r passed skipped failed <<<"$counts"
  echo "| $torch_full | $py_full | $passed | $skipped | $failed | $native_cpu | $native_cuda |" >>"$WORK/table.md"
done
say "done (wheel $(basename "$WHEEL"))"
cat "$WORK/table.md"
