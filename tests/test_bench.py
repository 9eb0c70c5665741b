"""Smoke test of the benchmark suite (benchmarks/run.py): it runs end to end and writes its reports.

Runs `benchmarks/run.py --quick` (the CI smoke run, ~35 s on 2 cores) in a subprocess; no timing is asserted.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import na_cuda

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "benchmarks" / "run.py"


@pytest.mark.slow  # ~35 s alone, minutes on a loaded machine: make test-fast skips it
@pytest.mark.skipif(not na_cuda.backends()["cpu"],
                    reason="na_cuda._C is not built (the benchmark needs native kernels)")
def test_benchmark_suite_smoke(tmp_path):
    out = tmp_path / "bench"
    env = dict(os.environ, MPLBACKEND="Agg")
    proc = subprocess.run([sys.executable, str(RUN), "--quick", "--device", "cpu", "--out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(out / "results.json") as f:
        res = json.load(f)
    assert {"meta", "config", "neuron_op", "peer", "end_to_end", "memory", "goals"} <= set(res)
    assert res["meta"]["errors"] == {}
    assert res["config"]["mode"] == "quick"
    assert res["neuron_op"]["rows"] and res["end_to_end"]["rows"] and res["memory"]["rows"]
    assert "available" in res["peer"]
    assert all({"goal", "value", "status"} <= set(g) for g in res["goals"]) and res["goals"]
    text = (out / "RESULTS.md").read_text()
    assert "## Goals" in text and "na_cuda.backends()" in text
    pytest.importorskip("matplotlib")
    for name in ("neuron_op.png", "fig7_epoch_time.png", "memory.png"):
        assert (out / name).stat().st_size > 0, name
