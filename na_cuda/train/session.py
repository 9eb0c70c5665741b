"""A whole run (:func:`run`): every check before anything is created on disk (config, ``--out``, device, a
finished ``--resume``, data, network), then ``--out`` (created, locked), the epoch loop with its messages, and the
exit status. See the package docstring for the outputs and the guarantees. See docs/training.md."""

from __future__ import annotations

import os
import signal
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any, Optional

import torch

from .._files import FolderBusy, FolderLock, remove_stale_temps
from . import checkpoint, report
from .config import CHECKPOINT, ConfigError, TrainConfig, validate_config
from .distributed import DDP_TIMEOUT_S, Dist, all_ranks_raise, dist_from_env, process_group
from .loop import LossHook, NonFiniteLoss, Run, StopRequest
from .progress import RunClock
from .recipe import resolve_device, setup

__all__ = ["run", "out_problem"]


def out_problem(out: Path) -> Optional[str]:
    """Why ``out`` cannot be the output folder (a file, under a file, not writable), or None; creates nothing."""
    if out.exists() and not out.is_dir():
        return f"--out: {out} is a file, not a folder; choose a folder (existing or new) for the run's outputs"
    existing = out
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return f"--out: {out} cannot be created: {existing} is a file; choose another --out"
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "the folder" if existing == out else f"{out} would be created in {existing}, which"
        return f"--out: {out} is not writable ({what} is read-only for this user); choose another --out"
    return None


def _finished(done: int, step: int, epochs: int) -> str:
    """What a checkpoint at ``done`` epochs (+ ``step`` steps) means for a run of ``epochs`` epochs."""
    if step:
        return f"run already finished {epochs}/{epochs} epochs (the checkpoint is at step {step} of epoch {done + 1})"
    if done > epochs:
        return f"run already finished {done} epochs, more than --epochs {epochs}"
    return f"run already finished {done}/{epochs} epochs"


def _create_out(out: Path) -> list[Path]:
    """Create ``out`` and its missing parents; returns those created, innermost first."""
    created = []
    folder = out
    while not folder.exists():
        created.append(folder)
        folder = folder.parent
    out.mkdir(parents=True, exist_ok=True)
    return created


