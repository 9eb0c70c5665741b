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

from _timing import copy_bandwidth  # noqa: E402
from report import plot_neuron_op  # noqa: E402
from sections.op import bench_neuron_op  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    ap.add_argument("--quick", action="store_true", help="small N, T in {5, 20} (a smoke run)")
    ap.add_argument("--out", default="bench_out")
    ap.add_argument(
        "--ref-max-s",
        type=float,
        default=30.0,
        help="skip the reference where one call is predicted to take longer (it is O(T^2) tensor ops)",
    )
    args = ap.parse_args()
    device = args.device
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA GPU visible")
    if not na_cuda.backends()["cpu" if device == "cpu" else "cuda"]:
        raise SystemExit(f"na_cuda has no native kernel for {device}; build it first (see README)")

    # The sweep itself is the neuron-op section of benchmarks/run.py, run once per N.
    Ns = [2**14] if args.quick else ([2**16, 2**20] if device == "cpu" else [2**20, 2**22])
    plan = dict(
        Ts=[5, 20] if args.quick else [5, 10, 20, 30],
        ref_max_s=args.ref_max_s,
        dtypes=["float32"] + (["bfloat16"] if device == "cuda" else []),
        repeats=3 if args.quick else 15,
        slow_repeats=2 if args.quick else 3,
        slot_s=0.01 if args.quick else 0.05,
    )
    copy_bw = {
        d: copy_bandwidth(max(Ns) * max(plan["Ts"]), device, getattr(torch, d))["median"] for d in plan["dtypes"]
    }
    rows, skipped = [], []
    for N in Ns:
        res = bench_neuron_op(dict(plan, N=N), device, copy_bw)
        rows += res["rows"]
        skipped += res["skipped"]

    print("\nratios (fwd+bwd): native speed-up over the reference, and time / STBP-native")
    for r in rows:
        if r["backend"] != "native":
            continue
        sp, vs = r["speedup_vs_reference_fwd_bwd"], r["time_vs_stbp_native"]
        print(
            f"  {r['method']:5s} {r['dtype']:8s} T={r['T']:3d} N={r['N']:8d}  "
            f"speed-up {f'{sp:8.1f}x' if sp else '       -'}   vs STBP {f'{vs:6.2f}x' if vs else '     -'}"
        )

    os.makedirs(args.out, exist_ok=True)
    meta = dict(
        device=device,
        device_name=(torch.cuda.get_device_name() if device == "cuda" else platform.processor() or platform.machine()),
        cpu_threads=torch.get_num_threads(),
        torch=torch.__version__,
        na_cuda=na_cuda.__version__,
        backends=na_cuda.backends(),
        copy_GBps={k: v / 1e9 for k, v in copy_bw.items()},
        quick=args.quick,
        bytes_per_step_note="fwd+bwd = 5 passes x element size",
    )
    path = os.path.join(args.out, "bench_lif.json")
    with open(path, "w") as f:
        json.dump(dict(meta=meta, rows=rows, skipped=skipped), f, indent=1)
    print(f"wrote {path}")
    n_max = max(r["N"] for r in rows)  # the suite's neuron-op plot, for the largest N
    plot_neuron_op(
        dict(neuron_op=dict(N=n_max, rows=[r for r in rows if r["N"] == n_max]), meta=dict(device=device), peer={}),
        os.path.join(args.out, "bench_lif.png"),
    )
    print(f"wrote {os.path.join(args.out, 'bench_lif.png')}")


if __name__ == "__main__":
    main()
