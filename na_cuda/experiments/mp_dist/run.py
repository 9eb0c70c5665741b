"""The experiment and its command line (``python -m na_cuda.experiments.mp_dist``).

Part of the MP-distance experiment (``na_cuda.experiments.mp_dist``; see its docstring). See docs/results.md."""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Optional

import torch

from na_cuda import train
from na_cuda.train import device_arg, nonneg_int, positive_float, positive_int

from .constants import DEFAULTS, MAX_T, PAPER_RANK1
from .plot import plot
from .stats import SpikeRecorder, TransferStats


# ----------------------------------------------------------------------------------------------------------------
# Experiment.
# ----------------------------------------------------------------------------------------------------------------
def run_experiment(
    out: Optional[str] = "runs/mp_dist",
    *,
    iterations: int = DEFAULTS["iterations"],
    T: int = DEFAULTS["T"],
    seed: int = DEFAULTS["seed"],
    batch_size: int = DEFAULTS["batch_size"],
    sample: int = DEFAULTS["sample"],
    lr: Optional[float] = None,
    data_dir: Optional[str] = None,
    device: Optional[str] = None,
    progress: bool = True,
    plot_figure: bool = True,
) -> dict:
    """Train the MNIST network with TSSL-BP for ``iterations`` steps, counting spike-train transfers; writes
    ``out/mp_dist.json`` (and ``.png``) when ``out`` is given; returns the dict written to the JSON."""
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"na_cuda.experiments.mp_dist: --iterations must be an int >= 1; got {iterations!r}")
    if isinstance(T, bool) or not isinstance(T, int) or not 1 <= T <= MAX_T:
        raise ValueError(
            f"na_cuda.experiments.mp_dist: --T must be an int in [1, {MAX_T}] (the transfer matrix has "
            f"4^T entries); got {T!r}"
        )
    overrides = {} if lr is None else {"lr": lr}
    cfg = train.make_config(
        "mnist",
        method="tssl",
        T=T,
        seed=seed,
        batch_size=batch_size,
        data_dir=data_dir,
        device=device,
        out=out or "runs/mp_dist",
        progress=progress,
        **overrides,
    )
    run = train.setup(cfg)  # the training recipe: data, model, optimiser, input encoding
    net = run.net
    recorder = SpikeRecorder(net)
    stats = TransferStats(
        T, recorder.names, cfg.tau_m, cfg.tau_s, cfg.threshold, run.device, sample, seed, cfg.strict_threshold
    )
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=iterations, desc="mp_dist", unit="it")
    start = time.perf_counter()
    losses: list[float] = []
    done, epoch = 0, 0
    net.train()
    try:
        while done < iterations:
            for batch in run.batches(epoch):
                if done == iterations:
                    break
                x, y = run.train_ds.batch(run.train_index[batch], run.device)
                inp = run.prepare(x, train=True)  # augmented once: the same tensor before and after the step
                recorder.start(keep_inputs=True)
                out_psc = net(inp)
                before, inputs = recorder.codes, recorder.inputs
                loss = train.loss_sum(cfg, out_psc, y)  # summed over the batch (the preset's reduction)
                run.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(run.params, cfg.grad_clip)
                run.optimizer.step()
                net.clamp_weights_(cfg.weight_clip)
                with torch.no_grad():
                    recorder.start(keep_inputs=False)
                    net(inp)
                stats.update(before, recorder.codes, inputs, batch=int(y.numel()))
                losses.append(float(loss.detach()) / y.numel())
                done += 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{losses[-1]:.3f}", changed=stats.per_iteration[-1]["changed"])
            epoch += 1
    finally:
        recorder.remove()
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - start
    config = {
        "dataset": cfg.dataset,
        "arch": cfg.arch,
        "method": cfg.method,
        "T": T,
        "iterations": iterations,
        "batch_size": cfg.batch_size,
        "sample_per_iteration": sample,
        "seed": seed,
        "lr": cfg.lr,
        "loss": cfg.loss,
        "target": cfg.target,
        "augment": cfg.augment,
        "fidelity": cfg.fidelity,
        "strict_threshold": cfg.strict_threshold,
        "tau_m": cfg.tau_m,
        "tau_s": cfg.tau_s,
        "threshold": cfg.threshold,
        "device": str(run.device),
        "torch": torch.__version__,
        "layers": recorder.names,
        "neurons_per_sample": sum(r["neurons"] for r in stats.layer.values()),
        "elapsed_s": seconds,
    }
    result = {"config": config, **stats.summary(), "train_loss_per_sample": losses}
    if out is not None:
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "mp_dist.json"), "w") as f:
            json.dump(result, f)
        if plot_figure:
            plot(result, os.path.join(out, "mp_dist.png"))
    return result


