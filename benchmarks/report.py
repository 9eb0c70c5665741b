"""The benchmark suite's report writer: DIR/results.json, DIR/RESULTS.md and the plots (neuron_op.png,
fig7_epoch_time.png, memory.png), from the result dict that run.py assembles.

RESULTS.md opens with the noise check's verdict (benchmarks/reliability.py): an unreliable run says so, and why,
before anything else. Times in the tables are medians over interleaved repeats, ratios medians of per-repeat
ratios; the plots draw each median with its interquartile range as an error bar.
"""

from __future__ import annotations

import json
import os
from typing import Optional

from goals import UNRELIABLE
from sections import scaling
from sections.common import METHOD_LABEL, METHODS, find
from sections.e2e import ITERS_PER_EPOCH, PAPER_FIG7


def write_all(res: dict, out: str) -> None:
    """results.json, RESULTS.md and the three plots under `out`."""
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(res, f, indent=1)
    write_markdown(res, os.path.join(out, "RESULTS.md"))
    plot_neuron_op(res, os.path.join(out, "neuron_op.png"))
    plot_fig7(res, os.path.join(out, "fig7_epoch_time.png"))
    plot_memory(res, os.path.join(out, "memory.png"))
    plt = _plt() if res.get("scaling") else None
    if plt is not None:
        scaling.plot(res["scaling"], os.path.join(out, "scaling.png"), plt, _tag(res))


def _ms(s: Optional[float]) -> str:
    if s is None:
        return "-"
    return f"{s * 1e3:.2f}" if s < 0.1 else f"{s * 1e3:.1f}" if s < 10 else f"{s * 1e3:.0f}"


def _x(v: Optional[float], nd: int = 2) -> str:
    return "-" if v is None else f"{v:.{nd}f}x"


def _iqr(stats: Optional[dict]) -> str:
    """A variant's relative IQR across repeats, as a percentage."""
    return "-" if not stats else f"{100 * stats['rel_iqr']:.0f}%"


def reliability_lines(rel: dict) -> list[str]:
    """The verdict at the top of RESULTS.md."""
    if rel["reliable"]:
        sp = rel["checks"]["spread"]
        med = sp.get("median_rel_iqr")
        return [
            f"Noise check passed (load, copy bandwidth at start and end, spread across repeats: median relative "
            f"IQR {'-' if med is None else f'{100 * med:.1f} %'} over {sp['variants']} timed variants); see "
            "`reliability` in results.json.\n"
        ]
    lines = [
        "> **UNRELIABLE RUN: the numbers below were measured on a noisy machine. No goal is scored "
        f'("{UNRELIABLE}"); rerun on a quiet machine.** The noise check failed because:',
        ">",
    ]
    lines += [f"> - {r}" for r in rel["reasons"]]
    lines.append("")
    return lines


def _load(load: dict) -> str:
    def f(v: Optional[float]) -> str:
        return "-" if v is None else f"{v:.2f}"

    return (
        f"{f(load['start_1min'])} / {f(load['end_1min'])} (the run's own share at the end estimated "
        f"{f(load['own_estimate_end'])}){'; injected by the test hook' if load['injected'] else ''}"
    )


def _copy(copy: dict) -> str:
    parts = []
    for dname, c in copy.items():
        ref = c["reference"]
        end = "-" if c["end_GBps"] is None else f"{c['end_GBps']:.1f}"
        parts.append(
            f"{dname}: {c['start_GBps']:.1f} / {end} GB/s ("
            + (f"unloaded reference {ref['GBps']:.1f} GB/s, {ref['how']}" if ref else "no reference")
            + ")"
        )
    return "; ".join(parts)


