"""Single-neuron experiment of the NA paper (Yang, Zhang & Li, ICML 2021, section 4.2, Table 1, Figure 6(b)).

One LIF neuron driven by 200 input spike trains learns a random desired train with the van Rossum loss (eq. 5),
with NA and with STBP from the same start, 500 rounds batched into one tensor program. Run::

    python -m na_cuda.experiments.single_neuron [--out DIR] [--rounds 500] [--iters 200] [--seed 0]

Writes ``DIR/single_neuron.json`` and ``DIR/single_neuron.png``. The setup, the choices the paper leaves open and
the sweeps behind them: docs/results.md, "Single-neuron experiment: method".
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any, Optional

import torch

import na_cuda
from na_cuda.losses import psc, van_rossum

# Table 1 of the paper.
T_STEPS = 30
N_INPUTS = 200
P_IN = 0.05
P_OUT = 0.2
TAU_S = 2.0
TAU_M = 5.0
THRESHOLD = 1.0

PAPER_CLAIM = {"na": 65, "stbp": 147}  # iterations by which all 500 rounds reached the desired pattern (Fig. 6b)
METHODS: dict[str, dict[str, Any]] = {
    "na": dict(method="na", first_order="paper", dist_power=3, clip=10.0),
    "stbp": dict(method="stbp", surrogate="rect"),
}
OPTIMIZERS = ("adam", "sgd")

DEFAULTS: dict[str, Any] = dict(rounds=500, iters=200, seed=0, optimizer="adam", lr=3e-3, init_std=0.03)


def make_problem(rounds: int, seed: int, init_std: float, dtype: torch.dtype = torch.float32) -> dict:
    """Inputs, desired trains and initial weights of `rounds` independent rounds, drawn on the CPU from `seed`
    (the same numbers on every device).

    Returns a dict with ``x`` [T, R, 200] normalised input PSCs, ``target`` [T, R, 1] desired spikes (0/1) and
    ``w0`` [R, 200] initial weights.
    """
    g = torch.Generator().manual_seed(seed)
    spikes = (torch.rand(T_STEPS, rounds, N_INPUTS, generator=g, dtype=torch.float64) < P_IN).to(torch.float64)
    target = (torch.rand(T_STEPS, rounds, 1, generator=g, dtype=torch.float64) < P_OUT).to(dtype)
    w0 = (torch.randn(rounds, N_INPUTS, generator=g, dtype=torch.float64) * init_std).to(dtype)
    a = psc(spikes, TAU_S)  # [T, R, N], first-order kernel of eq. 2
    mean = a.mean(dim=(0, 2), keepdim=True)  # statistics of all PSCs of the round
    std = a.std(dim=(0, 2), keepdim=True).clamp_min(1e-12)
    x = ((a - mean) / std).to(dtype)
    return {"x": x, "target": target, "w0": w0}


def _optimizer(name: str, params: list, lr: float) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}; got {name!r}")


def train(
    method: str,
    problem: dict,
    *,
    iters: int,
    optimizer: str,
    lr: float,
    device: str = "cpu",
    progress: bool = True,
) -> dict:
    """Trains all rounds of `problem` with `method` ("na" or "stbp") for `iters` updates.

    Returns CPU tensors: ``losses`` [iters, R] (loss after k updates, k = 0 .. iters - 1), ``final_losses`` [R]
    (after `iters` updates), ``first_hit`` [R] int64 (first k in 0 .. iters whose output equals the target,
    -1 = never), ``matched`` [iters + 1, R] bool, and ``seconds`` (wall time of the loop).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {tuple(METHODS)}; got {method!r}")
    neuron = dict(tau_m=TAU_M, tau_s=TAU_S, threshold=THRESHOLD, **METHODS[method])
    x = problem["x"].to(device)
    target = problem["target"].to(device)
    w = problem["w0"].clone().to(device).requires_grad_(True)
    R = w.shape[0]
    opt = _optimizer(optimizer, [w], lr)
    target_psc = psc(target, TAU_S)

    losses = torch.empty(iters, R, dtype=x.dtype, device=device)
    matched = torch.empty(iters + 1, R, dtype=torch.bool, device=device)
    first_hit = torch.full((R,), -1, dtype=torch.int64, device=device)

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=iters, desc=f"{method:>4}", unit="it", leave=True)
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for k in range(iters + 1):
        c = torch.einsum("tri,ri->tr", x, w).unsqueeze(-1)  # [T, R, 1]: one neuron per round
        out = na_cuda.lif(c, output="psc", **neuron)
        with torch.no_grad():
            per_round = 0.5 * (target_psc - out).pow(2).sum(dim=(0, 2))  # eq. 5 per round, [R]
            spikes = na_cuda.lif(c, output="spike", **neuron)  # the same forward, as spikes
            hit = (spikes == target).all(dim=2).all(dim=0)
            matched[k] = hit
            first_hit = torch.where(hit & (first_hit < 0), torch.full_like(first_hit, k), first_hit)
        if k == iters:  # the loss after all `iters` updates: evaluated, not trained on
            break
        losses[k] = per_round
        loss = van_rossum(out, target, TAU_S, reduction="sum")  # sum over rounds: each round's own gradient
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if bar is not None:
            bar.update(1)
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    final_losses = per_round
    if bar is not None:
        bar.close()
    return {
        "losses": losses.cpu(),
        "final_losses": final_losses.cpu(),
        "first_hit": first_hit.cpu(),
        "matched": matched.cpu(),
        "seconds": seconds,
    }