def format_summary(result: dict) -> str:
    """The headline numbers next to the paper's claim."""
    s, cfg = result["summary"], result["config"]

    def pct(v: Optional[float]) -> str:
        return "n/a" if v is None else f"{v:.1%}"

    lines = [
        f"MP-dist quality (NA paper 4.1, Fig. 5): {cfg['arch']} on {cfg['dataset']}, TSSL-BP, T = {cfg['T']}, "
        f"{cfg['iterations']} iterations x batch {cfg['batch_size']}, lr {cfg['lr']:g} ({cfg['elapsed_s']:.0f} s)",
        f"  trains recorded: {s['transfers_total']:,}; changed by a step: {s['transfers_changed']:,} "
        f"({pct(s['frac_changed'])}); MP-dist ranks of a uniform sample of {s['sampled_changed']:,}",
        f"  destination = MP-nearest pattern (rank 1):   {pct(s['frac_mp_rank1'])}   (paper: {PAPER_RANK1:.0%})",
        f"  destination among the 10 MP-nearest:         {pct(s['frac_mp_top10'])}",
        f"  destination at Hamming distance 1 (10 trains): {pct(s['frac_hamming1'])}; Hamming rank 1 (ties at "
        f"random): {pct(s['frac_hamming_rank1'])}",
        f"  destination is an SNS neighbour: {pct(s['frac_sns_neighbour'])}; the nearest SNS neighbour: "
        f"{pct(s['frac_sns_nearest'])}; median MP rank: {s['median_mp_rank']}",
    ]
    for name, rec in result["layers"].items():
        lines.append(
            f"  layer {name:>16}: {rec['neurons']:>6} neurons, changed {pct(rec['frac_changed'])}, MP rank 1 "
            f"{pct(rec['frac_mp_rank1'])}, MP top 10 {pct(rec['frac_mp_top10'])}, Hamming 1 "
            f"{pct(rec['frac_hamming1'])}, SNS neighbour {pct(rec['frac_sns_neighbour'])}"
        )
    if s["unconverged_segment_problems"]:
        lines.append(f"  WARNING: {s['unconverged_segment_problems']} segment problems did not converge")
    return "\n".join(lines)


def main(argv: Optional[list] = None) -> dict:
    ap = argparse.ArgumentParser(
        prog="python -m na_cuda.experiments.mp_dist",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawTextHelpFormatter,
    )
    ap.add_argument("--out", default="runs/mp_dist", help="output folder (default runs/mp_dist)")
    ap.add_argument("--data-dir", default=None, help="MNIST directory (default: $NA_CUDA_DATA or ~/.cache/na_cuda)")
    ap.add_argument("--iterations", type=positive_int, default=DEFAULTS["iterations"])
    ap.add_argument("--T", type=positive_int, default=DEFAULTS["T"], help="time steps (patterns: 2^T)")
    ap.add_argument("--seed", type=nonneg_int, default=DEFAULTS["seed"])
    ap.add_argument("--batch-size", type=positive_int, default=DEFAULTS["batch_size"])
    ap.add_argument(
        "--sample",
        type=positive_int,
        default=DEFAULTS["sample"],
        help="changed trains per iteration whose MP-dist ranks are computed (uniform sample)",
    )
    ap.add_argument(
        "--lr",
        type=positive_float,
        default=None,
        help="learning rate (default: the mnist preset's 5e-4; the released code hard-codes 1e-5)",
    )
    ap.add_argument("--device", type=device_arg, default=None, help="cpu or cuda (default: cuda if available)")
    ap.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    args = ap.parse_args(argv)
    if args.T > MAX_T:
        ap.error(f"--T: at most {MAX_T} (the transfer matrix has 4^T entries); got {args.T}")
    result = run_experiment(
        args.out,
        iterations=args.iterations,
        T=args.T,
        seed=args.seed,
        batch_size=args.batch_size,
        sample=args.sample,
        lr=args.lr,
        data_dir=args.data_dir,
        device=args.device,
        progress=not args.no_progress,
    )
    print(format_summary(result))
    print(f"wrote {os.path.join(args.out, 'mp_dist.json')} and mp_dist.png")
    return result
