"""Packaging: what a user sees when the build or the compiled library is not what it should be."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run_setup_py(prelude: str) -> subprocess.CompletedProcess:
    """Run setup.py's build_ext in a subprocess after `prelude` (which stubs what the case needs)."""
    pytest.importorskip("setuptools", reason="no setuptools in this venv (Python >= 3.12 venvs have none)")
    code = (
        f"{prelude}\n"
        "import sys; sys.argv = ['setup.py', '-q', 'build_ext']\n"
        "exec(compile(open('setup.py').read(), 'setup.py', 'exec'), {'__file__': 'setup.py', '__name__': '__main__'})\n"
    )
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)


def _last_line(out: subprocess.CompletedProcess) -> str:
    assert out.returncode != 0 and "Traceback" not in out.stderr, out.stderr
    lines = [line for line in out.stderr.strip().splitlines() if line.strip()]
    assert lines, out.stderr
    return lines[-1]


def test_build_without_torch_stops_with_one_line():
    """An isolated build (no torch in the build env) must stop at once with the fix, not a traceback. An isolated
    build always has setuptools >= 77 (pyproject.toml's build requirement); where this venv's is older (it cannot
    read pyproject.toml), a stand-in setup() runs just the build_ext command, so the test holds under any setuptools."""
    prelude = (
        "import sys; sys.modules['torch'] = None\n"
        "import setuptools\n"
        "if int(setuptools.__version__.split('.')[0]) < 77:\n"
        "    setuptools.__version__ = '80.0.0'\n"
        "    def _setup(cmdclass, **kwargs):\n"
        "        from setuptools.dist import Distribution\n"
        "        cmdclass['build_ext'](Distribution()).run()\n"
        "    setuptools.setup = _setup"
    )
    assert "--no-build-isolation" in _last_line(_run_setup_py(prelude))


@pytest.mark.parametrize("version", ["65.5.0", "76.1.0"])
def test_build_with_old_setuptools_stops_with_one_line(version):
    """setuptools < 77 rejects pyproject.toml's SPDX license deep inside setup() with a schema dump (the default
    setuptools of a fresh Python 3.10 venv is 65.5): setup.py must stop first, in one line that names the fix."""
    line = _last_line(_run_setup_py(f"import setuptools; setuptools.__version__ = {version!r}"))
    assert f"setuptools {version} is too old" in line and 'pip install "setuptools>=77"' in line, line


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
        assert info["built_with_torch"] and info["target_torch"] == "2.10"
        assert info["cpu_isa"] in ("avx2", "baseline")
        built = tuple(int(x) for x in info["built_with_torch"].split("+")[0].split(".")[:2])
        assert built >= (2, 10) and torch.__version__  # one build serves every torch >= the target


def test_sdist_manifest_lists_every_source():
    """MANIFEST.in must carry every header and CUDA file, or the sdist does not build (it once held 2 files)."""
    manifest = (ROOT / "MANIFEST.in").read_text()
    assert "recursive-include csrc *.h *.cpp *.cu" in manifest
    assert (ROOT / "LICENSE").is_file()


def test_pyproject_does_not_require_torch_to_build():
    """torch in [build-system] requires would make an isolated build download a torch and compile against it."""
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    assert not [r for r in requires if r.split("<")[0].split(">")[0].split("=")[0].strip() == "torch"], requires


@pytest.mark.slow
def test_real_isolated_build_stops_with_one_line(tmp_path):
    """A plain `pip wheel .` (build isolation on, as `pip install .` does) must stop with the one-line fix, having
    installed no torch into its throw-away build environment."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("setup.py", "pyproject.toml", "MANIFEST.in", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    for tree in ("na_cuda", "csrc"):
        shutil.copytree(ROOT / tree, src / tree, ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(tmp_path / "wheels"), str(src)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    log = out.stdout + out.stderr
    assert out.returncode != 0, log
    assert "no torch in the build environment" in log and "--no-build-isolation" in log, log
    assert "Collecting torch" not in log and "Downloading torch" not in log, log