def summarize(res: dict, iters: int) -> dict:
    """The JSON summary of one method's `train` result."""
    losses = res["losses"].double()
    hit = res["first_hit"]
    ok = hit >= 0
    R = hit.numel()
    return {
        "loss_mean": losses.mean(dim=1).tolist(),
        "loss_std": losses.std(dim=1, correction=0).tolist(),
        "final_loss_mean": float(res["final_losses"].double().mean()),
        "final_loss_std": float(res["final_losses"].double().std(correction=0)),
        "frac_hit_by_65": float(((hit >= 0) & (hit <= 65)).double().mean()),
        "frac_hit_by_200": float(((hit >= 0) & (hit <= 200)).double().mean()),
        "frac_hit_by_end": float(ok.double().mean()),
        "mean_first_hit": float(hit[ok].double().mean()) if bool(ok.any()) else None,
        "median_first_hit": float(hit[ok].double().median()) if bool(ok.any()) else None,
        "all_hit_iteration": int(hit.max()) if bool(ok.all()) else None,
        "frac_matched_at_end": float(res["matched"][-1].double().mean()),
        "frac_matched": res["matched"].double().mean(dim=1).tolist(),
        "frac_hit_cumulative": [float(((hit >= 0) & (hit <= k)).double().sum() / R) for k in range(iters + 1)],
        "first_hit": hit.tolist(),
        "elapsed_s": res["seconds"],
    }


