"""Several builds of na_cuda timed in one interleaved run: the CPU op table of issue 23 (NA, STBP, TSSL-BP against T
and firing rate), for "before / after" comparisons that a shared machine's load would spoil if run separately.

Each build is a Python interpreter with its own na_cuda installed (a venv per checkout). The parent runs a child
process per build and round, alternating the order of the builds every round, so a burst of load from another
process slows one round of every build rather than all of one build. A child times `na_cuda.lif` forward+backward
(float32, one torch thread, output "psc", backend "native", the default neuron and each rule's defaults) on inputs
drawn for a firing rate (sections/common.py rate_inputs: c = a U[0, 1), `a` bisected per T), the methods of one
(T, rate) interleaved per repeat; `stbp_learn` is STBP with a learnable per-neuron decay (`decay=` tensor; builds
without it skip it). Only API that every release since 0.2.0 has is used.

Per (method, T, rate) and build the result is the min over rounds of each round's min over `--reps` calls, in ns per
neuron-step, and each build's ratios to its own STBP; JSON (`--json`, every sample) and a plot (`--plot`).

    python benchmarks/compare_builds.py --build before=/path/a/.venv/bin/python --build after=.venv/bin/python \
        [--Ts 5,20,50,100,500] [--rates 0.03,0.15] [--methods na,stbp,tssl,stbp_learn] [--rounds 5] [--reps 5]
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import subprocess
import sys
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))


def child(Ts: list[int], rates: list[float], methods: list[str], steps: int, reps: int) -> dict[str, list[float]]:
    """This interpreter's build: {"method T=.. r=..": [min_s, median_s, neuron_steps]}."""
    import torch

    import na_cuda

    sys.path.insert(0, HERE)
    from sections.common import rate_inputs

    torch.set_num_threads(1)
    has_decay = "decay" in inspect.signature(na_cuda.lif).parameters
    out: dict[str, list[float]] = {}
    for T in Ts:
        N = max(256, steps // T)
        for rate in rates:
            c, grad = rate_inputs(T, N, rate, seed=T)
            fns = {}
            for name in methods:
                method, learn = name.removesuffix("_learn"), name.endswith("_learn")
                if learn and not has_decay:
                    continue
                decay = torch.full((N,), 0.8, requires_grad=True) if learn else None

                def step(method: str = method, decay: Any = decay) -> None:
                    x = c.detach().requires_grad_(True)
                    kw = {"decay": decay} if decay is not None else {}
                    na_cuda.lif(x, method=method, output="psc", backend="native", **kw).backward(grad)

                fns[name] = step
            samples: dict[str, list[float]] = {k: [] for k in fns}
            for f in fns.values():  # warm-up
                f()
            for r in range(reps):
                for k in list(fns) if r % 2 == 0 else list(fns)[::-1]:
                    t0 = time.perf_counter()
                    fns[k]()
                    samples[k].append(time.perf_counter() - t0)
            for k, xs in samples.items():
                xs.sort()
                out[f"{k} T={T} r={rate}"] = [xs[0], xs[len(xs) // 2], float(N * T)]
    return out


def parse_key(key: str) -> tuple[str, int, float]:
    m, t, r = key.split()
    return m, int(t[2:]), float(r[2:])


def summarise(res: dict[str, list[dict]]) -> dict[str, dict[str, float]]:
    """Per build and key: the min over rounds of the per-round min, in ns per neuron-step."""
    best: dict[str, dict[str, float]] = {}
    for b, rounds in res.items():
        keys = dict.fromkeys(k for r in rounds for k in r)
        best[b] = {k: min(r[k][0] for r in rounds if k in r) / rounds[0][k][2] * 1e9 for k in keys}
    return best


def table(best: dict[str, dict[str, float]]) -> str:
    """Markdown: per (T, rate), each build's ns per neuron-step of STBP and its NA / TSSL-BP / learnable ratios."""
    builds = list(best)
    rows = sorted({parse_key(k)[1:] for b in builds for k in best[b]})
    head = ["T", "rate"]
    for b in builds:
        head += [f"STBP ns ({b})", f"NA/STBP ({b})", f"TSSL/STBP ({b})", f"learn/fixed ({b})"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for T, rate in rows:
        cells = [str(T), f"{rate:.0%}"]
        for b in builds:
            s = best[b].get(f"stbp T={T} r={rate}")
            for m in ("stbp", "na", "tssl", "stbp_learn"):
                x = best[b].get(f"{m} T={T} r={rate}")
                if x is None or s is None:
                    cells.append("-")
                else:
                    cells.append(f"{x:.2f}" if m == "stbp" else f"{x / s:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    if len(builds) > 1:
        # each method's time against the first build's (same method, T and rate)
        base = builds[0]
        head = ["method", "T", "rate"] + [f"{b} / {base}" for b in builds[1:]]
        lines += ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for k in sorted(best[base], key=lambda k: (parse_key(k)[0], parse_key(k)[1:])):
            m, T, rate = parse_key(k)
            ratios = [f"{best[b][k] / best[base][k]:.3f}" if k in best[b] else "-" for b in builds[1:]]
            lines.append("| " + " | ".join([m, str(T), f"{rate:.0%}", *ratios]) + " |")
    return "\n".join(lines)


def plot(best: dict[str, dict[str, float]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = sorted({parse_key(k)[2] for b in best for k in best[b]})
    fig, axes = plt.subplots(1, len(rates), figsize=(5 * len(rates), 4), squeeze=False)
    for ax, rate in zip(axes[0], rates):
        for b in best:
            for m, style in (("na", "-o"), ("tssl", "--s")):
                pts = []
                for k, v in best[b].items():
                    km, T, r = parse_key(k)
                    stbp = best[b].get(f"stbp T={T} r={r}")
                    if km == m and r == rate and stbp:
                        pts.append((T, v / stbp))
                pts.sort()
                if pts:
                    ax.plot(*zip(*pts), style, label=f"{m.upper()} / STBP, {b}")
        ax.set_xscale("log")
        ax.set_xlabel("T")
        ax.set_ylabel("time / STBP's (same build)")
        ax.set_title(f"CPU op, {rate:.0%} firing")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--build", action="append", metavar="NAME=PYTHON", help="a build: its name and its interpreter")
    p.add_argument("--Ts", default="5,20,50,100,500")
    p.add_argument("--rates", default="0.03,0.15")
    p.add_argument("--methods", default="na,stbp,tssl,stbp_learn")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--reps", type=int, default=5, help="calls per (method, T, rate) in each round")
    p.add_argument("--steps", type=int, default=1 << 20, help="neuron-steps per call (N = steps / T)")
    p.add_argument("--json", help="write every sample here")
    p.add_argument("--plot", help="write the ratio plot here (png)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    Ts = [int(x) for x in a.Ts.split(",")]
    rates = [float(x) for x in a.rates.split(",")]
    methods = a.methods.split(",")
    if a.child:
        print(json.dumps(child(Ts, rates, methods, a.steps, a.reps)))
        return 0
    if not a.build or any("=" not in b for b in a.build):
        p.error("give each build as --build NAME=PYTHON (two or more, or one to time a single build)")
    builds = dict(b.split("=", 1) for b in a.build)
    for name, py in builds.items():
        if not os.access(py, os.X_OK):
            p.error(f"--build {name}={py}: not an executable interpreter")
    res: dict[str, list[dict]] = {b: [] for b in builds}
    argv_child = [__file__, "--child", "--Ts", a.Ts, "--rates", a.rates, "--methods", a.methods]
    argv_child += ["--steps", str(a.steps), "--reps", str(a.reps)]
    try:
        from tqdm import tqdm
    except ImportError:  # progress is optional

        def tqdm(x: Any, **_: Any) -> Any:  # type: ignore[no-redef]
            return x

    order = [(r, b) for r in range(a.rounds) for b in (list(builds) if r % 2 == 0 else list(builds)[::-1])]
    for _, b in tqdm(order, desc="rounds x builds"):
        o = subprocess.run([builds[b], *argv_child], capture_output=True, text=True, cwd=HERE)
        if o.returncode:
            sys.stderr.write(f"build {b} ({builds[b]}) failed:\n{o.stderr[-4000:]}")
            return 1
        res[b].append(json.loads(o.stdout.strip().splitlines()[-1]))
    best = summarise(res)
    print(table(best))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"builds": builds, "args": vars(a), "ns_per_neuron_step": best, "samples": res}, f, indent=1)
    if a.plot:
        plot(best, a.plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
