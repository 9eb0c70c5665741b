"""The project's benchmark suite: neuron op, spikingjelly peer, end-to-end MNIST training step, saved memory.

    python benchmarks/run.py [--quick] [--device cpu|cuda] [--out DIR] [--sections op,peer,e2e,memory,scaling]
                             [--N N] [--ref-max-s S] [--copy-reference GBPS] [--compile-modes MODES]
    python benchmarks/run.py --save-copy-reference [--quick] [--device cpu|cuda]

Writes DIR/results.json, DIR/RESULTS.md (the noise check's verdict, machine, goals, tables) and the plots
DIR/neuron_op.png, DIR/fig7_epoch_time.png and DIR/memory.png (report.py). Nothing is asserted: the goals are
reported as measured ratios (goals.py), and only from a run that passed the noise check (reliability.py: load
average, copy bandwidth at the start and the end against an unloaded reference, spread across repeats).

Every section times the variants it compares interleaved (they take turns within each repeat) and keeps one
sample per repeat: times are medians with min / quartiles / max in the JSON, ratios are computed per repeat from
the interleaved pairs, then summarised (_timing.py). The sections, one module each (their docstrings say what
they measure):

1. `op`, sections/op.py: `na_cuda.lif` forward and forward+backward, method x backend x T x dtype, against a
   device copy.
2. `peer`, sections/peer.py: spikingjelly's multi-step LIFNode against na_cuda's NA and STBP (skipped with a
   message when spikingjelly is not importable).
3. `e2e`, sections/e2e.py: one training iteration of the MNIST preset network, per-epoch time next to the NA
   paper's figure 7, bytes saved for backward and peak memory; steps/s eager against `torch.compile`
   (`--compile-modes`).
4. `memory`, sections/memory.py: bytes saved for backward by one LIF layer, in input-sized tensors.
5. `scaling`, sections/scaling.py (not in the default set: `--sections scaling`): T = 5 ... 500 at a 3 % and a
   15 % firing rate, NA / STBP / TSSL-BP and spikingjelly's LIFNode, forward+backward and each backward kernel
   alone (DIR/scaling.png).

--save-copy-reference measures only the copy bandwidth, at the sizes this mode uses, and records it in
benchmarks/copy_reference.json as this machine's unloaded reference (refused when the machine is loaded).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from typing import Any, Callable, Optional

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import na_cuda  # noqa: E402

import reliability  # noqa: E402
import report  # noqa: E402
from _timing import copy_bandwidth, machine_info  # noqa: E402
from goals import evaluate_goals  # noqa: E402
from sections.common import dtype_of  # noqa: E402
from sections.e2e import bench_e2e  # noqa: E402
from sections.memory import bench_memory  # noqa: E402
from sections.op import bench_neuron_op  # noqa: E402
from sections.peer import bench_peer  # noqa: E402
from sections.scaling import bench_scaling  # noqa: E402

SECTIONS = ("op", "peer", "e2e", "memory", "scaling")
DEFAULT_SECTIONS = ("op", "peer", "e2e", "memory")  # the T sweep to 500 takes minutes: asked for by name
TOP_LEVEL_KEYS = ("meta", "config", "reliability", "neuron_op", "peer", "end_to_end", "memory", "scaling", "goals")


def make_plan(mode: str, device: str, args: argparse.Namespace) -> dict:
    """Sizes and repetition counts. `mode`: "full" or "quick" (the CI smoke run, under a minute on a 2-core CPU).

    repeats: interleaved repeats per variant (e2e_repeats for the training step); slow_repeats: repeats of a
    variant whose call takes over a second (the reference); slot_s: the least time one sample of a variant
    covers (short calls are repeated back to back within their slot)."""
    gpu = device == "cuda"
    if mode == "full":
        # CPU N = 2^18: every buffer up to T = 30 stays under glibc's 32 MB mmap threshold (no page faults per
        # allocation, see docs/benchmarks.md); GPU N = 2^22: N*T >= 2^24 from T = 4 (the bandwidth goal's size).
        plan: dict[str, Any] = dict(
            N=2**22 if gpu else 2**18,
            Ts=[5, 10, 20, 30, 50],
            repeats=15,
            slow_repeats=3,
            slot_s=0.05,
            ref_max_s=30.0,
            e2e_Ts=[5, 10, 20],
            e2e_batch=64,
            e2e_ref_Ts=[5, 10, 20],
            e2e_repeats=10,
            e2e_compile=["default", "reduce-overhead"] if gpu else ["default"],
            e2e_compile_T=5,
            mem_N=2**14,
            mem_Ts=[5, 20],
            check_N=2**12,
            scaling_N=2**20 if gpu else 2**14,
            scaling_Ts=[5, 20, 50, 100, 500],
            scaling_repeats=7,
        )
    else:
        plan = dict(
            N=2**20 if gpu else 2**14,
            Ts=[5, 10, 20, 30, 50],
            repeats=5,
            slow_repeats=2,
            slot_s=0.01,
            ref_max_s=1.0,
            e2e_Ts=[5, 10, 20],
            e2e_batch=64,
            e2e_ref_Ts=[5],
            e2e_repeats=5,
            e2e_compile=[],  # compiling takes ~30 s per variant on a CPU: --compile-modes to include it
            e2e_compile_T=5,
            mem_N=2**12,
            mem_Ts=[5, 20],
            check_N=2**10,
            scaling_N=2**14 if gpu else 2**10,
            scaling_Ts=[5, 20],
            scaling_repeats=3,
        )
    if args.N is not None:
        plan["N"] = args.N
    if args.ref_max_s is not None:
        plan["ref_max_s"] = args.ref_max_s
    if args.compile_modes is not None:
        plan["e2e_compile"] = [m for m in args.compile_modes.split(",") if m]
    plan["scaling_rates"] = [0.03, 0.15]
    plan["dtypes"] = ["float32", "bfloat16"] if gpu else ["float32"]
    plan["mode"] = mode
    plan["copy_elements"] = plan["N"] * max(plan["Ts"])
    return plan


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    """The CLI's arguments, validated (one-line SystemExit naming the argument)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    ap.add_argument(
        "--quick",
        action="store_true",
        help="small shapes and few repetitions (CI smoke run, under a minute on 2 CPU cores)",
    )
    ap.add_argument("--out", default="bench_out")
    ap.add_argument(
        "--sections",
        default=",".join(DEFAULT_SECTIONS),
        help="comma-separated subset of op,peer,e2e,memory,scaling (default: all but scaling)",
    )
    ap.add_argument("--N", type=int, default=None, help="neurons of the neuron-op and peer benchmarks")
    ap.add_argument(
        "--ref-max-s",
        type=float,
        default=None,
        help="skip the reference where one call is predicted to take longer (seconds)",
    )
    ap.add_argument(
        "--copy-reference",
        type=float,
        default=None,
        metavar="GBPS",
        help="this machine's unloaded copy bandwidth (GB/s) for the noise check, instead of the entry "
        "in benchmarks/copy_reference.json",
    )
    ap.add_argument(
        "--compile-modes",
        default=None,
        metavar="MODES",
        help="e2e: the torch.compile modes whose training step is timed against eager (comma-separated, e.g. "
        "default,reduce-overhead; '' for none); default: default (CPU) or default,reduce-overhead (GPU) in the "
        "full run, none with --quick",
    )
    ap.add_argument(
        "--save-copy-reference",
        action="store_true",
        help="measure the copy bandwidth only and record it as this machine's unloaded reference",
    )
    args = ap.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA GPU visible")
    if not na_cuda.backends()["cpu" if args.device == "cpu" else "cuda"]:
        raise SystemExit(f"na_cuda has no native kernel for {args.device}; build it first (see README)")
    args.sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(args.sections) - set(SECTIONS)
    if unknown or not args.sections:
        raise SystemExit(f"--sections: unknown or empty {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    if args.N is not None and args.N < 1:
        raise SystemExit(f"--N must be >= 1; got {args.N}")
    if args.compile_modes is not None:
        from na_cuda.train.config import COMPILE_MODES

        bad = [m for m in args.compile_modes.split(",") if m and m not in COMPILE_MODES]
        if bad:
            raise SystemExit(f"--compile-modes: unknown {bad}; choose from {', '.join(COMPILE_MODES)}")
    if args.copy_reference is not None and not args.copy_reference > 0:
        raise SystemExit(f"--copy-reference must be a positive bandwidth in GB/s; got {args.copy_reference}")
    return args


def device_name(device: str, machine: dict) -> str:
    """The machine as RESULTS.md and the copy references name it."""
    return machine["gpu"]["name"] if machine["gpu"] else f"{machine['cpu_model']}, {machine['cpu_count']} cores"


def save_copy_reference(plan: dict, device: str, name: str) -> int:
    """--save-copy-reference: records the copy bandwidth of an idle machine (refused when it is loaded)."""
    load = reliability.load_1min()
    cores = os.cpu_count() or 1
    limit = reliability.THRESHOLDS["other_load_per_core"][device]
    if load is not None and load / cores > limit:
        raise SystemExit(
            f"--save-copy-reference: the machine is loaded (load average {load:.2f} on {cores} cores, "
            f"limit {limit} per core); a reference must be measured on an idle machine"
        )
    for d in plan["dtypes"]:
        bw = copy_bandwidth(plan["copy_elements"], device, dtype_of(d), repeats=15)["median"] / 1e9
        how = (
            f"`python benchmarks/run.py{' --quick' if plan['mode'] == 'quick' else ''} --device {device} "
            f"--save-copy-reference` on {time.strftime('%Y-%m-%d %H:%M %Z')}, load average "
            f"{'-' if load is None else f'{load:.2f}'} on {cores} cores, median of 15 samples"
        )
        key = reliability.save_reference(name, d, plan["copy_elements"], bw, how)
        print(f"recorded {bw:.1f} GB/s for {key} in {reliability.REFERENCE_FILE}")
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    device, sections = args.device, args.sections
    mode = "quick" if args.quick else "full"
    plan = make_plan(mode, device, args)
    probe = reliability.LoadProbe()  # before any measurement: the start's load is the other processes'
    machine = machine_info(device)
    name = device_name(device, machine)
    if args.save_copy_reference:
        return save_copy_reference(plan, device, name)
    os.makedirs(args.out, exist_ok=True)
    t_start = time.time()
    print(f"na_cuda benchmarks, {mode} run on {device} ({name}, load {probe.start}), output {args.out}", flush=True)
    copy: dict[str, dict[str, Any]] = {
        d: dict(
            start_GBps=copy_bandwidth(plan["copy_elements"], device, dtype_of(d))["median"] / 1e9,
            reference=reliability.find_reference(name, d, plan["copy_elements"], args.copy_reference),
        )
        for d in plan["dtypes"]
    }
    copy_bw = {d: c["start_GBps"] * 1e9 for d, c in copy.items()}
    res: dict[str, Any] = {k: None for k in TOP_LEVEL_KEYS}
    res["config"] = plan
    res["meta"] = dict(
        device=device,
        device_name=name,
        machine=machine,
        backends=na_cuda.backends(),
        na_cuda=na_cuda.__version__,
        copy_GBps={d: c["start_GBps"] for d, c in copy.items()},
        copy_elements=plan["copy_elements"],
        date=time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        sections=sections,
        errors={},
    )
    steps: tuple[tuple[str, str, Callable[[], dict]], ...] = (
        ("op", "neuron_op", lambda: bench_neuron_op(plan, device, copy_bw)),
        ("peer", "peer", lambda: bench_peer(plan, device)),
        ("e2e", "end_to_end", lambda: bench_e2e(plan, device)),
        ("memory", "memory", lambda: bench_memory(plan, device, "peer" in sections)),
        ("scaling", "scaling", lambda: bench_scaling(plan, device)),
    )
    for short, key, fn in steps:
        if short not in sections:
            continue
        print(f"[{key}]", flush=True)
        t0 = time.time()
        try:
            res[key] = fn()
        except Exception as exc:  # noqa: BLE001  (report the section's failure, keep the others)
            traceback.print_exc()
            res["meta"]["errors"][key] = f"{type(exc).__name__}: {exc}"
        if res[key] is not None:
            res[key]["section_wall_s"] = time.time() - t0
    for d, c in copy.items():  # the same copy again: did the machine change under the run?
        c["end_GBps"] = copy_bandwidth(plan["copy_elements"], device, dtype_of(d))["median"] / 1e9
    keys = ("neuron_op", "peer", "end_to_end", "memory", "scaling")
    timed = [t for key in keys for t in (res[key] or {}).get("timed", [])]
    res["reliability"] = reliability.assess(device, probe.finish(os.cpu_count() or 1), copy, timed)
    res["goals"] = evaluate_goals(res, device, res["reliability"]["reliable"])
    res["meta"]["wall_s"] = time.time() - t_start
    report.write_all(res, args.out)
    print("\ngoals:")
    for gl in res["goals"]:
        print(f"  {gl['status']:>12s}  {gl['shown']:>12s}  {gl['goal']}")
    if not res["reliability"]["reliable"]:
        print("\nUNRELIABLE RUN (no goal scored):\n  " + "\n  ".join(res["reliability"]["reasons"]))
    print(f"wrote {args.out}/results.json, RESULTS.md and plots in {res['meta']['wall_s']:.0f} s")
    return 1 if res["meta"]["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
