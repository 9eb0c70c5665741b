"""Names and helpers shared by the benchmark sections."""

from __future__ import annotations

import gc
from typing import Any, Callable, Mapping, Optional

import torch

from _timing import interleaved, measure, summarise

METHODS = ("na", "stbp", "tssl")
BACKENDS = ("native", "torch")
METHOD_LABEL = {"na": "NA", "stbp": "STBP", "tssl": "TSSL-BP"}
SLOW_CALL_S = 1.0  # a call slower than this (the reference) takes part in the first slow_repeats repeats only


def dtype_of(name: str) -> torch.dtype:
    """torch.float32 for "float32" etc."""
    return getattr(torch, name)


def is_oom(exc: BaseException) -> bool:
    """Whether `exc` is an out-of-memory error (host or device)."""
    kinds = (MemoryError, getattr(torch, "OutOfMemoryError", None), getattr(torch.cuda, "OutOfMemoryError", None))
    return isinstance(exc, tuple(k for k in kinds if k is not None)) or "out of memory" in str(exc).lower()


def free(device: str) -> None:
    """Release what a failed (out-of-memory) call left behind."""
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()


def find(rows: list[dict], **kv: Any) -> Optional[dict]:
    """The first row whose fields equal `kv`."""
    return next((r for r in rows if all(r.get(k) == v for k, v in kv.items())), None)


def time_variants(
    fns: Mapping[str, Callable[[], object]], device: str, repeats: int, slow_repeats: int, slot_s: float
) -> tuple[dict[str, list[float]], dict[str, str]]:
    """`interleaved` timing of `fns` (`repeats`, `slow_repeats` for calls over SLOW_CALL_S), leaving out
    variants that run out of memory (probed one call each first; the probe is also their first warm-up).
    Returns (samples, {variant: why left out})."""
    ok: dict[str, Callable[[], object]] = {}
    first: dict[str, float] = {}
    failed: dict[str, str] = {}
    for name, fn in fns.items():
        reason = None
        try:
            first[name] = measure(fn, device, name)
        except Exception as exc:  # noqa: BLE001  (only out-of-memory is skipped; the rest is re-raised)
            if not is_oom(exc):
                raise
            reason = f"out of memory ({type(exc).__name__})"
        if reason is not None:  # outside the except block: the traceback's tensors are released
            failed[name] = reason
            print(f"  skip {name}: {reason}", flush=True)
            free(device)
        else:
            ok[name] = fn
    samples = interleaved(
        ok, device, repeats, slot_s, warmup=2, slow_s=SLOW_CALL_S, slow_repeats=slow_repeats, first_s=first
    )
    return samples, failed


def spread_entries(samples: dict[str, list[float]]) -> list[dict]:
    """The `timed` list of a section: each variant's sample count and relative IQR (read by the noise check)."""
    out = []
    for name, xs in samples.items():
        s = summarise(xs)
        out.append(dict(variant=name, n=s["n"], rel_iqr=s["rel_iqr"]))
    return out


def rate_level(rate: float, T: int, n: int = 4096) -> float:
    """The level `a` for which inputs c = a * U[0, 1) make the paper's neuron (tau_m = 5, threshold 1, hard reset
    to 0, starting at rest) fire at `rate` (spikes per neuron-step) over a window of T steps (short windows need
    more drive: the first spike takes a few steps from rest), found by bisection on the native forward (n neurons,
    a fixed seed). Used to draw inputs "for a firing rate" (the scaling section, na_run_lengths.py)."""
    import na_cuda

    u = torch.rand(T, n, generator=torch.Generator().manual_seed(0))
    lo, hi = 0.0, 4.0
    for _ in range(25):
        mid = (lo + hi) / 2
        with torch.no_grad():
            r = na_cuda.lif(u * mid, output="spike", backend="native").mean().item()
        lo, hi = (mid, hi) if r < rate else (lo, mid)
    return (lo + hi) / 2


def rate_inputs(
    T: int, N: int, rate: float, seed: int, device: str = "cpu", dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs drawn for a firing rate (rate_level) and a standard-normal upstream gradient, [T, N] each."""
    g = torch.Generator().manual_seed(seed)
    c = torch.rand(T, N, generator=g) * rate_level(rate, T)
    grad = torch.randn(T, N, generator=g)
    return c.to(device=device, dtype=dtype), grad.to(device=device, dtype=dtype)
