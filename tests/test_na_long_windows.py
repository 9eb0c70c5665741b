"""NA's exact exit rules (docs/algorithm.md §3.7) leave every gradient bit as it was on long windows.

The gradients below were recorded (SHA-256 of their bytes) from the build before the rules existed (main at
87545ed with the leak-one dL/dlam fix, the neighbour re-simulated until its first spike or the silent-tail exit
only), on sparse and dense firing at T = 100 and 500, for the options that reach the hard-reset loop (first-order
modes, distance power, strict firing, spike output, v_reset with decay_input, the IF neuron, learnable decay with
its dL/dlam) and the soft reset (untouched, as a control). Regenerate only from a build whose gradients are
known to be the old ones:

    python tests/test_na_long_windows.py --record   # writes tests/golden/na_long_windows.json
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys

import pytest
import torch

import na_cuda

RECORD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden", "na_long_windows.json")
N = 203  # 25 packs of 8 and a partial one (AVX2 float32), 50 of 4 and a partial one (float64)

# name: (T, rate group, dtype, lif keyword arguments)
CASES: dict[str, tuple[int, str, str, dict]] = {}
for _T in (100, 500):
    for _rate in ("sparse", "dense"):
        CASES[f"paper-f32-T{_T}-{_rate}"] = (_T, _rate, "float32", {})
        CASES[f"paper-f64-T{_T}-{_rate}"] = (_T, _rate, "float64", {})
    CASES[f"taylor-k1-T{_T}"] = (_T, "sparse", "float32", dict(first_order="taylor", dist_power=1))
    CASES[f"strict-spike-T{_T}"] = (_T, "sparse", "float32", dict(strict_threshold=True, output="spike"))
    CASES[f"vreset-decayinput-T{_T}"] = (
        _T,
        "sparse",
        "float64",
        dict(tau_m=3.0, v_reset=-0.3, decay_input=True, scale=6.0),
    )
    CASES[f"if-T{_T}"] = (_T, "sparse", "float32", dict(tau_m=math.inf, threshold=4.0))
    CASES[f"learnable-decay-T{_T}"] = (_T, "sparse", "float32", dict(decay="per-neuron", decay_input=True, scale=5.0))
    CASES[f"soft-T{_T}"] = (_T, "sparse", "float32", dict(v_reset=None))


def inputs(T: int, rate: str, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-neuron drive levels ("sparse": about 3 % firing for the paper's neuron, "dense": about 20 %), a third
    of the neurons with negative inputs too, and the upstream gradient."""
    g = torch.Generator().manual_seed(T * 10 + (rate == "dense"))
    level = (0.29 + 0.08 * torch.rand(N, generator=g, dtype=torch.float64)) * (1.9 if rate == "dense" else 1.0)
    c = level * torch.rand(T, N, generator=g, dtype=torch.float64)
    c = c - 0.2 * torch.rand(T, N, generator=g, dtype=torch.float64) * (torch.rand(N, generator=g) < 0.3)
    grad = torch.randn(T, N, generator=g, dtype=torch.float64)
    return c.to(dtype), grad.to(dtype)


def gradient_digest(name: str) -> dict:
    """The SHA-256 of dL/dc (and dL/d decay) of case `name`, with the spike rate and sum for the record."""
    T, rate, dname, kw = CASES[name]
    dtype = getattr(torch, dname)
    c, grad = inputs(T, rate, dtype)
    kw = dict(kw)
    c = c * kw.pop("scale", 1.0)  # decay_input scales the input down: the same rates need larger inputs
    decay = None
    if kw.pop("decay", None) is not None:
        decay = (0.75 + 0.1 * torch.rand(N, generator=torch.Generator().manual_seed(5), dtype=dtype)).requires_grad_()
        kw["decay"] = decay
    x = c.clone().requires_grad_(True)
    out = na_cuda.lif(x, method="na", backend="native", **kw)
    out.backward(grad)
    h = hashlib.sha256(x.grad.contiguous().numpy().tobytes())
    if decay is not None:
        h.update(decay.grad.contiguous().numpy().tobytes())
    with torch.no_grad():
        spikes = na_cuda.lif(c, method="na", backend="native", **dict(kw, output="spike"))
    return dict(sha256=h.hexdigest(), grad_sum=float(x.grad.double().sum()), spike_rate=float(spikes.mean()))


@pytest.fixture(scope="module")
def record() -> dict:
    with open(RECORD) as f:
        return json.load(f)


@pytest.mark.skipif(not na_cuda.backends()["native_loaded"], reason="na_cuda._C is not built")
@pytest.mark.parametrize("name", sorted(CASES))
def test_same_bits_as_before_the_exit_rules(record, name):
    got, want = gradient_digest(name), record["cases"][name]
    assert got["spike_rate"] == want["spike_rate"]
    assert got["sha256"] == want["sha256"], f"{name}: grad sum {got['grad_sum']!r}, recorded {want['grad_sum']!r}"


def test_rates_cover_sparse_and_dense(record):
    """The record spans the regimes the rules are for (sparse firing, where runs are long) and dense firing."""
    rates = {n: r["spike_rate"] for n, r in record["cases"].items()}
    assert 0.01 < rates["paper-f32-T500-sparse"] < 0.08
    assert 0.1 < rates["paper-f32-T500-dense"] < 0.4


if __name__ == "__main__":
    if sys.argv[1:] != ["--record"]:
        raise SystemExit("usage: python tests/test_na_long_windows.py --record")
    rec = dict(
        note="SHA-256 of NA's dL/dc (and dL/d decay) bytes; see tests/test_na_long_windows.py",
        torch=torch.__version__,
        cpu_isa=na_cuda.backends()["cpu_isa"],
        cases={n: gradient_digest(n) for n in sorted(CASES)},
    )
    with open(RECORD, "w") as f:
        json.dump(rec, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"wrote {RECORD}: {len(rec['cases'])} cases")
