"""Neuron-op benchmark: forward and forward+backward of native vs the pure-PyTorch reference.

For each method (na, stbp, tssl), backend (native, torch), T and N, times `na_cuda.lif` forward alone and
forward+backward (autograd, upstream gradient given), and reports neuron-steps/s and the effective bandwidth of
forward+backward counted as 5 tensor passes per neuron-step (read c, write y; read c and dL/dy, write dL/dc:
20 bytes in fp32, 10 in bf16) against a device-to-device copy measured in the same run. Ratios, not absolute
numbers, are the point: they are compared within one run on one machine.

    python benchmarks/bench_lif.py [--device cpu|cuda] [--quick] [--out DIR]

Writes DIR/bench_lif.json and DIR/bench_lif.png, and prints a table.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import na_cuda  # noqa: E402
from _timing import copy_bandwidth, timeit  # noqa: E402  (shared with run.py)

PASSES_FWD_BWD = 5  # tensor passes per neuron-step of forward+backward (see the module docstring)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    ap.add_argument("--quick", action="store_true", help="small N, T in {5, 20}, one method set (a smoke run)")
    ap.add_argument("--out", default="bench_out")
    ap.add_argument("--methods", default="na,stbp,tssl")
    ap.add_argument("--ref-max-steps", type=float, default=2**20 * 30,
                    help="skip the reference above this many neuron-steps (it is O(T^2) Python-level ops)")
    args = ap.parse_args()
    device = args.device
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA GPU visible")
    if not na_cuda.backends()["cpu" if device == "cpu" else "cuda"]:
        raise SystemExit(f"na_cuda has no native kernel for {device}; build it first (see README)")

    Ts = [5, 20] if args.quick else [5, 10, 20, 30]
    Ns = [2**14] if args.quick else ([2**16, 2**20] if device == "cpu" else [2**20, 2**22])
    dtypes = [torch.float32] + ([torch.bfloat16] if device == "cuda" else [])
    methods = args.methods.split(",")
    min_time, max_reps = (0.05, 3) if args.quick else (0.5, 20)

    rows = []
    copy_bw = {str(dt): copy_bandwidth(max(Ns) * max(Ts), device, dt) for dt in dtypes}
    for dtype in dtypes:
        for N in Ns:
            for T in Ts:
                g = torch.Generator(device="cpu").manual_seed(0)
                c = (torch.rand(T, N, generator=g) * 0.9).to(device=device, dtype=dtype)
                grad = torch.randn(T, N, generator=g).to(device=device, dtype=dtype)
                for method in methods:
                    for backend in ("native", "torch"):
                        if backend == "torch" and (N * T > args.ref_max_steps or dtype != torch.float32):
                            continue
                        kw = dict(method=method, backend=backend)

                        def fwd() -> torch.Tensor:
                            with torch.no_grad():
                                return na_cuda.lif(c, **kw)

                        def fwd_bwd() -> None:
                            x = c.detach().requires_grad_(True)
                            na_cuda.lif(x, **kw).backward(grad)

                        t_f = timeit(fwd, device, min_time, max_reps)
                        t_fb = timeit(fwd_bwd, device, min_time, max_reps)
                        steps = N * T
                        bw = PASSES_FWD_BWD * steps * c.element_size() / t_fb
                        rows.append(dict(method=method, backend=backend, dtype=str(dtype).replace("torch.", ""),
                                         T=T, N=N, fwd_s=t_f, fwd_bwd_s=t_fb, fwd_bwd_steps_per_s=steps / t_fb,
                                         fwd_bwd_GBps=bw / 1e9, frac_of_copy=bw / copy_bw[str(dtype)]))
                        r = rows[-1]
                        print(f"{method:5s} {backend:6s} {r['dtype']:8s} T={T:3d} N={N:8d} fwd {t_f*1e3:9.2f} ms  "
                              f"fwd+bwd {t_fb*1e3:9.2f} ms  {r['fwd_bwd_steps_per_s']/1e9:7.3f} Gstep/s  "
                              f"{r['fwd_bwd_GBps']:7.2f} GB/s ({100*r['frac_of_copy']:.1f}% of copy)", flush=True)

    ratios = []
    for r in rows:
        if r["backend"] != "native":
            continue
        key = (r["method"], r["dtype"], r["T"], r["N"])
        ref = next((q for q in rows if q["backend"] == "torch" and (q["method"], q["dtype"], q["T"], q["N"]) == key), None)
        stbp = next((q for q in rows if q["backend"] == "native" and q["method"] == "stbp"
                     and (q["dtype"], q["T"], q["N"]) == key[1:]), None)
        ratios.append(dict(method=r["method"], dtype=r["dtype"], T=r["T"], N=r["N"],
                           native_speedup_fwd_bwd=(ref["fwd_bwd_s"] / r["fwd_bwd_s"]) if ref else None,
                           native_speedup_fwd=(ref["fwd_s"] / r["fwd_s"]) if ref else None,
                           vs_stbp_native=(r["fwd_bwd_s"] / stbp["fwd_bwd_s"]) if stbp else None))
    print("\nratios (fwd+bwd): native speed-up over the reference, and time / STBP-native")
    for q in ratios:
        sp = f"{q['native_speedup_fwd_bwd']:8.1f}x" if q["native_speedup_fwd_bwd"] else "       -"
        vs = f"{q['vs_stbp_native']:6.2f}x" if q["vs_stbp_native"] else "     -"
        print(f"  {q['method']:5s} {q['dtype']:8s} T={q['T']:3d} N={q['N']:8d}  speed-up {sp}   vs STBP {vs}")

    os.makedirs(args.out, exist_ok=True)
    meta = dict(device=device, device_name=(torch.cuda.get_device_name() if device == "cuda" else platform.processor()
                                            or platform.machine()),
                cpu_threads=torch.get_num_threads(), torch=torch.__version__, na_cuda=na_cuda.__version__,
                backends=na_cuda.backends(), copy_GBps={k: v / 1e9 for k, v in copy_bw.items()},
                quick=args.quick, bytes_per_step_note="fwd+bwd = 5 passes x element size")
    path = os.path.join(args.out, "bench_lif.json")
    with open(path, "w") as f:
        json.dump(dict(meta=meta, rows=rows, ratios=ratios), f, indent=1)
    print(f"wrote {path}")
    _plot(rows, os.path.join(args.out, "bench_lif.png"), device)


def _plot(rows: list[dict], path: str, device: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot (pip install matplotlib)")
        return
    n_max = max(r["N"] for r in rows)
    fig, ax = plt.subplots(figsize=(6, 4))
    for method in sorted({r["method"] for r in rows}):
        for backend, style in (("native", "-o"), ("torch", "--s")):
            pts = sorted((r["T"], r["fwd_bwd_s"]) for r in rows if r["method"] == method and r["backend"] == backend
                         and r["N"] == n_max and r["dtype"] == "float32")
            if pts:
                ax.plot([p[0] for p in pts], [p[1] * 1e3 for p in pts], style, label=f"{method} {backend}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ts = sorted({r["T"] for r in rows})
    ax.set_xticks(ts)
    ax.set_xticklabels([str(t) for t in ts])
    ax.minorticks_off()
    ax.set_xlabel("time steps T")
    ax.set_ylabel("forward+backward (ms)")
    ax.set_title(f"LIF op, N = {n_max}, fp32, {device}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