def _compiled_table(compiled: dict) -> list[str]:
    """RESULTS.md lines of the eager-against-compiled training step (``end_to_end.compiled``)."""
    if not compiled.get("rows"):
        return [f"Eager against torch.compile: not run ({compiled['skipped']}).\n"] if compiled.get("skipped") else []
    L = [
        "Training step eager against `torch.compile` of network + loss (`--compile MODE`), native kernels:\n",
        "| T | method | mode | steps / s | IQR | speed-up vs eager | compile + warm-up s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in compiled["rows"]:
        if "skipped" in r:
            L.append(f"| {r['T']} | {METHOD_LABEL[r['method']]} | {r['mode']} | skipped: {r['skipped']} | | | |")
            continue
        cs = r.get("compile_s")
        L.append(
            f"| {r['T']} | {METHOD_LABEL[r['method']]} | {r['mode']} | {r['steps_per_s']:.1f} | "
            f"{_iqr(r['iter_stats'])} | {_x(r['speedup_vs_eager'])} | {'-' if cs is None else f'{cs:.0f}'} |"
        )
    return L + [""]


def write_markdown(res: dict, path: str) -> None:
    """RESULTS.md: the noise check's verdict, the machine, the goals, one table set per section."""
    meta, plan = res["meta"], res["config"]
    m = meta["machine"]
    L: list[str] = []
    rel = res["reliability"]
    verdict = "" if rel["reliable"] else ": UNRELIABLE RUN"
    L.append(f"# na_cuda benchmarks ({meta['device']}, {plan['mode']} run){verdict}\n")
    L += reliability_lines(rel)
    L.append(
        f"Written by `python benchmarks/run.py{' --quick' if plan['mode'] == 'quick' else ''} --device "
        f"{meta['device']}` on {meta['date']}, {meta['wall_s']:.0f} s. Times are medians of {plan['repeats']} "
        "interleaved repeats (the compared variants take turns in every repeat); ratios are medians of "
        'per-repeat ratios; "IQR" columns give the spread across repeats (interquartile range / median), '
        "drawn as error bars in the plots. Ratios are comparable within this run; absolute times on a shared "
        "VM vary between runs.\n"
    )
    L.append("| machine | |\n| --- | --- |")
    gpu = m.get("gpu")
    comp = m["compilers"]
    for k, v in (
        ("host", f"{m['hostname']} ({m['platform']})"),
        ("CPU", m["cpu_model"]),
        ("cores", f"{m['cpu_count']} logical, torch threads {m['torch_threads']}"),
        ("load average (1 min) at start / end", _load(rel["checks"]["load"])),
        ("GPU", f"{gpu['name']} ({gpu['memory_GiB']} GiB, sm {gpu['capability']})" if gpu else "none"),
        ("python / torch", f"{m['python']} / {m['torch']} (CUDA {m['torch_cuda']})"),
        ("compilers", f"torch built with {comp['torch_built_with']}; c++: {comp['cxx']}; nvcc: {comp['nvcc']}"),
        ("na_cuda.backends()", "`" + json.dumps(meta["backends"]) + "`"),
        ("copy bandwidth at start / end (reference)", _copy(rel["checks"]["copy"])),
    ):
        L.append(f"| {k} | {v} |")
    L.append("")
    L.append("## Goals\n")
    L.append("| goal | measured | |\n| --- | --- | --- |")
    for gl in res["goals"]:
        detail = f" ({gl['detail']})" if gl["detail"] else ""
        L.append(f"| {gl['goal']} | {gl['shown']} | {gl['status']}{detail} |")
    L.append("")

    op = res.get("neuron_op")
    if op and op.get("rows"):
        L.append(f"## 1. Neuron op (`na_cuda.lif`, N = {op['N']}, forward+backward unless noted)\n")
        L.append(
            "Times in ms (median of interleaved repeats). Speed-up = reference / native (per repeat, median). "
            "% copy = effective bandwidth (5 tensor passes per neuron-step) / device copy bandwidth. NA IQR: the "
            "spread of NA-native's forward+backward across repeats.\n"
        )
        for dname in plan["dtypes"]:
            L.append(f"**{dname}**\n")
            L.append(
                "| T | "
                + " | ".join(f"{METHOD_LABEL[mm]} native | {METHOD_LABEL[mm]} ref | speed-up" for mm in METHODS)
                + " | NA / STBP | NA Gstep/s | NA % copy | NA fwd ms | NA IQR |"
            )
            L.append("|---" * (1 + 3 * len(METHODS) + 5) + "|")
            for T in plan["Ts"]:
                cells = [str(T)]
                for mm in METHODS:
                    nat = find(op["rows"], method=mm, backend="native", dtype=dname, T=T)
                    ref = find(op["rows"], method=mm, backend="torch", dtype="float32", T=T)
                    fp32 = dname == "float32"
                    cells += [
                        _ms(nat["fwd_bwd_s"]) if nat else "-",
                        _ms(ref["fwd_bwd_s"]) if ref and fp32 else "skipped" if fp32 else "-",
                        _x(nat.get("speedup_vs_reference_fwd_bwd"), 1) if nat else "-",
                    ]
                na = find(op["rows"], method="na", backend="native", dtype=dname, T=T)
                cells += [
                    _x(na["time_vs_stbp_native"]) if na else "-",
                    f"{na['fwd_bwd_steps_per_s'] / 1e9:.3f}" if na else "-",
                    f"{100 * na['fwd_bwd_frac_of_copy']:.0f}%" if na else "-",
                    _ms(na["fwd_s"]) if na else "-",
                    _iqr(na["fwd_bwd_stats"]) if na else "-",
                ]
                L.append("| " + " | ".join(cells) + " |")
            L.append("")
        if op["skipped"]:
            L.append(
                "Skipped: "
                + "; ".join(
                    f"{s.get('variant') or s['method'] + ' reference'} at T={s['T']} ({s['reason']})"
                    for s in op["skipped"]
                )
                + ".\n"
            )
        L.append("![neuron op](neuron_op.png)\n")

    peer = res.get("peer")
    if peer is not None:
        L.append("## 2. Peer: spikingjelly\n")
        if not peer.get("available"):
            L.append(peer["message"] + "\n")
        else:
            ck = peer["check"]
            L.append(
                f"spikingjelly {peer['version']}, LIFNode implementation `{peer['implementation']}`. Ratios are "
                "time / spikingjelly's forward+backward (< 1: na_cuda faster), all with spike output; "
                "STBP with the sigmoid surrogate (slope 4) and detach_reset=True on both sides.\n"
            )
            L.append(
                f"Check (T={ck['T']}, N={ck['N']}, spike rate {ck['spike_rate']:.3f}): forward spikes differing "
                f"{ck['forward_mismatched_spikes']} (neurons {ck['forward_mismatched_neurons']}); "
                "STBP gradient max "
                f"relative difference {ck['stbp_grad_max_rel_diff_detach_reset']:.2g} (detach_reset) / "
                f"{ck['stbp_grad_max_rel_diff_no_detach_reset']:.2g} (no detach).\n"
            )
            L.append(
                "| dtype | T | spikingjelly ms | NA native ms | NA / sj | NA (psc) / sj | STBP native ms | STBP / sj |"
            )
            L.append("|---|---|---|---|---|---|---|---|")
            for r in peer["rows"]:
                if "spikingjelly_error" in r:
                    L.append(f"| {r['dtype']} | {r['T']} | error: {r['spikingjelly_error']} | | | | | |")
                    continue
                L.append(
                    f"| {r['dtype']} | {r['T']} | {_ms(r['spikingjelly_fwd_bwd_s'])} | "
                    f"{_ms(r['na_native_fwd_bwd_s'])} "
                    f"| {_x(r['na_native_over_spikingjelly'])} | {_x(r['na_native_psc_over_spikingjelly'])} "
                    f"| {_ms(r['stbp_native_fwd_bwd_s'])} | {_x(r['stbp_native_over_spikingjelly'])} |"
                )
            L.append("\nHow the two neurons differ:\n")
            L += [f"- {d}" for d in peer["differences"]]
            L.append("")

    e2e = res.get("end_to_end")
    if e2e and e2e.get("rows"):
        L.append(f"## 3. End to end: MNIST preset network, batch {plan['e2e_batch']}\n")
        L.append(e2e["note"] + "\n")
        L.append(
            "| T | method | backend | ms / iter | IQR | s / epoch (x938) | paper s / epoch (Titan Xp) | / STBP | "
            "speed-up vs ref | forward / backward / optimiser ms | saved MiB | peak MiB |"
        )
        L.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in e2e["rows"]:
            ph = r.get("phases_s")
            pk = r["peak"]["peak_bytes"]
            paper = PAPER_FIG7.get(r["method"], {}).get(r["T"])
            L.append(
                f"| {r['T']} | {METHOD_LABEL[r['method']]} | {r['backend']} | {_ms(r['iter_s_median'])} | "
                f"{_iqr(r['iter_stats'])} | {r['epoch_s']:.1f} | {paper if paper is not None else '-'} | "
                f"{_x(r['time_vs_stbp_same_backend'])} | "
                f"{_x(r['speedup_vs_reference'], 1)} | "
                f"{' / '.join(_ms(ph.get(k)) for k in ('forward', 'backward', 'optimizer')) if ph else '-'} | "
                f"{r['saved_bytes'] / 2**20:.1f} | {'-' if pk is None else f'{pk / 2**20:.1f}'} |"
            )
        L.append(
            "\nBytes saved for backward per layer of the network (MiB; LIF rows also as input-sized tensors, "
            "i.e. / the bytes of the layer's input):\n"
        )
        sel = [r for r in e2e["rows"] if r["T"] == min(plan["e2e_Ts"])]
        layers = list(sel[0]["layer_input_bytes"]) if sel else []
        L.append("| T | method | backend | " + " | ".join(layers) + " |")
        L.append("|---" * (3 + len(layers)) + "|")
        for r in sel:
            cells = []
            for k in layers:
                mib = r["saved_bytes_by_layer"].get(k, 0) / 2**20
                ratio = r["lif_saved_input_sized_tensors"].get(k)
                cells.append(f"{mib:.2f}" + (f" ({ratio:.2f})" if ratio is not None else ""))
            L.append(f"| {r['T']} | {METHOD_LABEL[r['method']]} | {r['backend']} | " + " | ".join(cells) + " |")
        kinds = sorted({r["peak"]["kind"] for r in e2e["rows"]})
        L.append(f"\nPeak memory: {'; '.join(kinds)}.\n")
        L.append("![figure 7](fig7_epoch_time.png)\n")
        L += _compiled_table(e2e.get("compiled") or {})

    mem = res.get("memory")
    if mem and mem.get("rows"):
        L.append("## 4. Bytes saved for backward by one LIF layer\n")
        L.append(mem["note"] + "\n")
        L.append("| method | backend | dtype | T | N | saved bytes | bytes / neuron-step | input-sized tensors |")
        L.append("|---|---|---|---|---|---|---|---|")
        for r in mem["rows"]:
            L.append(
                f"| {r['method']} | {r['backend']} | {r['dtype']} | {r['T']} | {r['N']} | {r['saved_bytes']} | "
                f"{r['bytes_per_neuron_step']:.1f} | {r['input_sized_tensors']:.2f} |"
            )
        L.append("\n![memory](memory.png)\n")
    sc = res.get("scaling")
    if sc and sc.get("rows"):
        L.append("## 5. T sweep at two firing rates\n")
        L.append(f"N = {sc['N']}; {sc['peer']}. {sc['note']}.")
        L += scaling.table(sc)
        L.append("\n![scaling](scaling.png)\n")
    with open(path, "w") as f:
        f.write("\n".join(L))


def _plt():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        return plt
    except ImportError:
        print("matplotlib not installed: no plots (pip install matplotlib)")
        return None


def _tag(res: dict) -> str:
    """The plot title's warning for a run that failed the noise check."""
    rel = res.get("reliability")
    return "" if rel is None or rel["reliable"] else "\nUNRELIABLE RUN (noisy machine, see RESULTS.md)"


def _errorbar(ax, pts: list, style: str, color: str, label: str) -> None:  # noqa: ANN001  (a matplotlib Axes)
    """Median ms per call against T with the interquartile range as an asymmetric error bar."""
    ts = [p[0] for p in pts]
    med = [p[1]["median"] * 1e3 for p in pts]
    lo = [(p[1]["median"] - p[1]["q1"]) * 1e3 for p in pts]
    hi = [(p[1]["q3"] - p[1]["median"]) * 1e3 for p in pts]
    ax.errorbar(ts, med, yerr=[lo, hi], fmt=style, color=color, label=label, capsize=3, ms=4)


def plot_neuron_op(res: dict, path: str) -> None:
    """neuron_op.png: forward and forward+backward time against T per method and backend (fp32)."""
    plt = _plt()
    op = res.get("neuron_op")
    if plt is None or not op or not op.get("rows"):
        return
    rows = [r for r in op["rows"] if r["dtype"] == "float32"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = {"na": "C0", "stbp": "C1", "tssl": "C2"}
    for ax, key, title in ((axes[0], "fwd", "forward"), (axes[1], "fwd_bwd", "forward + backward")):
        for mm in METHODS:
            for backend, style in (("native", "-o"), ("torch", "--s")):
                pts = sorted((r["T"], r[key + "_stats"]) for r in rows if r["method"] == mm and r["backend"] == backend)
                if pts:
                    _errorbar(
                        ax,
                        pts,
                        style,
                        colors[mm],
                        f"{METHOD_LABEL[mm]} {'native' if backend == 'native' else 'reference (torch)'}",
                    )
        peer = res.get("peer") or {}
        if key == "fwd_bwd" and peer.get("available"):
            pts = sorted(
                (r["T"], r["spikingjelly_fwd_bwd_stats"])
                for r in peer["rows"]
                if r["dtype"] == "float32" and "spikingjelly_fwd_bwd_stats" in r
            )
            if pts:
                _errorbar(ax, pts, ":^", "k", "spikingjelly LIFNode (STBP, spike out)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ts = sorted({r["T"] for r in rows})
        ax.set_xticks(ts)
        ax.set_xticklabels([str(t) for t in ts])
        ax.minorticks_off()
        ax.set_xlabel("time steps T")
        ax.set_ylabel("ms per call (median, bars: IQR over repeats)")
        ax.set_title(f"LIF op {title}, N = {op['N']}, fp32, {res['meta']['device']}{_tag(res)}", fontsize=9)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_fig7(res: dict, path: str) -> None:
    """fig7_epoch_time.png: per-epoch time next to the paper's figure 7, absolute and relative to STBP."""
    plt = _plt()
    e2e = res.get("end_to_end")
    if plt is None or not e2e or not e2e.get("rows"):
        return
    import numpy as np

    dev = res["meta"]["device_name"]
    Ts = [5, 10, 20]
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.2))
    width = 0.13
    colors = {"stbp": "C1", "na": "C0", "tssl": "C2"}
    order = ("stbp", "na", "tssl")
    ours = {(r["method"], r["T"]): r["epoch_s"] for r in e2e["rows"] if r["backend"] == "native"}
    iqr = {(r["method"], r["T"]): r["iter_stats"] for r in e2e["rows"] if r["backend"] == "native"}
    for ax, normalise in ((axes[0], False), (axes[1], True)):
        i = 0
        v: Optional[float]
        base: Optional[float]
        for mm in order:
            for src in ("paper", "ours"):
                vals, lo, hi = [], [], []
                for T in Ts:
                    if src == "paper":
                        v, base = float(PAPER_FIG7[mm][T]), float(PAPER_FIG7["stbp"][T])
                    else:
                        v, base = ours.get((mm, T)), ours.get(("stbp", T))
                    scale = 1.0 / base if normalise and base else 1.0
                    missing = v is None or (normalise and base is None)
                    vals.append(np.nan if missing or v is None else v * scale)
                    st = iqr.get((mm, T)) if src == "ours" and not normalise and not missing else None
                    f = ITERS_PER_EPOCH
                    lo.append(0.0 if st is None else (st["median"] - st["q1"]) * f)
                    hi.append(0.0 if st is None else (st["q3"] - st["median"]) * f)
                x = np.arange(len(Ts)) + (i - 2.5) * width
                label = f"{METHOD_LABEL[mm]}, " + ("paper, Titan Xp" if src == "paper" else f"na_cuda, {dev}")
                ax.bar(
                    x,
                    vals,
                    width,
                    color=colors[mm],
                    alpha=0.45 if src == "paper" else 0.95,
                    hatch="//" if src == "paper" else None,
                    edgecolor="k",
                    linewidth=0.5,
                    label=label,
                    yerr=[lo, hi] if any(lo) or any(hi) else None,
                    capsize=2,
                )
                i += 1
        ax.set_xticks(np.arange(len(Ts)))
        ax.set_xticklabels([f"T = {T}" for T in Ts])
        if normalise:
            ax.set_ylabel("time per epoch / STBP's (same source)")
            ax.axhline(1.0, color="k", lw=0.6)
            ax.set_title("relative to STBP")
        else:
            ax.set_ylabel("seconds per epoch (MNIST, 938 iterations of batch 64)")
            ax.set_yscale("log")
            ax.set_title(
                "figure 7 of the NA paper vs na_cuda (native kernels; bars: IQR over repeats)" + _tag(res), fontsize=9
            )
        ax.grid(axis="y", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_memory(res: dict, path: str) -> None:
    """memory.png: bytes saved for backward by one LIF layer (measured, exact: no error bars)."""
    plt = _plt()
    mem = res.get("memory")
    if plt is None or not mem or not mem.get("rows"):
        return
    T = max(r["T"] for r in mem["rows"])
    rows = [r for r in mem["rows"] if r["T"] == T and r["dtype"] == "float32"]
    fig, ax = plt.subplots(figsize=(7.5, 0.35 * len(rows) + 1.4))
    labels = [
        "spikingjelly LIFNode"
        if r["backend"].startswith("spikingjelly")
        else f"{METHOD_LABEL[r['method']]} {'reference' if r['backend'] == 'torch' else r['backend']}"
        for r in rows
    ]
    ax.barh(range(len(rows)), [r["input_sized_tensors"] for r in rows], color="C0")
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(labels, fontsize=8)
    ax.invert_yaxis()
    ax.axvline(1.0, color="k", lw=0.6)
    ax.set_xlabel("input-sized tensors (saved bytes / input bytes, measured)")
    ax.set_title(
        f"bytes saved for backward, one LIF layer, T = {T}, N = {rows[0]['N'] if rows else '-'}, fp32" + _tag(res),
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
