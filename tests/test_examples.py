"""Smoke tests of examples/: each script runs as a subprocess on a few batches (EXAMPLE_BATCHES) and exits 0.

mnist_na.py and plif.py read MNIST through na_cuda.data; here they get small synthetic IDX files in a temporary
$NA_CUDA_DATA (CI has no MNIST). convert_spikingjelly.py needs spikingjelly, from_snntorch.py snnTorch, from_nir.py nir;
each skips without it.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from na_cuda.data import idx

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _fake_mnist(root: Path) -> None:
    rng = np.random.default_rng(0)
    for train, n in ((True, 192), (False, 100)):
        images_stem, labels_stem = idx.IDX_STEMS[train]
        idx.write_idx(root / images_stem, rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        idx.write_idx(root / labels_stem, (np.arange(n) % 10).astype(np.uint8))


@pytest.mark.slow
@pytest.mark.parametrize(
    "script",
    [
        "mnist_na.py",
        "convert_spikingjelly.py",
        "tet_loss.py",
        "compile_and_bf16.py",
        "plif.py",
        "from_snntorch.py",
        "from_nir.py",
    ],
)
def test_example_runs(script, tmp_path):
    if script == "convert_spikingjelly.py" and importlib.util.find_spec("spikingjelly") is None:
        pytest.skip("spikingjelly is not installed (pip install --no-deps spikingjelly==2.0.0 loguru)")
    if script == "from_snntorch.py" and importlib.util.find_spec("snntorch") is None:
        pytest.skip("snnTorch is not installed (pip install --no-deps snntorch==1.0.0)")
    if script == "from_nir.py" and importlib.util.find_spec("nir") is None:
        pytest.skip("nir is not installed (pip install na_cuda[nir])")
    _fake_mnist(tmp_path)
    env = dict(os.environ, EXAMPLE_BATCHES="3", NA_CUDA_DATA=str(tmp_path))
    run = subprocess.run([sys.executable, str(EXAMPLES / script)], env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    assert "loss" in run.stdout or "accuracy" in run.stdout
