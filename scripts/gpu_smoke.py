"""CUDA smoke test of the na_cuda kernels: every op x dtype x mode on CUDA against the CPU kernels.

Both backends run the same per-neuron code (csrc/core) without contracting a*b+c into
an FMA (nvcc -fmad=false, g++ -ffp-contract=off), so the results should be bit-identical except where exp() is
used (STBP's sigmoid surrogate, TSSL-BP's warm-up: the GPU's expf is a few ulp from glibc's), and the host
emulation (tests/test_cuda_emulation.py) shows they are on the host. The check still counts elements outside a
tolerance and fails when more than a tiny fraction differ (a build with NVCC_FLAGS=-fmad=true can flip a spike
whose potential lies within an ulp of the threshold), prints the worst ones, and reports how many comparisons
were bit-identical. Independent of the test suite (tests/ compares against the pure
PyTorch reference); used by scripts/gpu_check.sh.

    python scripts/gpu_smoke.py [--large] [--bench] [--quick] [--verbose]

--large also runs a forward + NA backward with T * N > 2^31 (float16, ~22 GB of GPU memory) and checks columns at
both ends against the CPU. --bench times each op with CUDA events at T = 8, N = 2^22. --quick runs a small subset
(for compute-sanitizer).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time

import torch

import na_cuda  # noqa: F401  (loads the operator library)

OPS = torch.ops.na_cuda
LIF = dict(tau_m=5.0, tau_s=3.0, threshold=1.0)
COUNTS = {True: 0, False: 0}
EXACT: dict[str, list[int]] = {}  # op -> [bit-identical comparisons, comparisons]
VERBOSE = False
DEV = "cuda"  # --device cpu runs the script's own logic without a GPU (CPU against CPU)
DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]
# Elements allowed outside the tolerance (spike flips from FMA contraction), as a fraction of all elements.
MAX_BAD_FRACTION = {torch.float64: 1e-5, torch.float32: 2e-3, torch.float16: 2e-3, torch.bfloat16: 2e-3}
TOL = {
    torch.float64: (1e-9, 1e-9),
    torch.float32: (1e-4, 1e-4),
    torch.float16: (2e-3, 2e-3),
    torch.bfloat16: (1.6e-2, 1.6e-2),
}  # (atol, rtol)


def run_op(name: str, c: torch.Tensor, g: torch.Tensor, p: dict) -> torch.Tensor:
    # the neuron's op arguments: tau_m, tau_s, threshold, v_reset (None: soft reset), decay_input, strict, output
    t = (
        LIF["tau_m"],
        LIF["tau_s"],
        LIF["threshold"],
        p.get("v_reset", 0.0),
        p.get("decay_input", False),
        False,
        p.get("output", "psc"),
    )
    # trailing: the learnable decay per neuron (docs/algorithm.md §12) and snnTorch's reset after the leak (§11)
    decay = None
    if p.get("decay"):
        n = c[0].numel()
        acc = torch.float64 if c.dtype == torch.float64 else torch.float32
        decay = torch.linspace(0.1, 0.95, n, dtype=acc, device=c.device)
    trail = (decay, p.get("reset_mechanism"))
    if name == "forward":
        return OPS.lif_forward(c, *t, *trail)
    if name == "na":
        out = OPS.na_backward(g, c, *t, p["first_order"], p["dist_power"], p["clip"], p.get("na_window"), *trail)
    elif name == "stbp":
        out = OPS.stbp_backward(g, c, *t, p["surrogate"], p["alpha"], p["detach_reset"], *trail)
    elif name == "tssl":
        out = OPS.tssl_backward(g, c, *t, *trail)
    else:
        raise ValueError(name)
    # (grad_c, dL/dlam): both compared, as one tensor (dL/dlam appended as one more time step's worth of values)
    return out[0] if decay is None else torch.cat([out[0].reshape(-1), out[1].to(out[0].dtype)])


def cases(quick: bool):
    yield "forward", {"output": "psc"}
    yield "forward", {"output": "spike"}
    for output, fo, k in itertools.product(["psc", "spike"], ["paper", "taylor"], [1, 3]):
        if quick and (fo == "taylor" or k == 3):
            continue
        yield "na", {"output": output, "first_order": fo, "dist_power": k, "clip": 2.0}
    for output, sur, det in itertools.product(["psc", "spike"], ["rect", "triangle", "sigmoid"], [False, True]):
        if quick and (sur != "sigmoid" or det):
            continue
        yield "stbp", {"output": output, "surrogate": sur, "alpha": 1.0, "detach_reset": det}
    yield "tssl", {}
    # the neuron options (docs/algorithm.md §9): soft reset, hard reset to v_reset != 0 with decay_input
    for opts in ({"v_reset": None}, {"v_reset": -0.3, "decay_input": True}):
        yield "forward", {"output": "psc", **opts}
        yield "na", {"output": "psc", "first_order": "paper", "dist_power": 3, "clip": 2.0, **opts}
        yield "stbp", {"output": "spike", "surrogate": "atan", "alpha": 2.0, "detach_reset": False, **opts}
    yield "tssl", {"v_reset": -0.3, "decay_input": True}
    # snnTorch's resets after the leak and the learnable decay (issue 17)
    for opts in ({"v_reset": None, "reset_mechanism": "subtract"}, {"v_reset": None, "reset_mechanism": "none"}):
        yield "forward", {"output": "spike", **opts}
        yield "na", {"output": "spike", "first_order": "paper", "dist_power": 3, "clip": 2.0, **opts}
        yield "stbp", {"output": "psc", "surrogate": "atan", "alpha": 2.0, "detach_reset": True, **opts}
    for opts in ({"decay": True}, {"decay": True, "decay_input": True, "v_reset": None, "reset_mechanism": "subtract"}):
        yield "forward", {"output": "psc", **opts}
        yield "na", {"output": "psc", "first_order": "paper", "dist_power": 3, "clip": 2.0, **opts}
        yield "stbp", {"output": "spike", "surrogate": "atan", "alpha": 2.0, "detach_reset": True, **opts}
    yield "tssl", {"decay": True, "decay_input": True}


def compare(label: str, got: torch.Tensor, ref: torch.Tensor, dtype: torch.dtype) -> bool:
    got64, ref64 = got.double().cpu(), ref.double()
    atol, rtol = TOL[dtype]
    bad = ~torch.isclose(got64, ref64, rtol=rtol, atol=atol, equal_nan=True)
    finite = torch.isfinite(ref64) & torch.isfinite(got64)
    err = (got64 - ref64).abs()
    nbad, n = int(bad.sum()), bad.numel()
    ok = nbad <= MAX_BAD_FRACTION[dtype] * n and got.shape == ref.shape and got.dtype == ref.dtype
    worst = float(err[finite].max()) if finite.any() else 0.0
    COUNTS[ok] += 1
    tally = EXACT.setdefault(label.split()[0].rstrip(","), [0, 0])
    tally[0] += int(got.shape == ref.shape and torch.equal(got.cpu(), ref))
    tally[1] += 1
    if VERBOSE or not ok:
        print(f"  {'ok  ' if ok else 'FAIL'} {label:<70} bad {nbad}/{n}  max|err| {worst:.3g}")
    if not ok:
        idx = bad.nonzero()[:5].tolist()
        for i in idx:
            print(f"       at {i}: cuda {got64[tuple(i)].item():.9g} cpu {ref64[tuple(i)].item():.9g}")
    return ok


def check_all(quick: bool) -> bool:
    torch.manual_seed(0)
    ok = True
    shapes = [(1, 1), (2, 3, 5), (8, 1000), (16, 4, 33, 7)] if not quick else [(5, 300)]
    for shape, dtype in itertools.product(shapes, DTYPES if not quick else [torch.float32, torch.float16]):
        c = (torch.randn(shape, dtype=torch.float64) * 0.8 + 0.35).to(dtype)
        g = torch.randn(shape, dtype=torch.float64).to(dtype)
        cd, gd = c.to(DEV), g.to(DEV)
        for name, p in cases(quick):
            ref = run_op(name, c, g, p)
            got = run_op(name, cd, gd, p)
            again = run_op(name, cd, gd, p)
            label = f"{name} {p} {tuple(shape)} {str(dtype)[6:]}"
            ok &= compare(label, got, ref, dtype)
            if not torch.equal(got, again):
                print(f"  FAIL {label}: two CUDA runs differ (kernels must be deterministic)")
                ok = False
    if quick:
        return ok
    # Non-contiguous input, empty N, a side stream.
    c = torch.randn(6, 40, 30, dtype=torch.float32) * 0.8 + 0.35
    g = torch.randn(6, 40, 30)
    p = {"output": "psc", "first_order": "paper", "dist_power": 1, "clip": 1.0}
    ct, gt = c.transpose(1, 2), g.transpose(1, 2)
    ok &= compare(
        "na, non-contiguous (transposed) input",
        run_op("na", ct.to(DEV), gt.to(DEV), p),
        run_op("na", ct, gt, p),
        torch.float32,
    )
    e = torch.empty(4, 0, 3, device=DEV)
    for name, pp in [("forward", {"output": "psc"}), ("na", p), ("tssl", {})]:
        out = run_op(name, e, e, pp)
        if out.shape != e.shape:
            print(f"  FAIL empty N: {name} returned shape {tuple(out.shape)}")
            ok = False
    if DEV == "cuda":
        s = torch.cuda.Stream()
        with torch.cuda.stream(s):
            got = run_op("na", c.to(DEV), g.to(DEV), p)
        s.synchronize()
        ok &= compare("na on a side stream", got, run_op("na", c, g, p), torch.float32)
    return ok


def check_large() -> bool:
    """T * N > 2^31 elements: int64 indexing in the kernels (float16, forward + NA backward)."""
    T, N = 4, (1 << 29) + 4099
    print(f"  large: T={T} N={N} T*N={T * N} (> 2^31 = {1 << 31}), float16")
    torch.manual_seed(1)
    try:
        c = torch.empty(T, N, dtype=torch.float16, device="cuda").normal_(0.35, 0.8)
        g = torch.empty(T, N, dtype=torch.float16, device="cuda").normal_()
        p = {"output": "psc", "first_order": "paper", "dist_power": 1, "clip": 2.0}
        ok = True
        for name in ["forward", "na"]:
            out = run_op(name, c, g, p)
            for sl in [slice(0, 2048), slice(N - 2048, N)]:
                ref = run_op(name, c[:, sl].cpu(), g[:, sl].cpu(), p)
                ok &= compare(f"large {name} columns {sl.start}..{sl.stop}", out[:, sl], ref, torch.float16)
            del out
        return ok
    except torch.cuda.OutOfMemoryError as exc:
        print(f"  skipped large: {exc}")
        return True
    finally:
        torch.cuda.empty_cache()


def bench() -> None:
    T, N = 8, 1 << 22
    print(f"  bench: T={T} N={N} ({torch.cuda.get_device_name()})")
    for dtype in [torch.float32, torch.float16]:
        c = torch.empty(T, N, dtype=dtype, device="cuda").normal_(0.35, 0.8)
        g = torch.empty(T, N, dtype=dtype, device="cuda").normal_()
        for name, p in [
            ("forward", {"output": "psc"}),
            ("na", {"output": "psc", "first_order": "paper", "dist_power": 1, "clip": 1.0}),
            ("stbp", {"output": "psc", "surrogate": "sigmoid", "alpha": 4.0, "detach_reset": False}),
            ("tssl", {}),
        ]:
            for _ in range(3):
                run_op(name, c, g, p)
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            reps = 20
            start.record()
            for _ in range(reps):
                run_op(name, c, g, p)
            end.record()
            end.synchronize()
            ms = start.elapsed_time(end) / reps
            # Minimal traffic: forward reads c, writes out; a backward reads c and g, writes grad.
            nbytes = T * N * c.element_size() * (2 if name == "forward" else 3)
            print(f"    {name:<8} {str(dtype)[6:]:<8} {ms * 1e3:9.1f} us  {nbytes / ms / 1e6:8.1f} GB/s (min traffic)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--large", action="store_true")
    ap.add_argument("--bench", action="store_true")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--verbose", action="store_true", help="print every comparison, not only failures")
    ap.add_argument("--device", default="cuda", help=argparse.SUPPRESS)
    args = ap.parse_args()
    global DEV, VERBOSE
    DEV, VERBOSE = args.device, args.verbose
    info = na_cuda.backends()
    print("backends:", info)
    if DEV == "cuda" and (not torch.cuda.is_available() or not info.get("cuda")):
        print("gpu_smoke: FAILED: no CUDA device or na_cuda built without CUDA kernels")
        return 1
    t0 = time.time()
    ok = check_all(args.quick)
    if args.large:
        ok &= check_large()
    if DEV == "cuda":
        torch.cuda.synchronize()
    if args.bench and DEV == "cuda":
        bench()
    print(
        "gpu_smoke: bit-identical to the CPU kernels: "
        + ", ".join(f"{op} {n}/{total}" for op, (n, total) in EXACT.items())
    )
    print(
        f"gpu_smoke: {'ok' if ok else 'FAILED'}: {COUNTS[True]} comparisons passed, {COUNTS[False]} failed "
        f"({time.time() - t0:.1f} s)"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
