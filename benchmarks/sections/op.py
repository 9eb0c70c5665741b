"""Section 1 of the suite: the neuron op, `na_cuda.lif` forward and forward+backward.

For every method (na, stbp, tssl) x backend (native, torch = the pure-PyTorch reference) x T x dtype (float32;
bfloat16 on a GPU, native only) on N neurons, forward and forward+backward (autograd, upstream gradient given)
are timed interleaved per (dtype, T): all of them take turns in every repeat. Reports neuron-steps/s and the
effective bandwidth (forward: 2 tensor passes per neuron-step, read c and write y; forward+backward: 5, adding read
c, read dL/dy, write dL/dc) as a fraction of a device-to-device copy measured in the same run. Ratios (native /
reference speed-up, time / STBP-native) are per repeat, then summarised. The reference is skipped where one call
is predicted (from the previous T's median, scaling as T^2) to take longer than plan["ref_max_s"].
"""

from __future__ import annotations

from typing import Callable

import torch

import na_cuda

from _timing import ratio_stats, summarise
from sections.common import BACKENDS, METHODS, dtype_of, spread_entries, time_variants

PASSES_FWD = 2
PASSES_FWD_BWD = 5


def _calls(c: torch.Tensor, grad: torch.Tensor, kw: dict) -> tuple[Callable[[], object], Callable[[], object]]:
    """Forward alone (no graph) and forward+backward of `na_cuda.lif(c, **kw)` (the public keyword API, so a
    change of the registered ops underneath does not touch the benchmark)."""

    def fwd() -> torch.Tensor:
        with torch.no_grad():
            return na_cuda.lif(c, **kw)

    def fwd_bwd() -> None:
        x = c.detach().requires_grad_(True)
        na_cuda.lif(x, **kw).backward(grad)

    return fwd, fwd_bwd


def _skip_reference(plan: dict, method: str, T: int, last_ref: dict[str, tuple[int, float]]) -> str:
    """Why the reference of `method` at T is not timed ("" when it is): its predicted call time."""
    prev = last_ref.get(method)
    if prev is None:
        return ""
    predicted = prev[1] * (T / prev[0]) ** 2
    if predicted <= plan["ref_max_s"]:
        return ""
    return (
        f"predicted {predicted:.1f} s per forward+backward call (from T={prev[0]}, scaling as T^2) > --ref-max-s "
        f"{plan['ref_max_s']:g} s"
    )


def bench_neuron_op(plan: dict, device: str, copy_bw: dict[str, float]) -> dict:
    """The section's result: rows per (method, backend, dtype, T), skipped variants, `timed` spreads.

    `plan`: N, Ts, dtypes, repeats, slow_repeats, slot_s, ref_max_s. `copy_bw`: bytes/s per dtype name."""
    N = plan["N"]
    rows: list[dict] = []
    skipped: list[dict] = []
    timed: list[dict] = []
    last_ref: dict[str, tuple[int, float]] = {}  # method -> (T, median seconds of one fwd+bwd call), float32
    for dname in plan["dtypes"]:
        dtype = dtype_of(dname)
        for T in plan["Ts"]:
            g = torch.Generator().manual_seed(T)
            c = (torch.rand(T, N, generator=g) * 0.9).to(device=device, dtype=dtype)
            grad = torch.randn(T, N, generator=g).to(device=device, dtype=dtype)
            fns: dict[str, Callable[[], object]] = {}
            for method in METHODS:
                for backend in BACKENDS:
                    if backend == "torch":
                        if dname != "float32":
                            continue  # the reference computes in float32 anyway; timed in float32 only
                        why = _skip_reference(plan, method, T, last_ref)
                        if why:
                            skipped.append(dict(method=method, backend=backend, dtype=dname, T=T, N=N, reason=why))
                            print(f"  skip reference {method} T={T}: {why}", flush=True)
                            continue
                    fwd, fwd_bwd = _calls(c, grad, dict(method=method, backend=backend))
                    fns[f"{method} {backend} {dname} T={T} fwd"] = fwd
                    fns[f"{method} {backend} {dname} T={T} fwd_bwd"] = fwd_bwd
            samples, failed = time_variants(fns, device, plan["repeats"], plan["slow_repeats"], plan["slot_s"])
            skipped += [dict(variant=k, dtype=dname, T=T, N=N, reason=v) for k, v in failed.items()]
            timed += spread_entries(samples)
            steps, esz = N * T, c.element_size()
            for method in METHODS:
                for backend in BACKENDS:
                    key = f"{method} {backend} {dname} T={T}"
                    tf, tfb = samples.get(key + " fwd"), samples.get(key + " fwd_bwd")
                    if not tf or not tfb:
                        continue
                    sf, sfb = summarise(tf), summarise(tfb)
                    t_f, t_fb = sf["median"], sfb["median"]
                    if backend == "torch":
                        last_ref[method] = (T, t_fb)
                    bw_f, bw_fb = PASSES_FWD * steps * esz / t_f, PASSES_FWD_BWD * steps * esz / t_fb
                    row = dict(
                        method=method,
                        backend=backend,
                        dtype=dname,
                        T=T,
                        N=N,
                        fwd_s=t_f,
                        fwd_bwd_s=t_fb,
                        fwd_stats=sf,
                        fwd_bwd_stats=sfb,
                        fwd_steps_per_s=steps / t_f,
                        fwd_bwd_steps_per_s=steps / t_fb,
                        fwd_GBps=bw_f / 1e9,
                        fwd_bwd_GBps=bw_fb / 1e9,
                        fwd_frac_of_copy=bw_f / copy_bw[dname],
                        fwd_bwd_frac_of_copy=bw_fb / copy_bw[dname],
                    )
                    if backend == "native":
                        ref = f"{method} torch float32 T={T}"
                        same = dname == "float32" and ref + " fwd_bwd" in samples
                        fb_speedup = ratio_stats(samples[ref + " fwd_bwd"], tfb) if same else None
                        f_speedup = ratio_stats(samples[ref + " fwd"], tf) if same else None
                        stbp = samples.get(f"stbp native {dname} T={T} fwd_bwd")
                        vs_stbp = ratio_stats(tfb, stbp) if stbp else None
                        row.update(
                            speedup_vs_reference_fwd_bwd=fb_speedup and fb_speedup["median"],
                            speedup_vs_reference_fwd_bwd_stats=fb_speedup,
                            speedup_vs_reference_fwd=f_speedup and f_speedup["median"],
                            time_vs_stbp_native=vs_stbp and vs_stbp["median"],
                            time_vs_stbp_native_stats=vs_stbp,
                        )
                    rows.append(row)
                    print(
                        f"  {method:5s} {backend:6s} {dname:8s} T={T:3d} N={N}: fwd {t_f * 1e3:9.2f} ms  "
                        f"fwd+bwd {t_fb * 1e3:9.2f} ms (IQR {100 * sfb['rel_iqr']:4.1f} %, {sfb['n']} repeats)  "
                        f"{steps / t_fb / 1e9:7.3f} Gstep/s  {100 * bw_fb / copy_bw[dname]:5.1f}% of copy",
                        flush=True,
                    )
            del c, grad
    return dict(
        N=N,
        rows=rows,
        skipped=skipped,
        timed=timed,
        note="times are medians over interleaved repeats (every variant of a (dtype, T) takes a turn in each "
        "repeat; *_stats hold min / quartiles / max); ratios are medians of per-repeat ratios; a "
        "reference call slower than 1 s takes part in the first slow_repeats repeats only; bandwidth "
        "counts 2 (forward) / 5 (forward+backward) tensor passes per neuron-step at the input's "
        "element size",
    )