def plot(summary: dict, path: str) -> None:
    """Figure 6(b) (mean +- std loss per iteration, both methods) and the cumulative fraction of rounds that
    reached the desired train."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"na": "tab:red", "stbp": "tab:blue"}
    labels = {"na": "NA", "stbp": "STBP"}
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for m, s in summary["methods"].items():
        mean = torch.tensor(s["loss_mean"])
        std = torch.tensor(s["loss_std"])
        it = torch.arange(mean.numel())
        ax.plot(it, mean, color=colors.get(m), label=labels.get(m, m))
        ax.fill_between(it, (mean - std).clamp_min(0), mean + std, color=colors.get(m), alpha=0.2)
        cum = s["frac_hit_cumulative"]
        ax2.plot(range(len(cum)), cum, color=colors.get(m), label=labels.get(m, m))
    cfg = summary["config"]
    ax.set_xlabel("iteration")
    ax.set_ylabel("van Rossum loss (eq. 5)")
    ax.set_title(f"(b) loss, mean $\\pm$ std over {cfg['rounds']} rounds")
    ax.legend()
    ax2.set_xlabel("iteration")
    ax2.set_ylabel("fraction of rounds")
    ax2.set_title("output == desired spike train (first hit, cumulative)")
    for m, k in PAPER_CLAIM.items():
        ax2.axvline(k, color=colors[m], ls=":", lw=1, label=f"paper: all {labels[m]} rounds by {k}")
    ax2.set_ylim(0, 1.02)
    ax2.legend(loc="lower right")
    fig.suptitle(f"Single-neuron network (NA paper 4.2): {cfg['optimizer']} lr={cfg['lr']}, init_std={cfg['init_std']}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_experiment(
    out: Optional[str] = "runs/single_neuron",
    *,
    rounds: int = DEFAULTS["rounds"],
    iters: int = DEFAULTS["iters"],
    seed: int = DEFAULTS["seed"],
    optimizer: str = DEFAULTS["optimizer"],
    lr: float = DEFAULTS["lr"],
    init_std: float = DEFAULTS["init_std"],
    device: str = "cpu",
    progress: bool = True,
    plot_figure: bool = True,
) -> dict:
    """Runs NA and STBP on the same problem; writes ``out/single_neuron.json`` (and ``.png``) when `out` is
    given; returns the summary dict written to the JSON."""
    if rounds < 1 or iters < 1:
        raise ValueError(f"rounds and iters must be >= 1; got {rounds}, {iters}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}; got {optimizer!r}")
    if not lr > 0 or not init_std > 0:
        raise ValueError(f"lr and init_std must be > 0; got {lr}, {init_std}")
    problem = make_problem(rounds, seed, init_std)
    with torch.no_grad():
        c0 = torch.einsum("tri,ri->tr", problem["x"], problem["w0"]).unsqueeze(-1)
        s0 = na_cuda.lif(c0, tau_m=TAU_M, tau_s=TAU_S, threshold=THRESHOLD, output="spike")
    config = {
        "T": T_STEPS,
        "inputs": N_INPUTS,
        "p_in": P_IN,
        "p_out": P_OUT,
        "tau_s": TAU_S,
        "tau_m": TAU_M,
        "threshold": THRESHOLD,
        "rounds": rounds,
        "iters": iters,
        "seed": seed,
        "optimizer": optimizer,
        "lr": lr,
        "init_std": init_std,
        "device": device,
        "dtype": "float32",
        "torch": torch.__version__,
        "backend": na_cuda.backends()["auto"].get(torch.device(device).type),
        "methods": {m: {k: v for k, v in p.items()} for m, p in METHODS.items()},
        "init_mean_spikes": float(s0.sum(dim=0).mean()),
        "init_frac_silent": float((s0.sum(dim=0) == 0).double().mean()),
        "target_mean_spikes": float(problem["target"].sum(dim=0).mean()),
        "paper_all_hit_iteration": PAPER_CLAIM,
    }
    summary: dict[str, Any] = {"config": config, "methods": {}}
    for m in METHODS:
        res = train(m, problem, iters=iters, optimizer=optimizer, lr=lr, device=device, progress=progress)
        summary["methods"][m] = summarize(res, iters)
    if out is not None:
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "single_neuron.json"), "w") as f:
            json.dump(summary, f)
        if plot_figure:
            plot(summary, os.path.join(out, "single_neuron.png"))
    return summary


def format_summary(summary: dict) -> str:
    """A side-by-side table of both methods next to the paper's claim."""
    cfg = summary["config"]
    rows = [
        ("rounds reaching the desired train by iter 65", "frac_hit_by_65", "{:.1%}"),
        ("... by iter 200", "frac_hit_by_200", "{:.1%}"),
        ("mean first-hit iteration (rounds that hit)", "mean_first_hit", "{:.1f}"),
        ("iteration by which ALL rounds had hit", "all_hit_iteration", "{}"),
        ("rounds matching at the end", "frac_matched_at_end", "{:.1%}"),
        ("mean loss at iteration 0", None, "{:.3f}"),
        ("mean loss after the last update", "final_loss_mean", "{:.4f}"),
        ("elapsed seconds", "elapsed_s", "{:.1f}"),
    ]
    ms = summary["methods"]
    lines = [
        f"single neuron (NA paper 4.2): {cfg['rounds']} rounds x {cfg['iters']} iterations, {cfg['optimizer']} "
        f"lr={cfg['lr']}, init_std={cfg['init_std']} (initially {cfg['init_mean_spikes']:.2f} spikes/round, "
        f"{cfg['init_frac_silent']:.0%} silent; desired {cfg['target_mean_spikes']:.2f})",
        f"{'':48s}{'NA':>12s}{'STBP':>12s}",
    ]
    for name, key, fmt in rows:
        vals = []
        for m in ("na", "stbp"):
            v = ms[m]["loss_mean"][0] if key is None else ms[m][key]
            vals.append("never" if v is None else fmt.format(v))
        lines.append(f"{name:48s}{vals[0]:>12s}{vals[1]:>12s}")
    lines.append(
        f"{'paper: iteration by which ALL rounds had hit':48s}{PAPER_CLAIM['na']:>12d}{PAPER_CLAIM['stbp']:>12d}"
    )
    return "\n".join(lines)


def main(argv: Optional[list] = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", default="runs/single_neuron", help="output folder (default runs/single_neuron)")
    ap.add_argument("--rounds", type=int, default=DEFAULTS["rounds"])
    ap.add_argument("--iters", type=int, default=DEFAULTS["iters"])
    ap.add_argument("--seed", type=int, default=DEFAULTS["seed"])
    ap.add_argument("--optimizer", choices=OPTIMIZERS, default=DEFAULTS["optimizer"])
    ap.add_argument("--lr", type=float, default=DEFAULTS["lr"], help="learning rate, the same for both methods")
    ap.add_argument("--init-std", type=float, default=DEFAULTS["init_std"], help="initial weights ~ N(0, std^2)")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--no-progress", action="store_true", help="no tqdm progress bars")
    args = ap.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: no CUDA GPU is available")
    summary = run_experiment(
        args.out,
        rounds=args.rounds,
        iters=args.iters,
        seed=args.seed,
        optimizer=args.optimizer,
        lr=args.lr,
        init_std=args.init_std,
        device=args.device,
        progress=not args.no_progress,
    )
    print(format_summary(summary))
    print(f"wrote {os.path.join(args.out, 'single_neuron.json')} and single_neuron.png")
    return summary


if __name__ == "__main__":
    main()
