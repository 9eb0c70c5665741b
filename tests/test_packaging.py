"""Packaging: what a user sees when the build or the compiled library is not what it should be."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_build_without_torch_stops_with_one_line():
    """An isolated build (no torch in the build env) must stop at once with the fix, not a traceback."""
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "sys.argv = ['setup.py', '-q', 'build_ext']\n"
        "exec(compile(open('setup.py').read(), 'setup.py', 'exec'), {'__file__': 'setup.py', '__name__': '__main__'})\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    lines = [line for line in out.stderr.strip().splitlines() if line.strip()]
    assert lines and "--no-build-isolation" in lines[-1] and "Traceback" not in out.stderr, out.stderr


def test_unbuilt_source_tree_says_not_built(tmp_path):
    """Importing from a source tree that was never built works (reference backend) and says why, in one line."""
    shutil.copytree(ROOT / "na_cuda", tmp_path / "na_cuda", ignore=shutil.ignore_patterns("_C.*", "__pycache__"))
    code = (
        "import sys\n"
        "sys.meta_path = [f for f in sys.meta_path if 'editable' not in getattr(f, '__module__', '').lower()]  # -e\n"
        "import na_cuda\n"
        f"assert na_cuda.__file__.startswith({str(tmp_path)!r}), na_cuda.__file__\n"
        "info = na_cuda.backends()\n"
        "assert not info['native_loaded'] and info['auto']['cpu'] == 'torch', info\n"
        "print(info['load_error'])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "is not built" in out.stdout and "circular" not in out.stdout, out.stdout


def test_backends_reports_the_build_facts():
    import torch

    import na_cuda

    info = na_cuda.backends()
    if info["native_loaded"]:
        assert info["built_with_torch"] == torch.__version__
        assert info["cpu_isa"] in ("avx2", "portable")


def test_sdist_manifest_lists_every_source():
    """MANIFEST.in must carry every header and CUDA file, or the sdist does not build (it once held 2 files)."""
    manifest = (ROOT / "MANIFEST.in").read_text()
    assert "recursive-include csrc *.h *.cpp *.cu" in manifest
    assert (ROOT / "LICENSE").is_file()