def run(
    cfg: TrainConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    datasets: Optional[tuple[Any, Any]] = None,
    loss_hook: Optional[LossHook] = None,
    ddp_timeout: float = DDP_TIMEOUT_S,
) -> int:
    """Train with ``cfg`` (validated); returns the process exit status (0 done or nothing left to do, 1
    non-finite loss, 128 + signum when stopped by a signal). Raises ConfigError (a bad argument) or
    recipe.DataError (data missing) before anything is created on disk.

    ``resume``: continue from ``cfg.out/checkpoint.pt`` (``cfg`` must equal the saved config except for
    ``RESUMABLE_CHANGES``; use ``resume_config``). ``overwrite``: start afresh even if a checkpoint exists.
    ``datasets``: ``(train, test)`` objects following the ``na_cuda.data.Dataset`` contract instead of
    ``na_cuda.data.load`` (tests). ``loss_hook(epoch, step, loss) -> loss``: applied to every training loss
    before backward (tests, e.g. to inject a NaN); epoch and step are 0-based. ``ddp_timeout``: seconds a
    collective of a distributed run waits for the other ranks before it fails (torch's default is 30 minutes).
    """
    validate_config(cfg)
    ctx = dist_from_env()
    if cfg.out is None:
        cfg.out = f"runs/{cfg.preset}-{cfg.method}"
    out = Path(cfg.out)
    ckpt_path = out / CHECKPOINT
    if not resume and ckpt_path.exists() and not overwrite:
        raise ConfigError(
            f"--out: {out} already holds a checkpoint; pass --resume to continue it, --overwrite to "
            "start afresh, or another --out"
        )
    use_cuda = (cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda")
    with process_group(ctx, use_cuda, ddp_timeout):
        return _run(cfg, ctx, out, resume=resume, overwrite=overwrite, datasets=datasets, loss_hook=loss_hook)


def _run(
    cfg: TrainConfig,
    ctx: Dist,
    out: Path,
    *,
    resume: bool,
    overwrite: bool,
    datasets: Optional[tuple[Any, Any]],
    loss_hook: Optional[LossHook],
) -> int:
    device = resolve_device(cfg, ctx)  # sets this rank's CUDA device before the first collective
    all_ranks_raise(ctx, out_problem(out) if ctx.main else None)
    ckpt = None
    if resume:  # every rank reads the file, so every rank stops on a bad one
        try:
            ckpt = checkpoint.load(out / CHECKPOINT)
        except checkpoint.CheckpointError as exc:
            raise ConfigError(f"--resume: {exc}") from None
        if ckpt["epoch"] >= cfg.epochs:
            if ctx.main:
                print(
                    f"na_cuda.train: {_finished(ckpt['epoch'], ckpt['step'], cfg.epochs)}; nothing to do (raise "
                    "--epochs to continue)",
                    flush=True,
                )
            return 0
    r = Run(setup(cfg, ctx, datasets, device), out, loss_hook)
    if ckpt is not None:
        r.load_checkpoint(ckpt, out / CHECKPOINT)
        del ckpt
    lock = FolderLock(out)
    created: list[Path] = []
    error = None
    if ctx.main:
        try:
            created = _create_out(out)
            lock.acquire()
        except (FolderBusy, OSError) as exc:
            error = f"--out: {exc}" + (
                "; wait for that run to end or choose another --out"
                if isinstance(exc, FolderBusy)
                else "; choose another --out"
            )
    try:
        all_ranks_raise(ctx, error)
        started = _prepare_out(r, ctx, out, resume=resume, overwrite=overwrite)
    except BaseException:
        lock.release()
        for folder in created:  # a run that stopped before writing anything leaves no folder behind
            try:
                folder.rmdir()
            except OSError:
                break
        raise
    try:
        return _epochs(r, ctx, out, started)
    finally:
        lock.release()


def _prepare_out(r: Run, ctx: Dist, out: Path, *, resume: bool, overwrite: bool) -> str:
    """Rank 0 (holding the lock): remove killed runs' temporaries, an overwritten run's files, check the room,
    write config.json; returns where training starts, for the start line."""
    if ctx.main:
        for tmp in remove_stale_temps(out):
            print(f"na_cuda.train: removed {tmp}, left by a killed run", file=sys.stderr, flush=True)
        if overwrite and not resume:
            for name in (CHECKPOINT, "metrics.json", "curves.png"):
                (out / name).unlink(missing_ok=True)
    error = None
    if ctx.main:
        try:
            r.check_room()
        except ConfigError as exc:
            error = str(exc)
    all_ranks_raise(ctx, error)
    if ctx.main:
        try:
            report.write_json(out / "config.json", asdict(r.cfg))
        except report.OutputError as exc:
            error = f"--out: {exc}; free some space or choose another --out"
    all_ranks_raise(ctx, error)
    where = f"epoch {r.epoch + 1}, step {r.step + 1}" if r.step else f"epoch {r.epoch + 1}"
    return f"resuming at {where}" if resume else "from scratch"


def _kept(r: Run, ckpt_path: Path) -> str:
    """Where the last good checkpoint stands, for the messages of a stopped run."""
    return (
        f"the last good checkpoint ({r.saved_at}) is kept at {ckpt_path}" if r.saved_at else "no checkpoint was written"
    )


def _epochs(r: Run, ctx: Dist, out: Path, started: str) -> int:
    """The epoch loop; returns the exit status."""
    cfg, ckpt_path = r.cfg, out / CHECKPOINT
    if ctx.main:
        print(
            f"na_cuda.train: {cfg.preset} ({cfg.model_nir or cfg.arch}, method {cfg.method}, T = {cfg.T}) on "
            f"{r.r.device}"
            + (f" x {ctx.world} processes" if ctx.active else "")
            + f", {len(r.r.train_index)} train / {len(r.r.test_ds)} test samples, {started}, output {out}\n"
            + r.r.net.describe(),
            flush=True,
        )
    clock = RunClock(cfg.epochs)
    stop = StopRequest()
    stop.install()
    try:
        while r.epoch < cfg.epochs:
            if not r.train_epoch(stop):
                r.save_checkpoint()
                if ctx.main:
                    print(
                        f"na_cuda.train: stopped at epoch {r.epoch + 1}, step {r.step}; checkpoint written to "
                        f"{ckpt_path}; continue with --resume",
                        file=sys.stderr,
                        flush=True,
                    )
                return 128 + int(stop.signum or signal.SIGTERM)
            row = r.finish_epoch()
            r.save_checkpoint()
            r.write_reports()
            clock.epoch_done(row["seconds"])
            if ctx.main:
                print(report.epoch_line(row, cfg.epochs, len(r.r.test_ds), clock.eta(r.epoch)), flush=True)
            if r.any_stop(stop) and r.epoch < cfg.epochs:
                if ctx.main:
                    print(
                        f"na_cuda.train: stopped after epoch {r.epoch}; checkpoint written to {ckpt_path}; "
                        "continue with --resume",
                        file=sys.stderr,
                        flush=True,
                    )
                return 128 + int(stop.signum or signal.SIGTERM)
    except report.OutputError as exc:  # a full disk: the files on disk are the last complete ones
        if ctx.main:
            print(
                f"na_cuda.train: {exc}; training stopped, {_kept(r, ckpt_path)}. Free some space (or raise the "
                "quota), then continue with --resume",
                file=sys.stderr,
                flush=True,
            )
        return 1
    except NonFiniteLoss as exc:
        if ctx.main:
            kept = _kept(r, ckpt_path)
            clip = f"--set grad_clip=<smaller> (now {cfg.grad_clip:g})" if cfg.grad_clip > 0 else "--set grad_clip=1"
            print(
                f"na_cuda.train: {exc}; training stopped, {kept}. Try a lower --lr (now {cfg.lr:g}), "
                f"stronger gradient clipping ({clip}), another --seed, or check the inputs for NaN/inf; continue "
                "the saved run with --resume, or change settings in a new --out",
                file=sys.stderr,
                flush=True,
            )
        return 1
    finally:
        stop.uninstall()
    if ctx.main:
        if cfg.model_nir:  # the trained graph, for the framework or chip it came from
            import nir

            from .. import nir as na_nir

            ds = r.r.train_ds
            shape = ds.sample_shape[1:] if ds.kind == "frames" else ds.sample_shape
            try:
                nir.write(out / "model.nir", na_nir.to_nir(r.r.net, torch.zeros(cfg.T, 1, *shape), dt=cfg.nir_dt))
            except OSError as exc:
                print(f"na_cuda.train: writing {out / 'model.nir'} failed: {exc}", file=sys.stderr, flush=True)
                return 1
            print(f"na_cuda.train: the trained graph is {out / 'model.nir'}", flush=True)
        print(report.final_line(r.metrics, out), flush=True)
    return 0
