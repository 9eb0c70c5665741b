"""How long NA's neighbour runs are: the distribution that sets NA's cost on long windows (docs/algorithm.md §3.7).

A float32 numpy model of the hard-reset run loop of csrc/core/rules/na.h (the paper's neuron, inputs drawn for a
firing rate: sections/common.py rate_inputs) counts, for every neuron and step t, the steps its neighbour run takes
before it ends, under the exits before issue 23 ("old": the neighbour's first spike, or the original silent for the
rest of the window with the neighbour not above it) and with the exact merge rules of §3.7 ("new": equal states,
the Q sandwich). A SIMD pack of the CPU kernels runs as long as its longest lane, so the table also gives the mean
of the maximum over packs of 8 neighbouring neurons (AVX2 float32) and of 32 (a CUDA warp). The model's spikes are
checked against the native forward.

    python benchmarks/na_run_lengths.py [--Ts 100,500] [--rates 0.03,0.15] [--N 512] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import na_cuda  # noqa: E402

from sections.common import rate_inputs  # noqa: E402

F = np.float32
LAM, THR = F(0.8), F(1.0)


def run_lengths(c: np.ndarray, merge: bool) -> np.ndarray:
    """[T, N] steps of each neighbour run (hard reset, paper's neuron), with or without the §3.7 merge rules."""
    T, N = c.shape
    u = np.empty_like(c)
    v = np.zeros(N, F)
    for t in range(T):
        u[t] = LAM * v + c[t]
        v = np.where(u[t] >= THR, F(0), u[t])
    s = u >= THR
    after = np.where(s, F(0), u)
    silent_from = np.zeros(N, np.int64) - 1  # the original's last spike
    for t in range(T):
        silent_from = np.where(s[t], t, silent_from)
    q = np.ones((T, N), bool)
    lengths = np.zeros((T, N), np.int32)
    for t in range(T - 1, -1, -1):
        vn, vo = np.where(s[t], THR, F(0)), after[t].copy()
        live, diff = np.ones(N, bool), np.zeros(N, bool)
        for k in range(t + 1, T):
            done = (silent_from < k) & (vn <= vo)
            if merge:
                done |= vn == vo
            live &= ~done
            if not live.any():
                break
            lengths[t] += live
            un = LAM * vn + c[k]
            sn, so = un >= THR, s[k]
            vn, vo = np.where(sn, F(0), un), after[k]
            d = live & (sn != so)
            diff |= d
            live &= ~sn
            if merge:
                nk = np.where(so, THR, F(0))
                live &= ~((((vn >= vo) & (vn <= nk)) | ((vn <= vo) & (vn >= nk))) & q[k])
        q[t] = ~diff
    return lengths


def summary(L: np.ndarray) -> dict:
    T, N = L.shape
    p = np.percentile(L, [50, 90, 99])
    out = dict(mean=float(L.mean()), p50=float(p[0]), p90=float(p[1]), p99=float(p[2]), max=int(L.max()))
    for w in (8, 32):
        if N % w == 0:
            out[f"pack{w}_mean"] = float(L.reshape(T, N // w, w).max(-1).mean())
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--Ts", default="100,500")
    ap.add_argument("--rates", default="0.03,0.15")
    ap.add_argument("--N", type=int, default=512)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    rows = []
    for T in (int(x) for x in args.Ts.split(",")):
        for rate in (float(x) for x in args.rates.split(",")):
            c, _ = rate_inputs(T, args.N, rate, seed=T)
            with torch.no_grad():
                spikes = na_cuda.lif(c, output="spike", backend="native").numpy()
            cn = c.numpy()
            for rule in ("old", "new"):
                L = run_lengths(cn, merge=rule == "new")
                row = dict(T=T, rate=rate, measured_rate=float(spikes.mean()), rules=rule, **summary(L))
                rows.append(row)
                print(
                    f"T={T:4d} rate {row['measured_rate']:.3f} {rule}: mean {row['mean']:6.2f}  p50 {row['p50']:4.0f}"
                    f"  p90 {row['p90']:4.0f}  p99 {row['p99']:4.0f}  max {row['max']:4d}  pack-8 mean "
                    f"{row.get('pack8_mean', float('nan')):6.2f}  warp-32 mean "
                    f"{row.get('pack32_mean', float('nan')):6.2f}",
                    flush=True,
                )
            u_model = np.empty_like(cn)  # the model's forward equals the kernels'
            v = np.zeros(cn.shape[1], F)
            for t in range(T):
                u_model[t] = LAM * v + cn[t]
                v = np.where(u_model[t] >= THR, F(0), u_model[t])
            assert ((u_model >= THR) == (spikes > 0)).all(), "the model's spikes differ from the native forward"
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
