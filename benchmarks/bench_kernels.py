"""Kernel benchmark: each native op alone (forward, NA / STBP / TSSL-BP backward) against a device copy.

Times every op by itself, called straight through torch.ops.na_cuda (no autograd, inputs made once), with CUDA
events on a GPU (perf_counter on the CPU), at N neurons and T = 5, 10, 20, 50 in float32 and bfloat16, and a
device-to-device copy of the same T * N elements in the same run. Reports, per method, forward + backward as a
fraction of the copy bandwidth on the ideal traffic of 5 tensor passes per neuron-step (read c, write y; read c
and dL/dy, write dL/dc: 20 B in fp32, 10 B in bf16), the time relative to STBP, and spikingjelly's multi-step
LIF (forward + backward, every backend it can run here) where spikingjelly is importable. The targets of
issue 9 (NA >= 70 % of copy at T = 5/10/20; NA/STBP <= 1.3x at T = 5, <= 1.6x at T = 20; NA at most
spikingjelly's fastest LIF at T <= 10) are evaluated in the JSON's `targets`.

    python benchmarks/bench_kernels.py [--device cuda|cpu] [--N N] [--Ts 5,10,20,50] [--dtypes float32,bfloat16]
                                       [--reps R] [--json FILE] [--once]

--once calls each op once without timing (for a profiler: scripts/gpu_check.sh runs ncu on it). On the CPU the
default N is 2^14, so the run is a smoke test of the script (tests/test_bench_kernels.py), not a measurement.
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import sys
import time
from typing import Callable, Optional

import torch

import na_cuda

LIF = dict(tau_m=5.0, tau_s=2.0, threshold=1.0, v_reset=0.0, decay_input=False, strict_threshold=False, output="psc")
METHOD_ARGS = {
    "na": dict(first_order="paper", dist_power=3, clip=10.0),
    "stbp": dict(surrogate="rect", surrogate_alpha=1.0, detach_reset=True),
    "tssl": {},
}
OPS = ("forward", "na", "stbp", "tssl")
PASSES = {"forward": 2, "backward": 3, "fwd_bwd": 5}  # ideal tensor passes per neuron-step


def _call(op, *tensors: torch.Tensor, **given):
    """Calls a torch.ops.na_cuda op with the arguments its schema names (so a schema that gains an argument
    with a value in `given` keeps working); trailing arguments with a default and no value in `given` keep it."""
    names, missing = [], []
    for arg in op.default._schema.arguments[len(tensors) :]:
        if arg.name in given:
            names.append(arg.name)
        elif not arg.has_default_value():
            missing.append(arg.name)
    if missing:
        raise KeyError(f"bench_kernels: no value for the op's arguments {missing}")
    return op(*tensors, *[given[n] for n in names])


def op_fn(name: str, c: torch.Tensor, g: torch.Tensor) -> Callable[[], torch.Tensor]:
    """The call that runs op `name` once on (c, g)."""
    ops = torch.ops.na_cuda
    if name == "forward":
        args = dict(LIF, method="na", **METHOD_ARGS["na"], surrogate="rect", surrogate_alpha=1.0, detach_reset=True)
        return lambda: _call(ops.lif_forward, c, **args)
    op = {"na": ops.na_backward, "stbp": ops.stbp_backward, "tssl": ops.tssl_backward}[name]
    args = dict(LIF, **METHOD_ARGS[name])
    return lambda: _call(op, g, c, **args)


def time_op(fn: Callable[[], object], device: str, reps: int) -> float:
    """Seconds per call: CUDA events around `reps` back-to-back calls (the mean: the GPU runs them in a queue,
    with no host gap), or on the CPU the minimum of `reps` perf_counter timings; after 2 warm-up calls."""
    for _ in range(2):
        fn()
    if device == "cuda":
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(reps):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3 / reps
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def spikingjelly_lif(c: torch.Tensor, g: torch.Tensor, device: str, reps: int) -> list[dict]:
    """Forward + backward of spikingjelly's multi-step LIF on c (as [T, N]) for each backend that runs here."""
    try:
        from spikingjelly.activation_based import neuron, surrogate
    except Exception as exc:  # noqa: BLE001 - any import failure means "not carried"
        return [dict(backend="-", error=f"spikingjelly not importable: {type(exc).__name__}: {exc}")]
    out = []
    for backend in ["torch", "cupy", "triton"] if device == "cuda" else ["torch"]:
        try:
            node = neuron.LIFNode(
                tau=LIF["tau_m"],
                v_threshold=LIF["threshold"],
                detach_reset=True,
                surrogate_function=surrogate.Sigmoid(),
                step_mode="m",
                backend=backend,
            ).to(device)

            def fwd_bwd() -> None:
                node.reset()
                x = c.detach().requires_grad_(True)
                node(x).backward(g)

            out.append(dict(backend=backend, fwd_bwd_s=time_op(fwd_bwd, device, reps)))
        except Exception as exc:  # noqa: BLE001 - a backend that cannot run here (no cupy, no triton)
            out.append(dict(backend=backend, error=f"{type(exc).__name__}: {str(exc)[:200]}"))
    return out


