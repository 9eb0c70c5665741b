"""Smoke test of the kernel benchmark (benchmarks/bench_kernels.py) on the CPU: it runs every op, the copy and
the targets and writes its JSON; scripts/gpu_check.sh runs the same script on a GPU. No timing is asserted."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

import na_cuda

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_kernels.py"
pytestmark = pytest.mark.skipif(not na_cuda.backends()["cpu"], reason="na_cuda._C is not built")


def _main(*args: str) -> int:
    """The script's main() in this process (a subprocess would spend most of the test importing torch)."""
    spec = importlib.util.spec_from_file_location("bench_kernels", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.main(["--device", "cpu", *args])


def test_bench_kernels_cpu(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert _main("--N", "300", "--Ts", "5,20", "--dtypes", "float32,bfloat16", "--reps", "1", "--json", str(out)) == 0
    assert "NA/STBP fwd+bwd" in capsys.readouterr().out
    res = json.loads(out.read_text())
    assert {(r["op"], r["dtype"], r["T"]) for r in res["ops"]} == {
        (op, d, T) for op in ("forward", "na", "stbp", "tssl") for d in ("float32", "bfloat16") for T in (5, 20)
    }
    assert all(r["s"] > 0 and r["frac_of_copy"] > 0 for r in res["ops"])
    assert set(res["copy_GBps"]) == {f"{d} T={T}" for d in ("float32", "bfloat16") for T in (5, 20)}
    stbp = [r for r in res["fwd_bwd"] if r["method"] == "stbp"]
    assert stbp and all(r["vs_stbp"] == 1.0 for r in stbp)
    goals = {t["goal"] for t in res["targets"]}
    assert "NA fwd+bwd >= 70 % of copy bandwidth, float32, T=5" in goals
    assert "NA/STBP fwd+bwd <= 1.6x, bfloat16, T=20" in goals
    assert set(res["spikingjelly"]) == {"float32 T=5", "bfloat16 T=5"}  # the peer at T <= 10 only


def test_bench_kernels_once_and_bad_args():
    assert _main("--N", "64", "--Ts", "3", "--once") == 0
    with pytest.raises(SystemExit, match="--Ts"):
        _main("--Ts", "five")
