"""Section 3 of the suite: one training iteration of the MNIST preset network, end to end.

The network is 15C5-P2-40C5-P2-300-10, batch 64, built by `na_cuda.train.model_from_config`, and one iteration
is what `python -m na_cuda.train` does: normalise + encode the batch, forward, summed loss, zero_grad, backward,
clip_grad_norm_, the step statistics accumulated on the device (the CLI reads them back once per log interval, so
no host sync), AdamW step, weight clamp. The batch is synthetic
(scikit-learn's 8x8 digits scaled into 28x28, else random strokes) and already on the device; augmentation is
left out. Per T, every method x backend is timed interleaved (each takes one iteration per repeat) and compared per
repeat. Peak memory per iteration: on CUDA `torch.cuda.max_memory_allocated` minus the memory allocated before the
step; on the CPU (no allocator statistics) the bytes saved for backward and the growth of the process's peak RSS
over the step (sections/memory.py). Per-epoch time = per-iteration x 938 (60000 / 64), plotted next to the
paper's figure 7 (Titan Xp). `compiled`: steps/s of the native step eager against `torch.compile` of network +
loss (the CLI's `--compile MODE`; modes from `plan["e2e_compile"]`).
"""

from __future__ import annotations

import gc
import time
from typing import Callable, Optional

import torch
from torch import nn

from na_cuda import losses, train
from na_cuda.train import loop

from _timing import fake_clock, ratio_stats, summarise, sync
from sections.common import BACKENDS, METHODS, spread_entries, time_variants
from sections.memory import SavedBytes, peak_memory

ITERS_PER_EPOCH = 938  # MNIST: 60000 training images / batch 64, rounded up
# Figure 7 of the NA paper (per-epoch training time on MNIST, one Titan Xp), read off the bars, seconds.
PAPER_FIG7 = {"stbp": {5: 28, 10: 56, 20: 100}, "na": {5: 36, 10: 97, 20: 320}, "tssl": {5: 42, 10: 86, 20: 175}}


