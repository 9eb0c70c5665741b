#!/usr/bin/env bash
# Run the test suite against an INSTALLED na_cuda (a wheel), never the source tree's package:
#   bash scripts/installed_tests.sh PYTHON [pytest arguments...]
# The tests import `tests.helpers` from the working directory, and `python -m pytest` puts that directory first on
# sys.path, so running from the repository root would import ./na_cuda. This runs from a directory that links
# every top-level entry of the repository except the package (the tests' paths resolve to the repository as
# usual). NA_CUDA_TEST_INSTALLED=1 makes tests/conftest.py refuse a package that is not from site-packages.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY=${1:?usage: scripts/installed_tests.sh PYTHON [pytest args]}
shift
FARM=$(mktemp -d "${TMPDIR:-/tmp}/na_cuda_tests.XXXXXX")
trap 'rm -rf "$FARM"' EXIT
for entry in "$ROOT"/* "$ROOT"/.[!.]*; do
  name=$(basename "$entry")
  case "$name" in na_cuda | .git | .ci-cuda | .ci-venv | .venv | build | dist) continue ;; esac
  ln -s "$entry" "$FARM/$name"
done
cd "$FARM"
NA_CUDA_TEST_INSTALLED=1 "$PY" -m pytest -p no:cacheprovider "$@"