def targets(fwd_bwd: list[dict], peer: dict) -> list[dict]:
    """Issue 9's goals, each with the measured value and met (True/False; None where not measured)."""
    rows = []

    def find(method: str, dtype: str, T: int) -> Optional[dict]:
        return next((r for r in fwd_bwd if (r["method"], r["dtype"], r["T"]) == (method, dtype, T)), None)

    for dtype in sorted({r["dtype"] for r in fwd_bwd}):
        for T in (5, 10, 20):
            r = find("na", dtype, T)
            if r:
                rows.append(
                    dict(
                        goal=f"NA fwd+bwd >= 70 % of copy bandwidth, {dtype}, T={T}",
                        value=r["frac_of_copy"],
                        met=r["frac_of_copy"] >= 0.70,
                    )
                )
        for T, limit in ((5, 1.3), (20, 1.6)):
            r = find("na", dtype, T)
            if r and r["vs_stbp"] is not None:
                rows.append(
                    dict(
                        goal=f"NA/STBP fwd+bwd <= {limit}x, {dtype}, T={T}",
                        value=r["vs_stbp"],
                        met=r["vs_stbp"] <= limit,
                    )
                )
        for T in sorted({r["T"] for r in fwd_bwd if r["T"] <= 10}):
            r, sj = find("na", dtype, T), peer.get(f"{dtype} T={T}")
            best = min((x["fwd_bwd_s"] for x in sj or [] if "fwd_bwd_s" in x), default=None)
            if r:
                rows.append(
                    dict(
                        goal=f"NA fwd+bwd <= spikingjelly's fastest LIF, {dtype}, T={T}",
                        value=None if best is None else r["fwd_bwd_s"] / best,
                        met=None if best is None else r["fwd_bwd_s"] <= best,
                    )
                )
    return rows


def run(device: str, N: int, Ts: list[int], dtypes: list[str], reps: int, once: bool) -> dict:
    meta = dict(
        device=device,
        N=N,
        Ts=Ts,
        dtypes=dtypes,
        reps=reps,
        torch=torch.__version__,
        backends=na_cuda.backends(),
        python=platform.python_version(),
        device_name=torch.cuda.get_device_name() if device == "cuda" else platform.processor() or "cpu",
        timer="CUDA events, mean of reps" if device == "cuda" else "perf_counter, min of reps",
        date=time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    )
    rows, fwd_bwd, copy, peer = [], [], {}, {}
    for dname in dtypes:
        dtype = getattr(torch, dname)
        for T in Ts:
            gen = torch.Generator().manual_seed(T)
            c = (torch.rand(T, N, generator=gen) * 0.9).to(device=device, dtype=dtype)
            g = torch.randn(T, N, generator=gen).to(device=device, dtype=dtype)
            if once:
                for name in OPS:
                    op_fn(name, c, g)()
                continue
            esz, steps = c.element_size(), T * N
            dst = torch.empty_like(c)
            t_copy = time_op(functools.partial(dst.copy_, c), device, reps)
            copy_bw = 2 * steps * esz / t_copy  # read + write
            copy[f"{dname} T={T}"] = copy_bw / 1e9
            times = {name: time_op(op_fn(name, c, g), device, reps) for name in OPS}
            for name, t in times.items():
                passes = PASSES["forward" if name == "forward" else "backward"]
                rows.append(
                    dict(
                        op=name,
                        dtype=dname,
                        T=T,
                        N=N,
                        s=t,
                        steps_per_s=steps / t,
                        GBps=passes * steps * esz / t / 1e9,
                        frac_of_copy=passes * steps * esz / t / copy_bw,
                    )
                )
            for method in ("na", "stbp", "tssl"):
                t = times["forward"] + times[method]
                fwd_bwd.append(
                    dict(
                        method=method,
                        dtype=dname,
                        T=T,
                        N=N,
                        fwd_bwd_s=t,
                        frac_of_copy=PASSES["fwd_bwd"] * steps * esz / t / copy_bw,
                        vs_stbp=t / (times["forward"] + times["stbp"]),
                    )
                )
            if T <= 10:
                peer[f"{dname} T={T}"] = spikingjelly_lif(c, g, device, reps)
            del c, g, dst
    return dict(
        meta=meta,
        copy_GBps=copy,
        ops=rows,
        fwd_bwd=fwd_bwd,
        spikingjelly=peer,
        targets=[] if once else targets(fwd_bwd, peer),
    )


