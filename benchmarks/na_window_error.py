"""What ``na_window=K`` (docs/algorithm.md §3.8) costs in gradient error and saves in time, on long windows.

On the CPU op (``na_cuda.lif`` forward + backward, float32, one thread) at T = 500 with inputs drawn for a 3 %
firing rate (sections/common.py rate_inputs): the relative L2 error and the cosine of the input gradient of
NA(K) against exact NA, and the time of NA(K) and exact NA over STBP's, all in one interleaved run (min over rounds).
Writes JSON and a plot (error and time against K).

    python benchmarks/na_window_error.py [--T 500] [--rate 0.03] [--N 4096] [--Ks 8,16,32,64] [--rounds 5]
        [--out bench_out/na_window]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Callable, Optional

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import na_cuda  # noqa: E402

from sections.common import rate_inputs  # noqa: E402


def _step(c: torch.Tensor, g: torch.Tensor, **kw: Any) -> Callable[[], torch.Tensor]:
    """One forward + backward of the native op; returns dL/dc."""

    def run() -> torch.Tensor:
        x = c.detach().requires_grad_(True)
        na_cuda.lif(x, backend="native", **kw).backward(g)
        assert x.grad is not None
        return x.grad

    return run


def measure(T: int, rate: float, N: int, Ks: list[int], rounds: int, seed: int = 0) -> dict:
    """Errors against exact NA and times over STBP's (see the module docstring)."""
    c, g = rate_inputs(T, N, rate, seed)
    with torch.no_grad():
        spikes = na_cuda.lif(c, backend="native", output="spike")
    variants: dict[str, dict[str, Any]] = {"stbp": dict(method="stbp"), "exact": dict(method="na")}
    variants.update({f"K={k}": dict(method="na", na_window=k) for k in Ks})
    fns = {name: _step(c, g, **kw) for name, kw in variants.items()}
    exact = fns["exact"]().double()
    errors = {}
    for k in Ks:
        got = fns[f"K={k}"]().double()
        errors[k] = dict(
            rel_l2=float((got - exact).norm() / exact.norm()),
            cosine=float(torch.nn.functional.cosine_similarity(got.flatten(), exact.flatten(), dim=0)),
        )
    times: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():  # warm-up
        fn()
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    best = {name: min(ts) for name, ts in times.items()}
    return dict(
        T=T,
        rate_target=rate,
        spike_rate=float(spikes.mean()),
        N=N,
        rounds=rounds,
        threads=torch.get_num_threads(),
        cpu_isa=na_cuda.backends()["cpu_isa"],
        stbp_ns_per_neuron_step=best["stbp"] / (T * N) * 1e9,
        exact_over_stbp=best["exact"] / best["stbp"],
        windows={
            str(k): dict(
                errors[k], time_over_stbp=best[f"K={k}"] / best["stbp"], time_over_exact=best[f"K={k}"] / best["exact"]
            )
            for k in Ks
        },
        seconds_min=best,
    )


def plot(result: dict, path: str) -> Optional[str]:
    """Error and time over STBP against K; None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    Ks = [int(k) for k in result["windows"]]
    w = [result["windows"][str(k)] for k in Ks]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
    a.plot(Ks, [x["rel_l2"] for x in w], "o-", label="rel. L2 error")
    a.plot(Ks, [1 - x["cosine"] for x in w], "s-", label="1 - cosine")
    a.set_xscale("log", base=2)
    a.set_yscale("log")
    a.set_xlabel("na_window K")
    a.set_title(f"dL/dc vs exact NA (T = {result['T']}, {100 * result['spike_rate']:.1f} % firing)")
    a.legend()
    b.plot(Ks, [x["time_over_stbp"] for x in w], "o-", label="NA(K) / STBP")
    b.axhline(result["exact_over_stbp"], color="k", ls="--", label="exact NA / STBP")
    b.set_xscale("log", base=2)
    b.set_xlabel("na_window K")
    b.set_title("time, forward + backward (CPU, 1 thread)")
    b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--T", type=int, default=500)
    p.add_argument("--rate", type=float, default=0.03)
    p.add_argument("--N", type=int, default=4096)
    p.add_argument("--Ks", default="8,16,32,64")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="bench_out/na_window")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    result = measure(a.T, a.rate, a.N, [int(k) for k in a.Ks.split(",")], a.rounds)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "na_window_error.json"), "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    plot(result, os.path.join(a.out, "na_window_error.png"))
    print(
        f"T = {result['T']}, firing {100 * result['spike_rate']:.2f} %, exact NA / STBP {result['exact_over_stbp']:.2f}"
    )
    print("| K | rel. L2 error | cosine | NA(K) / STBP |")
    print("|---|---|---|---|")
    for k, w in result["windows"].items():
        print(f"| {k} | {w['rel_l2']:.3g} | {w['cosine']:.4f} | {w['time_over_stbp']:.2f} |")


if __name__ == "__main__":
    main()
