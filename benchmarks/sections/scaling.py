"""Section 5 of the suite: the T sweep at two firing rates (issue 23), where NA's neighbour runs set its cost.

For T in plan["scaling_Ts"] (5 ... 500) and firing rates plan["scaling_rates"] (3 % and 15 %: inputs drawn for
that rate of the paper's neuron, sections/common.py rate_inputs) on N neurons, float32, times interleaved per
(T, rate): `na_cuda.lif` forward+backward (autograd, upstream gradient given) for NA, STBP and TSSL-BP native, and
spikingjelly's multi-step LIFNode (its torch code on the CPU, its own selection on a GPU; sections/peer.py) with
the same neuron; and each backward kernel alone (torch.ops.na_cuda.*_backward, no autograd), so on a GPU the
cost of warp divergence (the longest neighbour run of a warp sets its time) shows as the gap between the rates.
Reports min and median per variant, ratios to STBP per repeat (then summarised) and ns per neuron-step.
"""

from __future__ import annotations

from typing import Callable

import torch
from bench_kernels import op_fn

import na_cuda

from _timing import ratio_stats, summarise
from sections.common import METHODS, rate_inputs, spread_entries, time_variants


def _fwd_bwd(c: torch.Tensor, grad: torch.Tensor, method: str) -> Callable[[], None]:
    def f() -> None:
        x = c.detach().requires_grad_(True)
        na_cuda.lif(x, method=method, backend="native").backward(grad)

    return f


def _peer(c: torch.Tensor, grad: torch.Tensor, device: str) -> tuple[Callable[[], None] | None, str]:
    """spikingjelly's LIFNode forward+backward on c, or (None, why not)."""
    try:
        from sections.peer import TAU_M, SpikingJellyLIF

        sj = SpikingJellyLIF(device, TAU_M, detach_reset=True)
    except Exception as exc:  # noqa: BLE001  (any import or setup failure: reported, the rest still runs)
        return None, f"spikingjelly not usable: {type(exc).__name__}: {exc}"

    def f() -> None:
        x = c.detach().requires_grad_(True)
        sj(x).backward(grad)

    return f, f"spikingjelly {sj.version} LIFNode ({sj.backend})"


def bench_scaling(plan: dict, device: str) -> dict:
    """The section's result: one row per (T, rate, variant), the peer's description, `timed` spreads."""
    N = plan["scaling_N"]
    rows: list[dict] = []
    timed: list[dict] = []
    peer_info = ""
    for T in plan["scaling_Ts"]:
        for rate in plan["scaling_rates"]:
            c, grad = rate_inputs(T, N, rate, seed=T, device=device)
            with torch.no_grad():
                measured = na_cuda.lif(c, output="spike", backend="native").float().mean().item()
            fns: dict[str, Callable[[], object]] = {}
            for m in METHODS:
                fns[f"{m} fwd_bwd"] = _fwd_bwd(c, grad, m)
                fns[f"{m} kernel"] = op_fn(m, c, grad)
            peer, peer_info = _peer(c, grad, device)
            if peer is not None:
                fns["spikingjelly fwd_bwd"] = peer
            samples, failed = time_variants(fns, device, plan["scaling_repeats"], plan["slow_repeats"], plan["slot_s"])
            timed += spread_entries(samples)
            for name, xs in samples.items():
                variant, kind = name.split(" ")
                ref = samples.get(f"stbp {kind}") or samples.get("stbp fwd_bwd")
                s = summarise(xs)
                rows.append(
                    dict(
                        T=T,
                        rate=rate,
                        measured_rate=measured,
                        N=N,
                        variant=variant,
                        kind=kind,
                        stats=s,
                        ns_per_neuron_step_min=s["min"] / (T * N) * 1e9,
                        vs_stbp=ratio_stats(xs, ref) if ref else None,
                    )
                )
            for name, why in failed.items():
                rows.append(dict(T=T, rate=rate, N=N, variant=name, skipped=why))
            na_r = next(r for r in rows if r["T"] == T and r["rate"] == rate and r.get("variant") == "na")
            print(
                f"  T={T:4d} rate {measured:.3f}: NA/STBP fwd+bwd {na_r['vs_stbp']['median']:.2f} "
                f"(min ratio {na_r['vs_stbp']['min']:.2f})",
                flush=True,
            )
            del c, grad
    return dict(
        N=N,
        rows=rows,
        peer=peer_info,
        timed=timed,
        note="float32; inputs drawn for each firing rate (c = a U[0, 1), a set by bisection); times interleaved "
        "per (T, rate); vs_stbp: per-repeat ratios to STBP of the same kind (fwd_bwd: na_cuda.lif forward+"
        "backward; kernel: the backward op alone), summarised; spikingjelly's ratio is to STBP's fwd_bwd",
    )


