"""The project's performance goals, scored from one run of the suite.

Each goal's value is the median of its per-repeat ratio (interleaved pairs, see _timing.py), shown with the
ratio's interquartile range. Status: "met" / "missed"; "inconclusive" when the target lies inside the ratio's IQR
(the repeats disagree about which side of it the code is on); "not measured"; "not comparable" (the run's sizes
do not fit the goal); and "not scored: unreliable run" for every goal of a run that failed the noise check
(benchmarks/reliability.py): a number measured on a loaded machine is shown, never counted.
"""

from __future__ import annotations

from typing import Any, Optional

from sections.common import find

UNRELIABLE = "not scored: unreliable run"


def evaluate_goals(res: dict, device: str, reliable: bool) -> list[dict]:
    """The goals of `device`'s list, each {"goal", "value", "q1", "q3", "shown", "status", "detail"}."""
    op = res.get("neuron_op") or {}
    oprows = op.get("rows", [])
    e2e = (res.get("end_to_end") or {}).get("rows", [])
    peer = res.get("peer") or {}
    mem = (res.get("memory") or {}).get("rows", [])
    goals: list[dict] = []

    def add(
        name: str,
        stats: Optional[dict],
        target: float,
        higher_is_better: bool,
        fmt: str,
        detail: str = "",
        comparable: bool = True,
    ) -> None:
        value = None if stats is None else stats["median"]
        q1, q3 = (None, None) if stats is None else (stats["q1"], stats["q3"])
        if value is None:
            status = "not measured"
        elif not comparable:
            status = "not comparable"
        elif not reliable:
            status = UNRELIABLE
        elif q1 is not None and q3 is not None and q1 < target < q3:
            status = "inconclusive"
        else:
            status = "met" if (value >= target if higher_is_better else value <= target) else "missed"
        shown = "not measured" if value is None else fmt.format(value)
        if value is not None and q1 is not None and q3 is not None and fmt.format(q1) != fmt.format(q3):
            shown += f" (IQR {fmt.format(q1)}-{fmt.format(q3)})"
        goals.append(dict(goal=name, value=value, q1=q1, q3=q3, shown=shown, status=status, detail=detail))

    def stats(row: Optional[dict], key: str) -> Optional[dict]:
        return row.get(key + "_stats") if row else None

    if device == "cpu":
        for T, target in ((5, 30.0), (20, 100.0)):
            r = find(oprows, method="na", backend="native", dtype="float32", T=T)
            add(
                f"NA-native forward+backward >= {target}x the reference at T={T} (neuron op, N={op.get('N')})",
                stats(r, "speedup_vs_reference_fwd_bwd"),
                target,
                True,
                "{:.1f}x",
            )
        r = find(peer.get("rows", []), dtype="float32", T=5)
        add(
            "NA-native faster than spikingjelly's LIF (STBP, torch) at T=5 (time ratio < 1)",
            stats(r, "na_native_over_spikingjelly"),
            1.0,
            False,
            "{:.2f}x",
            "" if peer.get("available", False) else "spikingjelly not importable",
        )
        r = find(e2e, method="na", backend="native", T=5)
        add(
            "end-to-end MNIST iteration NA-native <= 1.3x STBP-native at T=5",
            stats(r, "time_vs_stbp_same_backend"),
            1.3,
            False,
            "{:.2f}x",
        )
    else:
        for T in (5, 10, 20):
            r = find(oprows, method="na", backend="native", dtype="float32", T=T)
            ok_size = r is not None and r["N"] * T >= 2**24
            add(
                f"NA-native forward+backward >= 70% of copy bandwidth at T={T} (fp32, N*T >= 2^24)",
                _frac_of_copy_stats(r),
                0.7,
                True,
                "{:.0%}",
                "" if ok_size else "N*T < 2^24 in this run",
                comparable=ok_size,
            )
        for T, target in ((5, 1.15), (20, 1.5)):
            r = find(e2e, method="na", backend="native", T=T)
            add(
                f"end-to-end MNIST iteration NA-native <= {target}x STBP-native at T={T}",
                stats(r, "time_vs_stbp_same_backend"),
                target,
                False,
                "{:.2f}x",
            )
        r = find(e2e, method="na", backend="native", T=5)
        add(
            "end-to-end NA-native >= 20x the reference per iteration at T=5",
            stats(r, "speedup_vs_reference"),
            20,
            True,
            "{:.1f}x",
        )
    na_mem = [r["input_sized_tensors"] for r in mem if r["method"] == "na" and r["backend"] == "native"]
    na_mem += [
        v
        for r in e2e
        if r["method"] == "na" and r["backend"] == "native"
        for v in r.get("lif_saved_input_sized_tensors", {}).values()
    ]
    mem_stats = _exact(max(na_mem)) if na_mem else None
    add(
        "saved memory of NA-native <= 1 input-sized tensor per layer",
        mem_stats,
        1.0,
        False,
        "{:.2f}",
        "max over the single-layer measurements and the MNIST network's LIF layers",
    )
    return goals


def _exact(value: float) -> dict[str, Any]:
    """Stats of a measured quantity that does not vary between repeats (bytes saved for backward)."""
    return dict(median=value, q1=value, q3=value)


def _frac_of_copy_stats(row: Optional[dict]) -> Optional[dict]:
    """Forward+backward bandwidth / copy bandwidth of a neuron-op row, with the quartiles of its time (a shorter
    time is a higher fraction, so the time's q3 gives the fraction's q1)."""
    if row is None:
        return None
    st, frac = row["fwd_bwd_stats"], row["fwd_bwd_frac_of_copy"]
    return dict(median=frac, q1=frac * st["median"] / st["q3"], q3=frac * st["median"] / st["q1"])
