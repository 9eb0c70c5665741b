"""An imported NIR graph trains as fast as the same network written with na_cuda's modules (issue 22, docs/nir.md).

    python benchmarks/bench_nir.py [--repeats 15] [--batch 64] [--threads 0]

The paper's MNIST network (15C5-P2-40C5-P2-300-10, T = 5, NA, CPU) built by ``na_cuda.models.build_model`` (the
hand-written one) and the same network through ``na_cuda.nir.to_nir`` -> ``nir.write`` -> ``from_nir`` (the
imported one): one training step each (forward, van Rossum loss, backward, AdamW step) on the same batch, the two
interleaved within every repeat (``_timing.interleaved``), so load from other processes hits both alike. Prints
the best and median steps/s of each, the ratio imported / hand-written per repeat (min, median) and the ratio of
the best steps/s. Needs nir.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Callable

import nir
import torch

from na_cuda import losses, models
from na_cuda import nir as na_nir

from _timing import interleaved, machine_info, ratio_stats, summarise

T, TAU_S = 5, 2.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--slot", type=float, default=1.0, help="seconds per variant per repeat")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    hand = models.build_model("mnist", (1, 28, 28), method="na", tau_m=5.0, tau_s=TAU_S)
    x = torch.rand(T, args.batch, 1, 28, 28) * 2
    path = Path(tempfile.mkdtemp()) / "mnist.nir"
    nir.write(path, na_nir.to_nir(hand, x))
    imported = na_nir.from_nir(path, method="na")
    target = losses.na_desired_spikes(torch.randint(0, 10, (args.batch,)), 10, T)
    with torch.no_grad():
        assert torch.equal(hand(x), imported(x)), "the imported graph must compute the hand-written network"

    def step(net: torch.nn.Module, opt: torch.optim.Optimizer) -> None:
        loss = losses.van_rossum(net(x), target, TAU_S)
        opt.zero_grad()
        loss.backward()
        opt.step()

    opts = {n: torch.optim.AdamW(m.parameters(), lr=1e-3) for n, m in (("hand", hand), ("imported", imported))}
    fns: dict[str, Callable[[], object]] = {
        "hand": lambda: step(hand, opts["hand"]),
        "imported": lambda: step(imported, opts["imported"]),
    }
    samples = interleaved(fns, "cpu", repeats=args.repeats, slot_s=args.slot)
    info = machine_info("cpu")
    load = " / ".join(f"{v:.2f}" for v in os.getloadavg())
    print(
        f"machine: {info['cpu_model']} ({info['cpu_count']} cores), torch {info['torch']}, "
        f"{info['torch_threads']} threads, load average {load} (1/5/15 min) after the run"
    )
    for name, s in samples.items():
        st = summarise(s)
        print(f"{name:9s} steps/s: max {1 / st['min']:.2f}, median {1 / st['median']:.2f}")
    r = ratio_stats(samples["hand"], samples["imported"])  # time ratio hand/imported = speed imported/hand
    assert r is not None
    best = summarise(samples["hand"])["min"] / summarise(samples["imported"])["min"]
    print(
        f"imported / hand-written speed: per repeat min {r['min']:.3f}, median {r['median']:.3f}; "
        f"of the best steps/s {best:.3f}"
    )


if __name__ == "__main__":
    main()
