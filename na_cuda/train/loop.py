"""One process's training state and its epoch loop: the steps (with the non-finite check), evaluation, the
per-epoch metrics, checkpoints (written by rank 0; every rank's RNG state) and the stop request of SIGINT/SIGTERM.
See docs/training.md."""

from __future__ import annotations

import math
import os
import shutil
import signal
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from .. import losses
from .._files import open_temp
from . import checkpoint, report
from .config import CHECKPOINT, ConfigError, TrainConfig
from .distributed import all_ranks_raise, all_sum, gather
from .progress import Progress
from .recipe import Recipe, loss_sum

LossHook = Callable[[int, int, torch.Tensor], torch.Tensor]


class NonFiniteLoss(RuntimeError):
    """The loss or the gradient norm became NaN/inf."""


class StopRequest:
    """SIGINT/SIGTERM handler: the first signal asks training to stop after the current step, a second one aborts."""

    def __init__(self) -> None:
        self.signum: Optional[int] = None
        self._previous: dict[int, Any] = {}

    def __call__(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        print(
            f"\nna_cuda.train: received {signal.Signals(signum).name}: finishing the current step (a distributed "
            "run: the steps up to the next log point) and writing a checkpoint (send it again to abort at once)",
            file=sys.stderr,
            flush=True,
        )

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._previous[s] = signal.signal(s, self)

    def uninstall(self) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()


class _Interval:
    """The host's side of the steps since the last log point: their samples (global) and start time, and the
    progress postfix of the last log point."""

    def __init__(self, t0: float) -> None:
        self.shown: dict[str, str] = {}
        self.reset(t0)

    def reset(self, t0: float) -> None:
        self.t0, self.samples = t0, 0


def accumulator(device: torch.device, loss: float = 0.0, correct: float = 0.0) -> torch.Tensor:
    """An accumulator of :func:`accumulate` on ``device`` whose sums start at ``loss`` and ``correct``."""
    return torch.tensor([loss, correct, 0.0, math.inf, math.inf], dtype=torch.float64, device=device)


def accumulate(acc: torch.Tensor, step: int, loss: torch.Tensor, correct: torch.Tensor, gnorm: torch.Tensor) -> None:
    """Adds one step's statistics to ``acc`` (float64 [5] on the device: loss sum, correct, non-finite steps, first
    step with a non-finite loss, ... gradient norm) without reading anything back."""
    loss = loss.detach().double()
    finite = torch.stack([loss.isfinite(), gnorm.isfinite()])
    acc[:3] += torch.stack([loss, correct.double(), (~finite).any().double()])
    acc[3:] = torch.minimum(acc[3:], torch.where(finite, math.inf, float(step)))


def forward_loss(
    cfg: TrainConfig, model: torch.nn.Module
) -> Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """``(x, y) -> (outputs, summed loss)`` of the training step: ``model`` and the loss of ``cfg``, without the
    per-batch label check (``setup`` checked the datasets' labels once). With ``cfg.compile`` both are one
    ``torch.compile``d function of that mode (the network's custom ops have fake kernels, so the whole function is
    one graph; tests/test_host_sync.py compiles it with ``fullgraph=True``)."""

    def step(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = model(x)
        return out, loss_sum(cfg, out, y, check_labels=False)

    if cfg.compile is None:
        return step
    import torch._inductor.config as inductor_config  # (imported with torch.compile only)

    compiled = torch.compile(step, mode=cfg.compile)

    def faithful(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Inductor's layout optimisation runs the convolutions channels-last, whose weight gradient sums in another
        # order: ~1e-7 relative on the first step, which the spikes amplify into another run (docs/training.md).
        # Off, the compiled step is bit-equal to eager. It is read when the forward (and its backward) compile.
        with inductor_config.patch(layout_optimization=False):
            return compiled(x, y)

    return faithful


class Run:
    """The state of one training run in this process: the recipe, where it stands (``epoch`` completed,
    ``step`` completed in the next one, that epoch's running sums) and the metrics so far."""

    def __init__(self, recipe: Recipe, out: Path, loss_hook: Optional[LossHook] = None) -> None:
        self.r, self.cfg, self.ctx, self.out, self.loss_hook = recipe, recipe.cfg, recipe.ctx, out, loss_hook
        self.metrics: dict[str, Any] = {"epochs": [], "best_test_accuracy": None, "best_epoch": None}
        self.epoch = 0  # epochs completed
        self.step = 0  # steps completed in epoch `self.epoch`
        self.partial = dict(loss=0.0, correct=0.0, n=0.0, seconds=0.0)
        self.saved_at: Optional[str] = None  # where the checkpoint on disk stands, for messages
        self.forward_loss = forward_loss(recipe.cfg, recipe.model)

    def position(self) -> str:
        return f"epoch {self.epoch + 1}, step {self.step}" if self.step else f"after epoch {self.epoch}"

    # -- checkpoints ---------------------------------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        """Collective (every rank's RNG state); rank 0 writes DIR/checkpoint.pt atomically."""
        states = gather(self.ctx, checkpoint.rng_state(self.r.aug_gen, self.r.device))
        error = None
        if self.ctx.main:
            try:
                checkpoint.save(self.out / CHECKPOINT, self._payload(states))
                self.saved_at = self.position()
            except report.OutputError as exc:  # the previous checkpoint is intact (atomic write)
                error = str(exc)
        all_ranks_raise(self.ctx, error, report.OutputError)

    def _payload(self, states: list[Any]) -> dict[str, Any]:
        """The checkpoint's fields (checkpoint.py) with the RNG states ``states`` of every rank."""
        return {
            "config": asdict(self.cfg),
            "model": self.r.net.state_dict(),
            "optimizer": self.r.optimizer.state_dict(),
            "scheduler": self.r.scheduler.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "partial": dict(self.partial),
            "metrics": self.metrics,
            "rng": states,
            "world_size": self.ctx.world,
        }

    def check_room(self) -> None:
        """Rank 0, before training: DIR must have room for two checkpoints (the old one stays until the new one is
        complete) plus the reports; one checkpoint-sized file is written and removed, so a full disk or a quota
        fails now with a message, not after the first epoch."""
        data = checkpoint.encode(self._payload([checkpoint.rng_state(self.r.aug_gen, self.r.device)]))
        # AdamW adds two moments per parameter after the first step.
        size = len(data) + (
            0 if self.r.optimizer.state else 2 * sum(p.numel() * p.element_size() for p in self.r.params)
        )
        need = 2 * size + (1 << 20)
        free = shutil.disk_usage(self.out).free
        if free < need:
            raise ConfigError(
                f"--out: {self.out} has {free / 2**20:.1f} MiB free; this run needs about "
                f"{need / 2**20:.1f} MiB (two checkpoints of {size / 2**20:.1f} MiB and the reports); "
                "free some space or choose another --out"
            )
        fd, tmp = open_temp(self.out / CHECKPOINT)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data + bytes(size - len(data)))
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            raise ConfigError(
                f"--out: cannot write a {size / 2**20:.1f} MiB checkpoint to {self.out}: {exc}; free "
                "some space or choose another --out"
            ) from None
        finally:
            tmp.unlink(missing_ok=True)

    def load_checkpoint(self, ckpt: dict[str, Any], path: Path) -> None:
        """Restore a checkpoint that passed ``checkpoint.load``; raises ConfigError if it does not fit this run."""
        try:  # values, shapes and ranges against this run's network, optimizer and config, before anything changes
            checkpoint.check_fit(ckpt, self.r.optimizer, self.r.scheduler, self.cfg, path)
            if self.ctx.rank < len(ckpt["rng"]):
                checkpoint.check_rng_state(ckpt["rng"][self.ctx.rank], self.r.aug_gen, path, self.ctx.rank)
        except checkpoint.CheckpointError as exc:
            raise ConfigError(f"--resume: {exc}") from None
        n_steps = len(self.r.batches(int(ckpt["epoch"])))
        if ckpt["step"] > n_steps:
            raise ConfigError(
                f"--resume: {path}: field `step` = {ckpt['step']} is not a step of an epoch of {n_steps} steps"
            )
        try:
            self.r.net.load_state_dict(ckpt["model"])
            self.r.optimizer.load_state_dict(ckpt["optimizer"])
            self.r.scheduler.load_state_dict(ckpt["scheduler"])
        except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(
                f"--resume: {path}: the saved state does not fit this network and optimizer: {first}"
            ) from None
        self.epoch, self.step = int(ckpt["epoch"]), int(ckpt["step"])
        self.partial = dict(ckpt["partial"])
        self.metrics = ckpt["metrics"]
        self.saved_at = self.position()
        states = ckpt["rng"]
        if len(states) != self.ctx.world and self.ctx.main:
            print(
                f"na_cuda.train: the checkpoint was written by {len(states)} process(es), this run has "
                f"{self.ctx.world}: ranks without a saved RNG state keep their fresh seeds",
                file=sys.stderr,
            )
        if self.ctx.rank < len(states):
            checkpoint.set_rng_state(states[self.ctx.rank], self.r.aug_gen, self.r.device)

    # -- steps ---------------------------------------------------------------------------------------------------
    def any_stop(self, stop: StopRequest) -> bool:
        """Whether any rank received a stop signal (collective)."""
        flag = torch.tensor(float(stop.signum is not None))
        return bool(all_sum(self.ctx, [flag], self.r.device)[0].item() > 0)

    def evaluate(self) -> tuple[float, float]:
        """(loss per sample, accuracy) on the test set, sharded over the ranks; with progress on rank 0."""
        r, cfg = self.r, self.cfg
        r.net.eval()
        shard = torch.arange(len(r.test_ds)).tensor_split(self.ctx.world)[self.ctx.rank]
        batches = shard.split(cfg.eval_batch_size)
        total = torch.zeros(3, dtype=torch.float64, device=r.device)
        with (
            torch.no_grad(),
            Progress(
                len(batches),
                f"epoch {self.epoch + 1}/{cfg.epochs} eval",
                unit="batch",
                enabled=self.ctx.main and cfg.progress,
            ) as bar,
        ):
            for idx in batches:
                x, y = r.test_ds.batch(idx, r.device)
                out = r.net(r.prepare(x, train=False))
                total[0] += loss_sum(cfg, out, y, check_labels=False).double()
                total[1] += (losses.spike_count_predictions(out) == y).sum()
                total[2] += y.numel()
                bar.update(1)
        loss, correct, count = all_sum(self.ctx, list(total), r.device).tolist()
        return loss / count, correct / count

    def train_epoch(self, stop: StopRequest) -> bool:
        """Runs the rest of epoch ``self.epoch``; returns False if a stop signal ended it early.

        A step never waits on the host: its statistics (summed loss, correct predictions, the first step with a
        non-finite loss or gradient norm) accumulate on the device and are read once per log point (every
        ``log_every`` steps, the epoch's last step, a stop), where :meth:`_read_interval` raises NonFiniteLoss. A
        non-finite step has then already updated the weights in memory, which is harmless: NonFiniteLoss ends the
        run without a checkpoint, so the last good one stays. A stop signal ends the epoch after the current step
        in a single process, at the next log point in a distributed run (where the ranks agree on it)."""
        r, cfg, ctx = self.r, self.cfg, self.ctx
        batches = r.batches(self.epoch)
        denom = 1.0 if cfg.loss_reduction == "sum" else None
        r.model.train()
        # The epoch's running sums, continued from `partial` (rank 0 holds the sums of every rank), so that they
        # are added in the same order wherever the log points (or a resume) fall: resume stays bit-exact.
        p = self.partial
        acc = accumulator(r.device, p["loss"], p["correct"]) if ctx.main else accumulator(r.device)
        interval = _Interval(time.perf_counter())
        with Progress(
            len(batches), f"epoch {self.epoch + 1}/{cfg.epochs}", initial=self.step, enabled=ctx.main and cfg.progress
        ) as bar:
            while self.step < len(batches):
                batch = r.train_index[batches[self.step]]
                x, y = r.train_ds.batch(batch.tensor_split(ctx.world)[ctx.rank], r.device)
                out, loss = self.forward_loss(r.prepare(x, train=True), y)
                if self.loss_hook is not None:
                    loss = self.loss_hook(self.epoch, self.step, loss)
                scale = ctx.world / (denom if denom is not None else float(batch.numel()))
                r.optimizer.zero_grad(set_to_none=True)
                (loss * scale).backward()
                gnorm = torch.nn.utils.clip_grad_norm_(r.params, cfg.grad_clip if cfg.grad_clip > 0 else math.inf)
                accumulate(acc, self.step, loss, (losses.spike_count_predictions(out) == y).sum(), gnorm)
                r.optimizer.step()
                if cfg.weight_clip > 0:
                    r.net.clamp_weights_(cfg.weight_clip)
                self.step += 1
                interval.samples += batch.numel()  # the global batch: every rank's shard
                bar.update(1, **interval.shown)
                stop_here = stop.signum is not None and not ctx.active  # a host flag: no sync
                if stop_here or self.step == len(batches) or self.step % cfg.log_every == 0:
                    if self._read_interval(acc, interval, stop, len(batches)) or stop_here:
                        return False
        return True

    def _read_interval(self, acc: torch.Tensor, interval: _Interval, stop: StopRequest, n_steps: int) -> bool:
        """The log point: reads the epoch's running sums (one device-to-host copy; in a distributed run one
        collective, which also carries the stop flags) into ``self.partial``; raises NonFiniteLoss for a
        non-finite step. Returns whether a rank asked to stop."""
        flag = torch.tensor(float(stop.signum is not None))
        summed = all_sum(self.ctx, [acc[0], acc[1], acc[2], flag], self.r.device)
        loss_v, correct_v, bad_v, stop_v, first_loss, first_gnorm = torch.cat([summed, acc[3:]]).tolist()
        if bad_v > 0:
            if math.isfinite(min(first_loss, first_gnorm)):
                what = "loss" if first_loss <= first_gnorm else "gradient norm"
                where = f"step {int(min(first_loss, first_gnorm)) + 1}"
            else:
                what, where = "loss or gradient norm", f"a step up to {self.step} on another rank"
            raise NonFiniteLoss(f"non-finite {what} at epoch {self.epoch + 1}, {where} (of {n_steps})")
        now = time.perf_counter()
        p = self.partial
        p["loss"] = loss_v
        p["correct"] = correct_v
        p["n"] += float(interval.samples)
        p["seconds"] += now - interval.t0
        interval.shown = dict(
            loss=f"{p['loss'] / p['n']:.4f}",
            acc=f"{100 * p['correct'] / p['n']:.1f}%",
            sps=f"{interval.samples / max(now - interval.t0, 1e-9):.0f}",
        )
        interval.reset(now)
        return stop_v > 0

    def finish_epoch(self) -> dict[str, Any]:
        """Scheduler step, evaluation, metrics; moves to the next epoch. The row's ``samples_per_second`` is
        training samples per second of training time; ``seconds`` = ``train_seconds`` + ``eval_seconds``."""
        t0 = time.perf_counter()
        lr = self.r.optimizer.param_groups[0]["lr"]
        self.r.scheduler.step()
        test_loss, test_acc = self.evaluate()
        eval_s = time.perf_counter() - t0
        p = self.partial
        row = {
            "epoch": self.epoch + 1,
            "train_loss": p["loss"] / p["n"],
            "train_accuracy": p["correct"] / p["n"],
            "test_loss": test_loss,
            "test_accuracy": test_acc,
            "lr": lr,
            "seconds": p["seconds"] + eval_s,
            "samples_per_second": p["n"] / max(p["seconds"], 1e-9),
            "train_seconds": p["seconds"],
            "eval_seconds": eval_s,
        }
        m = self.metrics
        m["epochs"].append(row)
        if m["best_test_accuracy"] is None or test_acc > m["best_test_accuracy"]:
            m["best_test_accuracy"], m["best_epoch"] = test_acc, row["epoch"]
        self.epoch += 1
        self.step = 0
        self.partial = dict(loss=0.0, correct=0.0, n=0.0, seconds=0.0)
        return row

    def write_reports(self) -> None:
        """Rank 0: metrics.json first (a finished epoch is never lost to the plot), then curves.png."""
        error = None
        if self.ctx.main:
            try:
                report.write_json(self.out / "metrics.json", self.metrics)
                title = f"{self.cfg.preset}: {self.cfg.arch}, {self.cfg.method}, T = {self.cfg.T}"
                report.plot_curves(self.out / "curves.png", self.metrics["epochs"], title)
            except report.OutputError as exc:
                error = str(exc)
        all_ranks_raise(self.ctx, error, report.OutputError)
