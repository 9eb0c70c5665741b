"""The figure (the paper's figure 5 layout).

Part of the MP-distance experiment (``na_cuda.experiments.mp_dist``; see its docstring). See docs/results.md."""

from __future__ import annotations

import torch

from .constants import PAPER_RANK1


# ----------------------------------------------------------------------------------------------------------------
# Figure.
# ----------------------------------------------------------------------------------------------------------------
def plot(result: dict, path: str) -> None:
    """Figure 5 of the paper: (a) transfer matrix, (b) CDF of the destination's rank (MP-dist vs Hamming), and the
    transfers by (c) Hamming distance and (d) MP-dist."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    cfg, s = result["config"], result["summary"]
    T = cfg["T"]
    P = 2**T
    mat = torch.zeros(P, P)
    for a, b, n in result["transfer_counts"]:
        mat[a, b] = n
    fig, axes = plt.subplots(2, 2, figsize=(15, 13))
    ax = axes[0, 0]
    shown = mat.masked_fill(mat == 0, float("nan")).numpy()
    im = ax.imshow(
        shown,
        cmap="viridis",
        norm=LogNorm(vmin=1, vmax=max(float(mat.max()), 2.0)),
        interpolation="nearest",
        origin="upper",
    )
    fig.colorbar(im, ax=ax, fraction=0.046, label="transfers (log scale)")
    ax.set(
        xlabel="spike train after the iteration (code)",
        ylabel="spike train before (code)",
        title=f"(a) transfer counts, diagonal set to 0 ({s['transfers_changed']:,} changed trains)",
    )
    ax = axes[0, 1]
    ranks = range(1, P)
    ax.plot(
        ranks,
        result["mp_rank_cdf"],
        color="tab:red",
        label=f"MP-dist (rank 1: {s['frac_mp_rank1']:.1%})" if s["frac_mp_rank1"] is not None else "MP-dist",
    )
    ax.plot(
        ranks,
        result["hamming_rank_cdf"],
        color="tab:blue",
        label="Hamming, ties at random"
        + (
            f" (rank 1: {s['sample_frac_hamming1'] / T:.1%}, distance 1: {s['sample_frac_hamming1']:.1%})"
            if s["sample_frac_hamming1"] is not None
            else ""
        ),
    )
    ax.axhline(PAPER_RANK1, color="gray", ls=":", label=f"paper: {PAPER_RANK1:.0%} at MP rank 1")
    ax.set_xscale("log")
    ax.set(
        xlim=(1, P - 1),
        ylim=(0, 1.02),
        xlabel=f"rank of the destination among the {P - 1} other patterns",
        ylabel="cumulative fraction of changed trains",
        title=f"(b) CDF of the destination's distance rank ({s['sampled_changed']:,} sampled trains)",
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax = axes[1, 0]
    ham = result["hamming_counts"]
    ax.bar(range(1, T + 1), ham[1:], color="tab:blue")
    ax.set_yscale("log")
    ax.set(
        xlabel="Hamming distance between the trains before and after",
        ylabel="transfers",
        title="(c) changed trains by Hamming distance (all)",
        xticks=range(1, T + 1),
    )
    ax = axes[1, 1]
    h = result["mp_dist_hist"]
    edges = h["log10_edges"]
    centers = [10 ** ((a + b) / 2) for a, b in zip(edges[:-1], edges[1:])]
    widths = [10**b - 10**a for a, b in zip(edges[:-1], edges[1:])]
    ax.bar(centers, h["counts"][1:-1], width=widths, color="tab:red")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set(
        xlabel="MP-dist from u before the step to the destination's key neighbour",
        ylabel="transfers",
        title="(d) sampled changed trains by MP-dist",
    )
    fig.suptitle(
        f"MP-dist quality (NA paper sec. 4.1, Fig. 5): {cfg['arch']}, TSSL-BP, T = {T}, "
        f"{cfg['iterations']} iterations x batch {cfg['batch_size']}, lr {cfg['lr']:g}, {cfg['dataset']}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