def synthetic_mnist(batch: int, device: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, 1, 28, 28] images in [0, 1] and labels: scikit-learn's 8x8 digits upsampled to 20x20 and centred in
    28x28 like MNIST; random strokes if scikit-learn is missing."""
    g = torch.Generator().manual_seed(seed)
    try:
        from na_cuda import data

        ds = data.load("digits", train=True)
        idx = torch.randint(len(ds), (batch,), generator=g)
        x, y = ds.batch(idx, "cpu")
        x = torch.nn.functional.interpolate(x.float(), size=(20, 20), mode="bilinear", align_corners=False)
        x = torch.nn.functional.pad(x, (4, 4, 4, 4)).clamp(0, 1)
        return x.to(device), y.to(device)
    except Exception:  # noqa: BLE001
        x = torch.zeros(batch, 1, 28, 28)
        for b in range(batch):
            r = torch.randint(6, 22, (2,), generator=g)
            x[b, 0, r[0] - 2 : r[0] + 2, 4:24] = 1.0
            x[b, 0, 4:24, r[1] - 2 : r[1] + 2] = 1.0
        return x.to(device), torch.randint(10, (batch,), generator=g).to(device)


class TrainStep:
    """One iteration of `na_cuda.train` (`Run.train_epoch`) on a fixed batch, single process; `compile`: the CLI's
    `--compile MODE` (torch.compile of network + loss), None for eager."""

    def __init__(
        self, method: str, backend: str, T: int, batch: int, device: str, compile: Optional[str] = None
    ) -> None:
        self.method, self.backend, self.compile = method, backend, compile
        self.cfg = train.make_config(
            "mnist", method=method, T=T, backend=backend, device=device, progress=False, compile=compile
        )
        torch.manual_seed(0)
        self.net = train.model_from_config(self.cfg, (1, 28, 28)).to(device)
        self.forward_loss = loop.forward_loss(self.cfg, self.net)
        self.acc = loop.accumulator(torch.device(device))
        self.params = [p for p in self.net.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(
            self.params, lr=self.cfg.lr, betas=tuple(self.cfg.betas), weight_decay=self.cfg.weight_decay
        )
        self.x, self.y = synthetic_mnist(batch, device)
        self.device = device
        self.phases: Optional[dict[str, float]] = None  # set to a dict to record per-phase seconds

    def _mark(self, name: str, t0: float) -> float:
        if self.phases is None:
            return t0
        sync(self.device)
        t1 = time.perf_counter()
        self.phases[name] = self.phases.get(name, 0.0) + t1 - t0
        return t1

    def __call__(self) -> None:
        from na_cuda import data

        cfg = self.cfg
        t = time.perf_counter()
        xin = data.encode_static(data.normalize(self.x, "mnist"), cfg.T, cfg.tau_s)
        out, loss = self.forward_loss(xin, self.y)
        t = self._mark("forward", t)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        t = self._mark("backward", t)
        gnorm = torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip)
        # the CLI's statistics: accumulated on the device, read back once per log interval (not per step)
        loop.accumulate(self.acc, 0, loss, (losses.spike_count_predictions(out) == self.y).sum(), gnorm)
        self.opt.step()
        self.net.clamp_weights_(cfg.weight_clip)
        self._mark("optimizer", t)

    def saved_bytes(self) -> dict:
        """One iteration under saved_tensors_hooks: bytes saved for backward, total and per top-level layer."""
        counter = SavedBytes(exclude=tuple(self.params))
        inputs: dict[str, int] = {}

        def pre_hook(name: str) -> Callable:
            def hook(mod: nn.Module, inp: tuple) -> None:
                counter.layer = name
                inputs[name] = inp[0].numel() * inp[0].element_size()

            return hook

        handles = []
        for i, m in enumerate(self.net):
            name = f"{i}:{type(m.module).__name__ if hasattr(m, 'module') else type(m).__name__}"
            handles.append(m.register_forward_pre_hook(pre_hook(name)))
        handles.append(self.net.register_forward_hook(lambda *a: setattr(counter, "layer", "loss")))
        try:
            with counter:
                self()
        finally:
            for h in handles:
                h.remove()
        lif = {k: counter.by_layer.get(k, 0) / v for k, v in inputs.items() if k.endswith(":LIF")}
        return dict(
            total=counter.total, by_layer=dict(counter.by_layer), input_bytes=inputs, lif_input_sized_tensors=lif
        )


def bench_compiled(plan: dict, device: str) -> dict:
    """Steps/s of the native training step eager against each mode of `plan["e2e_compile"]` (the CLI's
    `--compile MODE`: torch.compile of network + loss), per method at T = `plan["e2e_compile_T"]`, timed
    interleaved; the first calls (compilation, CUDA-graph recording) are warm-up, reported as `compile_s`."""
    T, modes = plan["e2e_compile_T"], plan["e2e_compile"]
    rows: list[dict] = []
    timed: list[dict] = []
    if not modes:
        return dict(rows=rows, timed=timed, skipped="no compile mode in this run (--compile-modes)")
    for method in plan.get("e2e_compile_methods", METHODS):
        steps = {"eager": TrainStep(method, "native", T, plan["e2e_batch"], device)}
        compile_s: dict[str, float] = {}
        for mode in modes:
            steps[mode] = TrainStep(method, "native", T, plan["e2e_batch"], device, compile=mode)
            t0 = time.perf_counter()
            for _ in range(3):  # compile, then the CUDA-graph warm-up and recording of reduce-overhead
                steps[mode]()
            sync(device)
            compile_s[mode] = time.perf_counter() - t0
        samples, failed = time_variants(dict(steps), device, plan["e2e_repeats"], plan["slow_repeats"], 0.0)
        timed += [dict(e, variant=f"e2e-compile {method} {e['variant']}") for e in spread_entries(samples)]
        eager = samples.get("eager")
        for name, xs in samples.items():
            st = summarise(xs)
            vs = ratio_stats(eager, xs) if eager and name != "eager" else None
            rows.append(
                dict(
                    method=method,
                    mode=name,
                    T=T,
                    batch=plan["e2e_batch"],
                    steps_per_s=1.0 / st["median"],
                    iter_stats=st,
                    speedup_vs_eager=vs and vs["median"],
                    speedup_vs_eager_stats=vs,
                    compile_s=compile_s.get(name),
                )
            )
            print(
                f"  T={T:3d} {method:5s} {name:16s}: {1.0 / st['median']:8.1f} steps/s"
                + (f", x{vs['median']:.2f} eager (compiled in {compile_s[name]:.0f} s)" if vs else ""),
                flush=True,
            )
        rows += [dict(method=method, mode=k, T=T, skipped=v) for k, v in failed.items()]
        del steps
        gc.collect()
    return dict(rows=rows, timed=timed, modes=modes)


def bench_e2e(plan: dict, device: str) -> dict:
    """The section's result: rows per (T, method, backend) with per-iteration time statistics, per-repeat ratios,
    bytes saved for backward per layer, peak memory and (native) the forward / backward / optimiser split."""
    rows: list[dict] = []
    timed: list[dict] = []
    skipped: list[dict] = []
    for T in plan["e2e_Ts"]:
        steps: dict[str, TrainStep] = {}
        for method in METHODS:
            for backend in BACKENDS:
                if backend == "native" or T in plan["e2e_ref_Ts"]:
                    steps[f"{method} {backend} T={T}"] = TrainStep(method, backend, T, plan["e2e_batch"], device)
        fns: dict[str, Callable[[], object]] = dict(steps)
        samples, failed = time_variants(fns, device, plan["e2e_repeats"], plan["slow_repeats"], 0.0)
        skipped += [dict(variant=k, T=T, reason=v) for k, v in failed.items()]
        timed += [dict(e, variant=f"e2e {e['variant']}") for e in spread_entries(samples)]
        for key, step in steps.items():
            if key not in samples:
                continue
            method, backend = step.method, step.backend
            st = summarise(samples[key])
            row = dict(
                method=method,
                backend=backend,
                T=T,
                batch=plan["e2e_batch"],
                iter_s_median=st["median"],
                iter_s_min=st["min"],
                iter_stats=st,
                reps=st["n"],
                epoch_s=st["median"] * ITERS_PER_EPOCH,
            )
            stbp = samples.get(f"stbp {backend} T={T}")
            ref = samples.get(f"{method} torch T={T}")
            vs_stbp = ratio_stats(samples[key], stbp) if stbp else None
            speedup = ratio_stats(ref, samples[key]) if ref and backend == "native" else None
            row.update(
                time_vs_stbp_same_backend=vs_stbp and vs_stbp["median"],
                time_vs_stbp_same_backend_stats=vs_stbp,
                speedup_vs_reference=speedup and speedup["median"],
                speedup_vs_reference_stats=speedup,
            )
            saved: dict = {}
            row["peak"] = peak_memory(lambda: saved.update(step.saved_bytes()), device)  # called at once
            row["saved_bytes"] = saved["total"]
            row["saved_bytes_by_layer"] = saved["by_layer"]
            row["layer_input_bytes"] = saved["input_bytes"]
            row["lif_saved_input_sized_tensors"] = saved["lif_input_sized_tensors"]
            if backend == "native" and fake_clock() is None:  # a split of real time (none under the test clock)
                step.phases = {}
                n = 3
                for _ in range(n):
                    step()
                row["phases_s"] = {k: v / n for k, v in step.phases.items()}
                step.phases = None
            rows.append(row)
            pk = row["peak"]["peak_bytes"]
            print(
                f"  T={T:3d} {method:5s} {backend:6s}: {st['median'] * 1e3:9.1f} ms/iter (median of {st['n']}, IQR "
                f"{100 * st['rel_iqr']:.1f} %), {row['epoch_s']:8.1f} s/epoch, saved {saved['total'] / 2**20:7.1f} "
                f"MiB, peak {'-' if pk is None else f'{pk / 2**20:.1f} MiB'}",
                flush=True,
            )
        del steps, fns
        gc.collect()
    compiled = bench_compiled(plan, device)
    return dict(
        rows=rows,
        skipped=skipped,
        timed=timed + compiled["timed"],
        compiled=compiled,
        iters_per_epoch=ITERS_PER_EPOCH,
        paper_fig7_titan_xp_s=PAPER_FIG7,
        note="per iteration: normalise + PSC-encode the batch, forward, loss (van Rossum, summed), zero_grad, "
        "backward, clip_grad_norm_(1), loss/accuracy/grad norm accumulated on the device (no host sync: "
        "the CLI reads them once per log interval), AdamW step, clamp to "
        "[-4, 4]; NA with the released layer-wise gradient rescaling (the CLI's default). Synthetic "
        "batch already on the device, no augmentation. iter_s_median: median over interleaved repeats "
        "(every method and backend of a T takes one iteration per repeat; a reference iteration slower "
        "than 1 s takes part in the first slow_repeats repeats only); ratios are medians of per-repeat "
        "ratios. saved_bytes: bytes saved for backward (saved_tensors_hooks, unique storages, parameters "
        "excluded). peak: see its 'kind'. compiled: steps/s of the native step eager against torch.compile "
        "of network + loss (the CLI's --compile MODE), interleaved, after 3 warm-up calls.",
    )