def table(res: dict) -> list[str]:
    """The issue-23 table: T x (NA/STBP at each rate, TSSL-BP/STBP, spikingjelly/STBP, STBP ns per neuron-step),
    forward+backward medians of per-repeat ratios; then the backward kernels alone."""
    rows = [r for r in res["rows"] if "stats" in r]
    rates = sorted({r["rate"] for r in rows})
    Ts = sorted({r["T"] for r in rows})

    def get(T: int, rate: float, variant: str, kind: str = "fwd_bwd") -> dict | None:
        return next((r for r in rows if (r["T"], r["rate"], r["variant"], r["kind"]) == (T, rate, variant, kind)), None)

    def ratio(r: dict | None) -> str:
        return "-" if r is None or r["vs_stbp"] is None else f"{r['vs_stbp']['median']:.2f}"

    out = []
    for kind, title in (("fwd_bwd", "na_cuda.lif forward+backward"), ("kernel", "backward kernel alone")):
        head = [f"NA / STBP {100 * p:g} %" for p in rates] + [f"TSSL-BP / STBP {100 * p:g} %" for p in rates]
        if kind == "fwd_bwd":
            head += [f"spikingjelly / STBP {100 * p:g} %" for p in rates]
        head += [f"STBP ns / neuron-step {100 * p:g} % (min)" for p in rates]
        out.append(f"\n{title}:\n")
        out.append("| T | " + " | ".join(head) + " |")
        out.append("|---" * (len(head) + 1) + "|")
        for T in Ts:
            cells = [ratio(get(T, p, "na", kind)) for p in rates] + [ratio(get(T, p, "tssl", kind)) for p in rates]
            if kind == "fwd_bwd":
                cells += [ratio(get(T, p, "spikingjelly")) for p in rates]
            for p in rates:
                r = get(T, p, "stbp", kind)
                cells.append("-" if r is None else f"{r['ns_per_neuron_step_min']:.2f}")
            out.append(f"| {T} | " + " | ".join(cells) + " |")
    return out


def plot(res: dict, path: str, plt, tag: str = "") -> None:  # noqa: ANN001  (matplotlib.pyplot)
    """scaling.png: time relative to STBP against T (left: forward+backward, right: backward kernel alone), one
    line per method and firing rate, the per-repeat IQR as error bars."""
    rows = [r for r in res["rows"] if "stats" in r and r["vs_stbp"] is not None and r["variant"] != "stbp"]
    if not rows:
        return
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    styles = {"na": "C0", "tssl": "C1", "spikingjelly": "C2"}
    for ax, kind in zip(axes, ("fwd_bwd", "kernel")):
        for variant, color in styles.items():
            for rate, ls in zip(sorted({r["rate"] for r in rows}), ("-", "--")):
                pts = sorted(
                    (r["T"], r["vs_stbp"])
                    for r in rows
                    if (r["variant"], r["kind"], r["rate"]) == (variant, kind, rate)
                )
                if not pts:
                    continue
                med = [p[1]["median"] for p in pts]
                err = [[m - p[1]["q1"] for m, p in zip(med, pts)], [p[1]["q3"] - m for m, p in zip(med, pts)]]
                ax.errorbar(
                    [p[0] for p in pts],
                    med,
                    yerr=err,
                    ls=ls,
                    marker="o",
                    ms=3,
                    color=color,
                    capsize=2,
                    label=f"{variant} {100 * rate:g} %",
                )
        ax.axhline(1.0, color="gray", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("T (time steps)")
        ax.set_title("na_cuda.lif forward+backward" if kind == "fwd_bwd" else "backward kernel alone")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("time / STBP (same kind, per-repeat ratio)")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"T sweep at two firing rates, N = {res['N']}{tag}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
