"""The learnable decay's backward cost against the fixed-tau one (issue 17 item 1; docs/algorithm.md §12).

Times each rule's native backward op alone (``<rule>_backward``, the kernels' dL/dc, plus dL/dlam per neuron with a
decay), fixed tau against a learnable decay, interleaved: every repeat runs both variants in turn, so a burst of
load from another process hits both. Prints min and median per variant and the median of the per-repeat ratios,
and writes them as JSON.

    python benchmarks/bench_decay.py [--T 5 20] [--neurons 65536] [--repeats 61] [--inner 1] [--out bench_decay.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import torch

import na_cuda
from na_cuda import _validate


def _time(fn, inner: int) -> float:
    t0 = time.perf_counter()
    for _ in range(inner):
        fn()
    return (time.perf_counter() - t0) / inner


def measure(method: str, T: int, n: int, repeats: int, inner: int) -> dict:
    g = torch.Generator().manual_seed(0)
    c = torch.rand(T, n, generator=g) * 1.2
    grad = torch.randn(T, n, generator=g)
    kw: dict[str, Any] = dict(method=method, output="psc" if method == "tssl" else "spike")
    neuron, rule, _ = _validate.build(**kw)
    decay = torch.full((n,), 0.8)

    def fixed() -> None:
        rule.native_backward(grad, c, neuron)

    def learnable() -> None:
        rule.native_backward(grad, c, neuron, decay)

    for fn in (fixed, learnable):  # warm-up
        fn()
    times: dict[str, list[float]] = {"fixed": [], "learnable": []}
    ratios = []
    for r in range(repeats):
        order = (("fixed", fixed), ("learnable", learnable))
        if r % 2:  # alternate which goes first
            order = order[::-1]
        got = {name: _time(fn, inner) for name, fn in order}
        for name, t in got.items():
            times[name].append(t)
        ratios.append(got["learnable"] / got["fixed"])
    return {
        "method": method,
        "T": T,
        "neurons": n,
        **{f"{k}_ms_min": min(v) * 1e3 for k, v in times.items()},
        **{f"{k}_ms_median": statistics.median(v) * 1e3 for k, v in times.items()},
        "ratio_median": statistics.median(ratios),
        "ratio_of_mins": min(times["learnable"]) / min(times["fixed"]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--T", type=int, nargs="+", default=[5, 20])
    ap.add_argument("--neurons", type=int, default=1 << 16)
    ap.add_argument("--repeats", type=int, default=61)
    ap.add_argument("--inner", type=int, default=1)
    ap.add_argument("--methods", nargs="+", default=["na", "stbp", "tssl"])
    ap.add_argument("--out", default="bench_decay.json")
    args = ap.parse_args()
    if not na_cuda.backends()["cpu"]:
        raise SystemExit("bench_decay: the native CPU kernels are not built (pip install --no-build-isolation -e .)")
    rows = [measure(m, T, args.neurons, args.repeats, args.inner) for T in args.T for m in args.methods]
    print(f"torch threads {torch.get_num_threads()}, N = {args.neurons}, {args.repeats} interleaved repeats")
    print("| rule | T | fixed ms (min / median) | learnable ms (min / median) | ratio (median of pairs) | of mins |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['method']} | {r['T']} | {r['fixed_ms_min']:.3f} / {r['fixed_ms_median']:.3f} | "
            f"{r['learnable_ms_min']:.3f} / {r['learnable_ms_median']:.3f} | {r['ratio_median']:.3f} | "
            f"{r['ratio_of_mins']:.3f} |"
        )
    with open(args.out, "w") as f:
        json.dump({"threads": torch.get_num_threads(), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
