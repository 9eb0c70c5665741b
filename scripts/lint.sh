#!/usr/bin/env bash
# Lint, format and type checks: ruff check, ruff format --check, mypy (na_cuda/ and benchmarks/), clang-format
# --dry-run --Werror on csrc/. Installs the pinned tool versions into the venv given (default .venv).
#   bash scripts/lint.sh [PYTHON]     e.g. bash scripts/lint.sh .venv/bin/python
# PATHS (default: na_cuda benchmarks scripts tests examples) limits the Python trees checked. SKIP_MYPY=1 leaves
# mypy out (CI runs it: it must stay clean).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${1:-.venv/bin/python}
BIN=$(dirname "$PY")
"$PY" -m pip install -q ruff==0.17.6 mypy==2.4.1 clang-format==23.1.5
PATHS=${PATHS:-na_cuda benchmarks scripts tests examples}
rc=0
"$BIN/ruff" check $PATHS || rc=1
"$BIN/ruff" format --check $PATHS || rc=1
if [[ "${SKIP_MYPY:-0}" != 1 ]]; then
  "$BIN/mypy" $(for p in na_cuda benchmarks; do [[ " $PATHS " == *" $p "* ]] && echo "$p"; done) || rc=1
fi
find csrc -name '*.h' -o -name '*.cpp' -o -name '*.cu' -o -name '*.cuh' | xargs "$BIN/clang-format" --dry-run --Werror || rc=1
exit $rc
