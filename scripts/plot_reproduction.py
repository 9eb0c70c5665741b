"""Figure and tables of the reproduction runs (``scripts/reproduce.sh``): test accuracy per epoch of every run,
and the 1-epoch table over seeds (mean, min, max).

    python scripts/plot_reproduction.py [--results docs/results/reproduction]

Reads ``<results>/<run>-seed<S>/metrics.json`` (as ``na_cuda.train`` writes it) and writes ``accuracy.png``,
``summary.json`` and ``summary.md`` (the tables docs/results.md quotes) into ``<results>``.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

# Run names of scripts/reproduce.sh and how the tables call them.
LABELS = {
    "mnist-na-released": "NA, released fidelity (clip 5, u > thr, rounded rescale, double-filtered target)",
    "mnist-na-paper": "NA, paper fidelity (clip 10, u >= thr, eq. 5 target)",
    "mnist-stbp-rect1": "STBP, rect surrogate width 1",
    "mnist-stbp-rect2": "STBP, rect surrogate width 2",
    "mnist-tssl": "TSSL-BP",
    "fmnist-na-paper": "NA, paper fidelity",
    "fmnist-stbp-rect1": "STBP, rect surrogate width 1",
}
PAPER = {"mnist": "99.69 % (NA, 200 epochs)", "fmnist": "not reported for this network"}


def load(results: Path) -> dict[str, dict[int, list[dict[str, Any]]]]:
    """{run: {seed: epochs}} of every metrics.json under ``results``."""
    runs: dict[str, dict[int, list[dict[str, Any]]]] = defaultdict(dict)
    for path in sorted(results.glob("*-seed*/metrics.json")):
        m = re.fullmatch(r"(.+)-seed(\d+)", path.parent.name)
        if m:
            runs[m.group(1)][int(m.group(2))] = json.loads(path.read_text())["epochs"]
    return dict(runs)


def summarise(runs: dict[str, dict[int, list[dict[str, Any]]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, seeds in runs.items():
        first = [100 * e[0]["test_accuracy"] for e in seeds.values() if e]
        long = max(seeds.values(), key=len)
        out[name] = {
            "label": LABELS.get(name, name),
            "epoch1_seeds": sorted(seeds),
            "epoch1_mean": statistics.fmean(first),
            "epoch1_min": min(first),
            "epoch1_max": max(first),
            "epochs": len(long),
            "final_test_accuracy": 100 * long[-1]["test_accuracy"],
            "best_test_accuracy": 100 * max(e["test_accuracy"] for e in long),
            "curve": [100 * e["test_accuracy"] for e in long],
            "seconds_per_epoch_median": statistics.median(e["seconds"] for e in long),
        }
    return out


def markdown(summary: dict[str, Any]) -> str:
    lines = [
        "| dataset | run | 1 epoch: mean (min-max) over seeds | epochs | final | best |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, s in summary.items():
        dataset = "Fashion-MNIST" if name.startswith("fmnist") else "MNIST"
        n = len(s["epoch1_seeds"])
        first = f"{s['epoch1_mean']:.2f} % ({s['epoch1_min']:.2f}-{s['epoch1_max']:.2f}, {n} seed{'s' * (n > 1)})"
        lines.append(
            f"| {dataset} | {s['label']} | {first} | {s['epochs']} | {s['final_test_accuracy']:.2f} % | "
            f"{s['best_test_accuracy']:.2f} % |"
        )
    return "\n".join(lines) + "\n"


def plot(summary: dict[str, Any], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(12, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2)
    for ax, prefix, title in ((axes[0], "mnist", "MNIST"), (axes[1], "fmnist", "Fashion-MNIST")):
        for name, s in summary.items():
            if name.split("-")[0] != prefix:
                continue
            x = range(1, len(s["curve"]) + 1)
            ax.plot(x, s["curve"], "o-", ms=3, label=s["label"].split(" (")[0])
        ax.set(xlabel="epoch", ylabel="test accuracy (%)", title=f"{title}, 15C5-P2-40C5-P2-300-10, T = 5, seed 0")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.savefig(path, dpi=100)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", type=Path, default=Path("docs/results/reproduction"))
    args = p.parse_args()
    runs = load(args.results)
    if not runs:
        raise SystemExit(f"plot_reproduction.py: no <run>-seed<S>/metrics.json under {args.results}")
    summary = summarise(runs)
    (args.results / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (args.results / "summary.md").write_text(markdown(summary))
    plot(summary, args.results / "accuracy.png")
    print(markdown(summary))


if __name__ == "__main__":
    main()
