"""Single-neuron experiment of the NA paper (Yang, Zhang & Li, ICML 2021, section 4.2, Table 1, Figure 6(b)).

One LIF output neuron (tau_m = 5, tau_s = 2, threshold 1) driven by 200 input spike trains is trained to emit a
random desired spike train with the van Rossum loss (eq. 5), once with NA and once with STBP, from the same
initial weights, inputs and targets, for 200 iterations; this is repeated for 500 independent rounds. Run::

    python -m na_cuda.experiments.single_neuron [--out DIR] [--rounds 500] [--iters 200] [--seed 0]
                                                [--optimizer adam|sgd] [--lr LR] [--init-std S]
                                                [--device cpu|cuda]

Writes ``DIR/single_neuron.json`` and ``DIR/single_neuron.png`` (Figure 6(b): mean +- std of the per-round loss
per iteration for both methods) and prints a summary next to the paper's claim (NA reaches the desired patterns
within 65 iterations, STBP needs 147).

Setup (Table 1): T = 30 steps, 200 inputs, input spikes Bernoulli(p_in = 0.05) per step, desired output spikes
Bernoulli(p_o = 0.2) per step. Each input train is filtered with the first-order synaptic kernel of eq. 2
(``a[t] = (1 - 1/tau_s) a[t-1] + s[t]/tau_s``, tau_s = 2, ``na_cuda.losses.psc``) and the PSCs are normalised
with the mean and standard deviation of all T x 200 PSCs of the round (each round has its own input set, so its
own statistics). The neuron's input current is ``c[t] = sum_i w_i x_i[t]`` (no bias). The loss of a round is
``1/2 sum_t (psc(d)[t] - a[t])^2`` (eq. 5, ``na_cuda.losses.van_rossum``) on the output PSC ``a``.

All rounds are one tensor program: the weights are ``W [R, 200]``, ``c = einsum('tri,ri->tr', X, W)`` is
``[T, R]`` (one neuron per round) and every iteration makes ONE ``na_cuda.lif`` call for all rounds. The
backward uses the SUM of the per-round losses (``van_rossum(..., reduction="sum")``), so the gradient w.r.t.
``W[r]`` is exactly round r's own gradient; the optimisers used (SGD, Adam) are element-wise, so each round
is trained exactly as if it were alone.

NA runs with the package defaults (``first_order="paper"``, ``dist_power=3``, ``clip=10``); STBP with the
rectangular surrogate (``surrogate="rect"``, width 1) and the reset detached (its default).

Choices the paper does not state (all are CLI flags; the numbers below are from 500 rounds x 200 iterations,
seed 0, float32, CPU):

- Weight init: ``w_i ~ N(0, init_std^2)``, ``init_std = 0.03``. The normalised inputs have zero mean and unit
  variance, so ``c[t]`` has zero mean and a standard deviation of about ``sqrt(200) * init_std = 0.42``; with
  ``tau_m = 5`` the neuron fires a little at the start: 1.6 spikes per 30 steps on average (the desired trains
  have 6), 26 % of the rounds start silent. Smaller scales leave more rounds silent (0.01: 98 %, 0.02: 53 %),
  larger ones fire more (0.05: 3.3 spikes, 10 % silent; 0.1: 5.9 spikes, 5 % silent). Both methods do best
  at 0.01 - 0.03 (Adam, lr 3e-3, fraction of rounds hitting the desired train by iteration 200, NA / STBP):
  0.01: 99.8 / 11.2 %,
  0.02: 99.0 / 12.6 %, 0.03: 99.0 / 10.0 %, 0.05: 90.4 / 4.0 %, 0.1: 37.2 / 1.0 %.
- Optimiser: Adam (betas 0.9, 0.999), ``lr = 3e-3``, the same for both methods. Adam normalises the step per
  weight, so one learning rate is fair to both rules although their gradient scales differ a lot (NA's
  per-step factor is clipped at ``clip = 10``, STBP's rect surrogate is at most 1): with plain SGD the same lr
  means a larger step for NA. A step of 3e-3 per weight is 1/10 of the init scale; measured over the first 50
  updates it moves ``c[t]`` by 0.1 on average at the first (sign-like) Adam step and by 0.02 - 0.03 on average
  afterwards (max 0.45): small next to the threshold, so a spike train changes by about one spike at a time.
  Sweep with init_std = 0.03 (fraction hitting by iteration 65 / by 200, NA | STBP):
  Adam 1e-3: 21.8 / 89.4 | 6.0 / 14.4 %;  2e-3: 53.0 / 99.2 | 7.4 / 12.0 %;  3e-3: 68.2 / 99.0 | 7.4 / 10.0 %;
  5e-3: 67.0 / 94.2 | 3.6 / 4.0 %;  1e-2: 23.6 / 49.0 | 0.8 / 1.0 %.
  SGD 1e-4: 34.4 / 93.4 | 0.4 / 2.2 %;  3e-4: 90.4 / 99.4 | 2.4 / 7.8 %;  1e-3: 24.2 / 59.6 | 8.6 / 13.4 %;
  3e-3: 1.6 / 2.8 | 7.0 / 8.2 %.
  Adam 3e-3 is within a few points of the best setting of each method (best NA: SGD 3e-4; best STBP: Adam
  1e-3 or SGD 1e-3, 13 - 14 %); no setting lets STBP catch up. Its failure is structural: the rect surrogate
  (width 1) is zero unless ``|u - threshold| < 0.5``, so a desired spike at a step where ``u`` stays below 0.5
  sends no gradient at all (with the defaults, after 200 iterations 169 of the 451 unmatched STBP rounds
  had an exactly zero gradient), whereas NA's ``phi(threshold - u)`` is non-zero at every step. A wider
  surrogate helps STBP (same setup, by 65 / by 200: rect width 2: 51.8 / 67.6 %, sigmoid k = 4: 40.2 / 69.8 %, triangle:
  25.4 / 41.2 %) but is not the configuration compared here (``surrogate="rect"``, width 1).

What is recorded, per method: the per-round loss at every iteration (iteration k = the forward after k weight
updates, k = 0 .. iters - 1: ``loss_mean`` / ``loss_std`` over rounds, population std), the loss after the last
update (``final_loss_mean``), and per round the first k in 0 .. iters at which the output spike train equals the
desired train exactly (-1 = never). ``frac_hit_by_65`` / ``frac_hit_by_200`` are the fractions of rounds with
first hit <= 65 / <= 200 (the paper's 65 and 147 are the iterations by which ALL rounds had converged;
``all_hit_iteration`` is the max first-hit when every round hit, else null), ``frac_matched`` the fraction
whose output equals the desired train at each k = 0 .. iters (training continues after a hit, and a round can
leave the desired pattern again, e.g. through Adam's momentum).
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