def report(res: dict) -> None:
    print(
        f"bench_kernels on {res['meta']['device_name']} ({res['meta']['device']}), N={res['meta']['N']}, "
        f"{res['meta']['timer']}"
    )
    print(f"{'method':6s} {'dtype':9s} {'T':>3s} {'fwd+bwd ms':>11s} {'% of copy':>9s} {'vs STBP':>8s}")
    for r in res["fwd_bwd"]:
        print(
            f"{r['method']:6s} {r['dtype']:9s} {r['T']:3d} {r['fwd_bwd_s'] * 1e3:11.3f} "
            f"{100 * r['frac_of_copy']:8.1f}% {r['vs_stbp']:7.2f}x"
        )
    for key, runs in res["spikingjelly"].items():
        for x in runs:
            shown = f"{x['fwd_bwd_s'] * 1e3:.3f} ms" if "fwd_bwd_s" in x else x.get("error", "")
            print(f"spikingjelly LIF {key} {x['backend']}: {shown}")
    for t in res["targets"]:
        status = {True: "met", False: "MISSED", None: "n/a"}[t["met"]]
        value = "-" if t["value"] is None else f"{t['value']:.3g}"
        print(f"  {status:>6s}  {value:>7s}  {t['goal']}")


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    ap.add_argument("--N", type=int, default=None, help="neurons (default 2^22 on cuda, 2^14 on the CPU)")
    ap.add_argument("--Ts", default="5,10,20,50")
    ap.add_argument("--dtypes", default="float32,bfloat16")
    ap.add_argument("--reps", type=int, default=None, help="timed calls per op (default 20 on cuda, 3 on the CPU)")
    ap.add_argument("--json", default=None, help="write the results here")
    ap.add_argument("--once", action="store_true", help="call each op once, no timing (for a profiler)")
    args = ap.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench_kernels: --device cuda: no CUDA GPU visible")
    if not na_cuda.backends()[args.device]:
        raise SystemExit(f"bench_kernels: na_cuda has no native kernels for {args.device}; build it (README)")
    N = args.N or (1 << 22 if args.device == "cuda" else 1 << 14)
    reps = args.reps or (20 if args.device == "cuda" else 3)
    try:
        Ts = [int(t) for t in args.Ts.split(",")]
    except ValueError:
        raise SystemExit(f"bench_kernels: --Ts must be comma-separated integers; got {args.Ts!r}") from None
    dtypes = args.dtypes.split(",")
    bad = [d for d in dtypes if d not in ("float32", "bfloat16", "float16", "float64")]
    if bad or N < 1 or reps < 1 or min(Ts) < 1:
        raise SystemExit(
            f"bench_kernels: need N, reps, T >= 1 and dtypes among float16/bfloat16/float32/float64 "
            f"(got N={N}, reps={reps}, Ts={Ts}, unknown dtypes {bad})"
        )
    res = run(args.device, N, Ts, dtypes, reps, args.once)
    if not args.once:
        report(res)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
