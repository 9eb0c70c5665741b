"""Train the NA paper's spiking networks: ``python -m na_cuda.train [--preset P] [--method na|stbp|tssl] ...``.

Without arguments it trains the small ``digits`` preset (scikit-learn's 8x8 digits, no download) with NA into
``runs/digits-na`` and prints the test accuracy. Multi-process data parallel training::

    torchrun --nproc_per_node N -m na_cuda.train --preset mnist ...

Recipe of the authors' released code (spec §8; ``main.py`` of
``superrrpotato/Backpropagated-Neighborhood-Aggregation-for-Accurate-Training-of-Spiking-Neural-Networks``):
AdamW with ``betas = (0, 0.999)`` and PyTorch's default ``weight_decay = 0.01`` (lines 231, 272-273);
``ExponentialLR(gamma=0.985)`` stepped once per epoch after training (281-287); ``clip_grad_norm_(params, 1)``
every step (103); weights clamped to [-4, 4] after every step (105); the loss summed over the batch
(``functions/loss_f.py`` line 36); the input image repeated over the T steps (59) then PSC-filtered by the
network (``cnns.py`` line 43, which filters N-MNIST's spike frames as well); predictions = argmax of the
time-summed output PSCs (107-108). NA's layer-wise gradient rescaling is always on in the released NA backward
(``functions/na.py`` lines 90-96); here ``grad_rescale`` (default on, NA only). The released code hard-codes
``lr = 1e-5`` (line 230); the presets use the paper's 5e-4 (appendix A.2).

Outputs in ``--out DIR`` (rank 0 only): ``config.json`` (the resolved config), ``metrics.json``
(``{"epochs": [{"epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "lr", "seconds",
"samples_per_second"}], "best_test_accuracy", "best_epoch"}``; losses are per sample, accuracies fractions in
[0, 1]), ``curves.png`` and ``checkpoint.pt``. Every file is written atomically (a temporary file in DIR, then
``os.replace``); ``checkpoint.pt`` carries a SHA-256 of its content, checked (with every field) on ``--resume``
(na_cuda/checkpoint.py). A run holds an exclusive lock on DIR (``DIR/.lock``, with its pid; a second run on the
same DIR stops with a message; the lock of a killed run is taken over), removes the temporary files killed runs
left, and checks before training that DIR has room for two checkpoints (the old one stays until the new one is
complete) by writing one.

Checkpoints: one after every epoch, and one when SIGINT/SIGTERM arrives: training finishes the current step,
writes a *mid-epoch* checkpoint (the position in the epoch, the partial epoch statistics and every RNG state) and
exits with status 128 + signal number; ``--resume`` continues at the next step and gives the same numbers as an
uninterrupted run (CPU). A second signal aborts at once. A non-finite loss or gradient norm stops training before
the optimiser step with a message naming the epoch and step, keeps the last good checkpoint, and exits with
status 1.

Data parallel: every rank draws the same seeded permutation of the training set per epoch and takes its
contiguous shard of each global batch of ``--batch-size`` samples (a final batch with fewer samples than ranks
is dropped). The loss is summed per rank and scaled so that DDP's gradient average equals the gradient of the
whole global batch, so N processes follow the single-process run up to float rounding. Two exceptions, stated:
``grad_rescale`` computes its factors from each rank's shard (as a per-device rescaling would), and
augmentation/dropout draw per-rank random numbers. Evaluation is sharded over the ranks and summed.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import datetime
import importlib
import json
import math
import os
import random
import shutil
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from . import _validate, checkpoint, losses
from ._files import FolderBusy, FolderLock, atomic_write, open_temp, remove_stale_temps
from .models import ARCHITECTURES, SpikingNet, build_model

__all__ = ["TrainConfig", "PRESETS", "LOSSES", "make_config", "model_from_config", "run", "main"]

#: Losses a preset may name (``na_cuda.losses``): van_rossum (the released "kernel" loss, eq. 5, with the
#: desired train ``target``), spike_count (TSSL-BP ``loss_count``), tet, sdt.
LOSSES = ("van_rossum", "spike_count", "tet", "sdt")
TARGETS = ("na", "tssl")
REDUCTIONS = ("sum", "mean")
CHECKPOINT = "checkpoint.pt"
#: Default of --ddp-timeout: how long a collective waits for a stopped or dead rank before failing (torch: 30 min).
DDP_TIMEOUT_S = 600.0
# Fields that --resume may change; every other field comes from the checkpoint.
RESUMABLE_CHANGES = ("epochs", "device", "data_dir", "out", "progress")
# Metrics that measure time (differ between runs of the same computation).
TIMING_KEYS = ("seconds", "samples_per_second")


@dataclass
class TrainConfig:
    """Everything a run depends on. Presets fill it; every field can be overridden (CLI flag or ``--set``)."""

    preset: str = "digits"
    fidelity: str = "paper"
    dataset: str = "digits"
    arch: str = ARCHITECTURES["digits"]
    # neuron (na_cuda.nn.LIF)
    method: str = "na"
    T: int = 5
    tau_m: float = 5.0
    tau_s: float = 2.0
    threshold: float = 1.0
    first_order: str = "paper"
    dist_power: int = 3
    clip: float = 10.0
    surrogate: str = "rect"
    surrogate_alpha: Optional[float] = None
    backend: str = "auto"
    strict_threshold: bool = False
    grad_rescale: bool = True
    rescale_round: Optional[int] = None
    # network (na_cuda.models.build_model)
    padding: Union[int, list] = 1
    conv_weight_scale: float = 1.0
    linear_weight_scale: float = 1.0
    pool_scale: float = 1.1
    dropout: float = 0.0
    # optimisation
    epochs: int = 30
    batch_size: int = 32
    eval_batch_size: int = 256
    lr: float = 5e-3
    betas: list = field(default_factory=lambda: [0.0, 0.999])
    weight_decay: float = 0.01
    lr_gamma: float = 0.985
    grad_clip: float = 1.0
    weight_clip: float = 4.0
    # loss
    loss: str = "van_rossum"
    target: str = "na"
    loss_reduction: str = "sum"
    target_filters: int = 1
    desired_count: float = 5.0
    undesired_count: float = 0.0
    tet_lamb: float = 0.05
    tet_phi: float = 1.0
    # data
    augment: bool = True
    frame_psc: bool = True
    nmnist_fraction: float = 0.3
    limit_train: Optional[int] = None
    data_dir: Optional[str] = None
    # run
    seed: int = 0
    device: Optional[str] = None
    out: Optional[str] = None
    progress: bool = True


_BASE = dict(T=5, tau_m=5.0, tau_s=2.0, lr=5e-4, loss="van_rossum", target="na", augment=True, dropout=0.0,
             conv_weight_scale=1.0)

#: The paper's settings (appendix A.2; architectures of section 4, padding / weight scales / dropout of the released
#: ``Networks/*.yaml``) and the small ``digits`` demo.
PRESETS: dict[str, dict[str, Any]] = {
    # Small demo: 8x8 digits, ~1 minute on a 2-core CPU.
    "digits": dict(_BASE, dataset="digits", arch=ARCHITECTURES["digits"], padding=1, epochs=30, batch_size=32,
                   lr=5e-3),
    # Appendix A.2.1; Networks/MNIST_CNN.yaml (padding 0, loss "kernel", tau_m 5, tau_s 2).
    "mnist": dict(_BASE, dataset="mnist", arch=ARCHITECTURES["mnist"], padding=0, epochs=200, batch_size=64),
    # "Same as MNIST" (the released FashionMNIST_CNN.yaml is a TSSL-BP config with another network).
    "fashion-mnist": dict(_BASE, dataset="fashion-mnist", arch=ARCHITECTURES["mnist"], padding=0, epochs=200,
                          batch_size=64),
    # Appendix A.2.2 (100 epochs, batch 50, lr 5e-4, no augmentation); section 4.4 (T = 30, the first 30 % of each
    # recording); Networks/NMNIST_CNN.yaml (padding 1 then 0, tau_m 8, tau_s 4, count loss 15 / 3).
    "nmnist": dict(_BASE, dataset="nmnist", arch=ARCHITECTURES["nmnist"], padding=[1, 0], T=30, tau_m=8.0,
                   tau_s=4.0, epochs=100, batch_size=50, loss="spike_count", desired_count=15.0,
                   undesired_count=3.0, augment=False, nmnist_fraction=0.3),
    # Appendix A.2.3 (600 epochs, batch 50, lr 5e-4); Networks/CIFAR10.yaml (padding 1, conv weight_scale 5,
    # dropout 0.2 after every hidden layer, loss "kernel").
    "cifar10-alexnet": dict(_BASE, dataset="cifar10", arch=ARCHITECTURES["alexnet"], padding=1, epochs=600,
                            batch_size=50, conv_weight_scale=5.0, dropout=0.2),
    # The paper reports CifarNet only for STBP; same recipe as AlexNet.
    "cifar10-cifarnet": dict(_BASE, dataset="cifar10", arch=ARCHITECTURES["cifarnet"], padding=1, epochs=600,
                             batch_size=50, conv_weight_scale=5.0, dropout=0.2),
}

#: What ``fidelity`` sets (below the preset, above nothing: explicit overrides still win). "paper" is the NA
#: paper's text (appendix A.1 clip 10, eq. 5's target, H(0) = 1); "released" is the authors' released code
#: (``functions/na.py``: ``clamp(..., -5, 5)``, ``mem > threshold``, the rescale means rounded to 3 decimals by
#: ``update_norm``; ``main.py`` + ``loss_f.py``: the desired train PSC-filtered twice). The released code's
#: hard-coded lr 1e-5 is not part of it: a training step does not depend on lr before the update.
FIDELITY: dict[str, dict[str, Any]] = {
    "paper": dict(strict_threshold=False, clip=10.0, target_filters=1, rescale_round=None),
    "released": dict(strict_threshold=True, clip=5.0, target_filters=2, rescale_round=3),
}

# CLI flag of each field (for error messages); other fields are set with --set FIELD=VALUE.
_FLAGS = {"preset": "--preset", "fidelity": "--fidelity", "method": "--method", "epochs": "--epochs", "batch_size": "--batch-size",
          "lr": "--lr", "T": "--T", "device": "--device", "data_dir": "--data-dir", "out": "--out",
          "limit_train": "--limit-train", "augment": "--no-augment", "seed": "--seed"}


class ConfigError(ValueError):
    """A bad configuration value; the message names the flag or field."""


class NonFiniteLoss(RuntimeError):
    """The loss or the gradient norm became NaN/inf."""


def _flag(name: str) -> str:
    return _FLAGS.get(name, f"--set {name}")


# ----------------------------------------------------------------------------------------------------------------
# Configuration.
# ----------------------------------------------------------------------------------------------------------------
def make_config(preset: str = "digits", **overrides: Any) -> TrainConfig:
    """The preset's config with ``overrides`` applied, validated (``ConfigError`` naming the field)."""
    if preset not in PRESETS:
        raise ConfigError(f"--preset: unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    values = copy.deepcopy(dict(PRESETS[preset], preset=preset))
    fidelity = overrides.get("fidelity", values.get("fidelity", "paper"))
    if fidelity not in FIDELITY:
        raise ConfigError(f"--fidelity: must be one of {', '.join(FIDELITY)}; got {fidelity!r}")
    values.update(FIDELITY[fidelity], fidelity=fidelity)
    for key, value in overrides.items():
        if key not in names:
            raise ConfigError(f"{_flag(key)}: unknown config field {key!r}; fields: {', '.join(sorted(names))}")
        values[key] = copy.deepcopy(value)
    cfg = TrainConfig(**values)
    validate_config(cfg)
    return cfg


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def validate_config(cfg: TrainConfig) -> None:
    """Check every field's type and range; raises ``ConfigError`` naming the flag."""

    def bad(name: str, what: str) -> ConfigError:
        return ConfigError(f"{_flag(name)}: must be {what}; got {getattr(cfg, name)!r}")

    for name in ("T", "epochs", "batch_size", "eval_batch_size"):
        if not _is_int(getattr(cfg, name)) or getattr(cfg, name) < 1:
            raise bad(name, "an int >= 1")
    if not _is_int(cfg.seed) or cfg.seed < 0:
        raise bad("seed", "an int >= 0")
    if cfg.rescale_round is not None and (not _is_int(cfg.rescale_round) or cfg.rescale_round < 0):
        raise bad("rescale_round", "null (exact) or an int >= 0 (3 = the released code)")
    if cfg.limit_train is not None and (not _is_int(cfg.limit_train) or cfg.limit_train < 1):
        raise bad("limit_train", "an int >= 1 (number of training samples)")
    if not _is_real(cfg.lr) or cfg.lr <= 0:
        raise bad("lr", "a finite number > 0")
    for name in ("weight_decay", "grad_clip", "weight_clip", "desired_count", "undesired_count"):
        if not _is_real(getattr(cfg, name)) or getattr(cfg, name) < 0:
            raise bad(name, "a finite number >= 0 (0 turns clipping off)" if "clip" in name else "a finite number >= 0")
    for name in ("conv_weight_scale", "linear_weight_scale", "pool_scale"):
        if not _is_real(getattr(cfg, name)) or getattr(cfg, name) <= 0:
            raise bad(name, "a finite number > 0")
    if not _is_real(cfg.lr_gamma) or not 0 < cfg.lr_gamma <= 1:
        raise bad("lr_gamma", "a number in (0, 1]")
    if not _is_real(cfg.dropout) or not 0 <= cfg.dropout < 1:
        raise bad("dropout", "a number in [0, 1)")
    if not _is_real(cfg.tet_lamb) or not 0 <= cfg.tet_lamb <= 1:
        raise bad("tet_lamb", "a number in [0, 1]")
    if not _is_real(cfg.tet_phi):
        raise bad("tet_phi", "a finite number")
    if not _is_real(cfg.nmnist_fraction) or not 0 < cfg.nmnist_fraction <= 1:
        raise bad("nmnist_fraction", "a number in (0, 1]")
    if (not isinstance(cfg.betas, (list, tuple)) or len(cfg.betas) != 2
            or not all(_is_real(b) and 0 <= b < 1 for b in cfg.betas)):
        raise bad("betas", "two numbers in [0, 1), e.g. [0, 0.999]")
    cfg.betas = [float(b) for b in cfg.betas]
    if not (_is_int(cfg.padding) and cfg.padding >= 0) and not (
            isinstance(cfg.padding, (list, tuple)) and all(_is_int(p) and p >= 0 for p in cfg.padding)):
        raise bad("padding", "an int >= 0 or a list with one int >= 0 per conv layer")
    if isinstance(cfg.padding, tuple):
        cfg.padding = list(cfg.padding)
    for name in ("grad_rescale", "augment", "frame_psc", "progress", "strict_threshold"):
        if not isinstance(getattr(cfg, name), bool):
            raise bad(name, "true or false")
    for name, choices in (("loss", LOSSES), ("target", TARGETS), ("loss_reduction", REDUCTIONS),
                          ("method", _validate.METHODS), ("fidelity", tuple(FIDELITY)), ("target_filters", (1, 2))):
        if getattr(cfg, name) not in choices:
            raise bad(name, f"one of {', '.join(choices)}")
    for name in ("dataset", "arch"):
        if not isinstance(getattr(cfg, name), str) or not getattr(cfg, name):
            raise bad(name, "a non-empty string")
    for name in ("data_dir", "out"):
        if getattr(cfg, name) is not None and not isinstance(getattr(cfg, name), str):
            raise bad(name, "a path")
    if cfg.device is not None and (not isinstance(cfg.device, str) or cfg.device.split(":")[0] not in ("cpu", "cuda")):
        raise bad("device", "cpu or cuda")
    if cfg.loss == "van_rossum" and cfg.target == "tssl" and cfg.T % 5:
        raise ConfigError(f"--set target: the TSSL-BP target (0, 1, 1, 1, 1) needs T a multiple of 5; got T = {cfg.T}")
    try:
        _validate.neuron_params(tau_m=cfg.tau_m, tau_s=cfg.tau_s, threshold=cfg.threshold,
                                strict_threshold=cfg.strict_threshold, output="psc",
                                method=cfg.method, first_order=cfg.first_order, dist_power=cfg.dist_power,
                                clip=cfg.clip, surrogate=cfg.surrogate, surrogate_alpha=cfg.surrogate_alpha,
                                detach_reset=True, backend=cfg.backend)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"neuron parameters ({_flag('method')}, --set tau_m/tau_s/...): {exc}") from None
    try:
        from .models import parse_architecture

        layers = parse_architecture(cfg.arch)
    except ValueError as exc:
        raise ConfigError(f"--set arch: {exc}") from None
    n_conv = sum(layer.kind == "conv" for layer in layers)
    if isinstance(cfg.padding, list) and len(cfg.padding) != n_conv:
        raise ConfigError(f"--set padding: {cfg.padding} has {len(cfg.padding)} entries but the arch {cfg.arch!r} has "
                          f"{n_conv} conv layer(s); give one int for all or one per conv")


def model_from_config(cfg: TrainConfig, input_shape: Sequence[int]) -> SpikingNet:
    """The network of ``cfg`` for per-sample inputs ``input_shape`` ((C, H, W) or, for frames, (2, 34, 34))."""
    neuron = dict(tau_m=cfg.tau_m, tau_s=cfg.tau_s, threshold=cfg.threshold, strict_threshold=cfg.strict_threshold,
                  backend=cfg.backend)
    if cfg.method == "na":
        neuron.update(first_order=cfg.first_order, dist_power=cfg.dist_power, clip=cfg.clip)
    elif cfg.method == "stbp":
        neuron.update(surrogate=cfg.surrogate, surrogate_alpha=cfg.surrogate_alpha)
    return build_model(cfg.arch, input_shape, method=cfg.method, padding=cfg.padding,
                       conv_weight_scale=cfg.conv_weight_scale, linear_weight_scale=cfg.linear_weight_scale,
                       pool_scale=cfg.pool_scale, dropout=cfg.dropout,
                       grad_rescale=cfg.grad_rescale and cfg.method == "na", rescale_round=cfg.rescale_round,
                       **neuron)


def loss_sum(cfg: TrainConfig, outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The configured loss of a batch, summed over its samples (0-dim)."""
    T, B, C = outputs.shape
    if cfg.loss == "van_rossum":
        if cfg.target == "na":
            target = losses.na_desired_spikes(labels, C, T, dtype=outputs.dtype)
        else:
            target = losses.tssl_desired_spikes(labels, C, T, dtype=outputs.dtype)
        return losses.van_rossum(outputs, target, cfg.tau_s, reduction="sum", target_filters=cfg.target_filters)
    if cfg.loss == "spike_count":
        return losses.spike_count(outputs, labels, cfg.desired_count, cfg.undesired_count, reduction="sum")
    if cfg.loss == "tet":
        return losses.tet(outputs, labels, cfg.tet_lamb, cfg.tet_phi) * B
    return losses.sdt(outputs, labels) * B


# ----------------------------------------------------------------------------------------------------------------
# Small helpers: distributed context, atomic files, RNG states, plots.
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class _Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def _dist_from_env() -> _Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    return _Dist(rank=int(os.environ.get("RANK", "0")), world=world, local_rank=int(os.environ.get("LOCAL_RANK", "0")))


def _write_json(path: Path, obj: Any) -> None:
    atomic_write(path, lambda f: f.write(json.dumps(obj, indent=2) + "\n"), mode="w")


def _rng_state(aug_gen: torch.Generator, device: torch.device) -> dict[str, Any]:
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *map(float, np_state[2:])],
        "augment": aug_gen.get_state(),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Any], aug_gen: torch.Generator, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(cached)))
    aug_gen.set_state(state["augment"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _plot_curves(path: Path, epochs: list[dict[str, Any]], title: str) -> None:
    """Loss and accuracy per epoch (Agg canvas, no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    x = [e["epoch"] for e in epochs]
    fig = Figure(figsize=(10, 4), layout="constrained")
    FigureCanvasAgg(fig)
    ax_loss, ax_acc = fig.subplots(1, 2)
    ax_loss.plot(x, [e["train_loss"] for e in epochs], "o-", label="train")
    ax_loss.plot(x, [e["test_loss"] for e in epochs], "s-", label="test")
    ax_loss.set(xlabel="epoch", ylabel="loss per sample", title="loss")
    ax_acc.plot(x, [100 * e["train_accuracy"] for e in epochs], "o-", label="train")
    ax_acc.plot(x, [100 * e["test_accuracy"] for e in epochs], "s-", label="test")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))


class _StopRequest:
    """SIGINT/SIGTERM handler: the first signal asks training to stop after the current step, a second one aborts."""

    def __init__(self) -> None:
        self.signum: Optional[int] = None
        self._previous: dict[int, Any] = {}

    def __call__(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        print(f"\nna_cuda.train: received {signal.Signals(signum).name}: finishing the current step and writing a "
              "checkpoint (send it again to abort at once)", file=sys.stderr, flush=True)

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._previous[s] = signal.signal(s, self)

    def uninstall(self) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()


# ----------------------------------------------------------------------------------------------------------------
# Training.
# ----------------------------------------------------------------------------------------------------------------
def _epoch_batches(seed: int, epoch: int, n: int, batch_size: int, world: int) -> list[torch.Tensor]:
    """Global batches (positions into the training subset) of an epoch, from a permutation seeded by (seed, epoch).
    Batches with fewer samples than ranks are dropped (each rank needs at least one sample)."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch + 1)
    perm = torch.randperm(n, generator=g)
    return [b for b in perm.split(batch_size) if b.numel() >= world]


def _resolve_device(cfg: TrainConfig, ctx: _Dist) -> torch.device:
    name = cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError("--device: cuda was requested but torch sees no CUDA GPU (torch "
                              f"{torch.__version__}); use --device cpu")
        if ctx.active:
            torch.cuda.set_device(ctx.local_rank)
            return torch.device("cuda", ctx.local_rank)
        return torch.device(name)
    return torch.device("cpu")


def _load_data(cfg: TrainConfig, ctx: _Dist, device: torch.device,
               datasets: Optional[tuple[Any, Any]]) -> tuple[Any, Any, Any]:
    """(the na_cuda.data module, train split, test split). Rank 0 loads (and downloads) first, the others after it."""
    try:
        data = importlib.import_module("na_cuda.data")
    except ImportError as exc:
        raise RuntimeError(f"na_cuda.train needs the na_cuda.data package: {exc}") from exc
    if datasets is not None:
        return data, datasets[0], datasets[1]
    if cfg.dataset not in data.DATASETS:
        raise ConfigError(f"--set dataset: unknown dataset {cfg.dataset!r}; choose one of {', '.join(data.DATASETS)}")
    kw: dict[str, Any] = dict(T=cfg.T, fraction=cfg.nmnist_fraction) if cfg.dataset == "nmnist" else {}
    splits = []
    for turn in ((True,) if not ctx.active else (True, False)):
        if ctx.main == turn:
            splits = [data.load(cfg.dataset, train, cfg.data_dir, **kw) for train in (True, False)]
        if ctx.active:
            dist.barrier()
    if device.type == "cuda":  # keep the compact storage on the GPU: batches are gathered there
        for ds in splits:
            ds.to(device)
    return data, splits[0], splits[1]


class _Run:
    """State of one training run (one per process)."""

    def __init__(self, cfg: TrainConfig, ctx: _Dist, datasets: Optional[tuple[Any, Any]],
                 loss_hook: Optional[Callable[[int, int, torch.Tensor], torch.Tensor]]) -> None:
        self.cfg, self.ctx, self.loss_hook = cfg, ctx, loss_hook
        self.out = Path(cfg.out)
        self.device = _resolve_device(cfg, ctx)
        self.data, self.train_ds, self.test_ds = _load_data(cfg, ctx, self.device, datasets)
        for ds, split in ((self.train_ds, "train"), (self.test_ds, "test")):
            if ds.kind == "frames" and ds.sample_shape[0] != cfg.T:
                raise ConfigError(f"--T: the {split} frames have T = {ds.sample_shape[0]} steps but T = {cfg.T}")
        self.input_shape = tuple(self.train_ds.sample_shape[1:] if self.train_ds.kind == "frames"
                                 else self.train_ds.sample_shape)
        n = len(self.train_ds)
        if cfg.limit_train is not None and cfg.limit_train < n:
            g = torch.Generator().manual_seed(cfg.seed)
            self.train_index = torch.randperm(n, generator=g)[: cfg.limit_train].sort().values
        else:
            self.train_index = torch.arange(n)
        if len(self.train_index) < ctx.world:
            raise ConfigError(f"--limit-train: {len(self.train_index)} training samples for {ctx.world} processes")

        # Model and optimiser: the same initial weights on every rank (seeded), then per-rank RNG streams.
        random.seed(cfg.seed)
        np.random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        try:
            self.net = model_from_config(cfg, self.input_shape).to(self.device)
        except ValueError as exc:  # e.g. a conv that does not fit the dataset's images
            raise ConfigError(f"--set arch / --set padding: {exc}") from None
        if self.net.num_classes != self.train_ds.num_classes:
            raise ConfigError(f"--set arch: the output layer has {self.net.num_classes} neurons but "
                              f"{cfg.dataset} has {self.train_ds.num_classes} classes")
        torch.manual_seed(cfg.seed + ctx.rank)
        self.aug_gen = torch.Generator(device=self.device).manual_seed(cfg.seed + 1_000_003 * (ctx.rank + 1))
        if ctx.active:
            from torch.nn.parallel import DistributedDataParallel

            self.model: nn.Module = DistributedDataParallel(
                self.net, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        else:
            self.model = self.net
        self.params = [p for p in self.net.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.params, lr=cfg.lr, betas=tuple(cfg.betas),
                                           weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.ExponentialLR(self.optimizer, gamma=cfg.lr_gamma)
        self.augment = (self.data.augmentation(cfg.dataset)
                        if cfg.augment and self.train_ds.kind == "image" else None)
        self.metrics: dict[str, Any] = {"epochs": [], "best_test_accuracy": None, "best_epoch": None}
        self.epoch = 0  # epochs completed
        self.step = 0  # steps completed in epoch `self.epoch`
        self.partial = dict(loss=0.0, correct=0.0, n=0.0, seconds=0.0)
        self.saved_at: Optional[str] = None  # where the checkpoint on disk stands, for messages

    def position(self) -> str:
        return f"epoch {self.epoch + 1}, step {self.step}" if self.step else f"after epoch {self.epoch}"

    # -- input ---------------------------------------------------------------------------------------------------
    def prepare(self, x: torch.Tensor, train: bool) -> torch.Tensor:
        """Batch from the dataset -> network input [T, B, ...]."""
        if self.train_ds.kind == "frames":
            return losses.psc(x, self.cfg.tau_s) if self.cfg.frame_psc else x
        if train and self.augment is not None:
            x = self.augment(x, self.aug_gen)
        return self.data.encode_static(self.data.normalize(x, self.cfg.dataset), self.cfg.T, self.cfg.tau_s)

    # -- checkpoints ---------------------------------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        """Collective (every rank's RNG state); rank 0 writes DIR/checkpoint.pt atomically."""
        state = _rng_state(self.aug_gen, self.device)
        if self.ctx.active:
            states: list[Any] = [None] * self.ctx.world
            dist.all_gather_object(states, state)
        else:
            states = [state]
        if not self.ctx.main:
            return
        checkpoint.save(self.out / CHECKPOINT, self._payload(states))
        self.saved_at = self.position()

    def _payload(self, states: list[Any]) -> dict[str, Any]:
        """The checkpoint's fields (na_cuda/checkpoint.py) with the RNG states ``states`` of every rank."""
        return {
            "config": asdict(self.cfg),
            "model": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "partial": dict(self.partial),
            "metrics": self.metrics,
            "rng": states,
            "world_size": self.ctx.world,
        }

    def check_room(self) -> None:
        """Rank 0, before training: DIR must have room for two checkpoints (the old one stays until the new one is
        complete) plus the reports; one checkpoint-sized file is written and removed, so a full disk, a quota or a
        read-only DIR fails now with a message, not after the first epoch."""
        data = checkpoint.encode(self._payload([_rng_state(self.aug_gen, self.device)]))
        # AdamW adds two moments per parameter after the first step.
        size = len(data) + (0 if self.optimizer.state else 2 * sum(p.numel() * p.element_size() for p in self.params))
        need = 2 * size + (1 << 20)
        free = shutil.disk_usage(self.out).free
        if free < need:
            raise ConfigError(f"--out: {self.out} has {free / 2**20:.1f} MiB free; this run needs about "
                              f"{need / 2**20:.1f} MiB (two checkpoints of {size / 2**20:.1f} MiB and the reports); "
                              "free some space or choose another --out")
        fd, tmp = open_temp(self.out / CHECKPOINT)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data + bytes(size - len(data)))
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            raise ConfigError(f"--out: cannot write a {size / 2**20:.1f} MiB checkpoint to {self.out}: {exc}; free "
                              "some space or choose another --out") from None
        finally:
            tmp.unlink(missing_ok=True)

    def load_checkpoint(self, ckpt: dict[str, Any], path: Path) -> None:
        """Restore a checkpoint that passed ``checkpoint.load``; raises ConfigError if it does not fit this run."""
        n_steps = len(_epoch_batches(self.cfg.seed, int(ckpt["epoch"]), len(self.train_index), self.cfg.batch_size,
                                     self.ctx.world))
        if ckpt["step"] > n_steps:
            raise ConfigError(f"--resume: {path}: field `step` = {ckpt['step']} is not a step of an epoch of "
                              f"{n_steps} steps")
        try:
            self.net.load_state_dict(ckpt["model"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
            self.scheduler.load_state_dict(ckpt["scheduler"])
        except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"--resume: {path}: the saved state does not fit this network and optimizer: "
                              f"{first}") from None
        self.epoch, self.step = int(ckpt["epoch"]), int(ckpt["step"])
        self.partial = dict(ckpt["partial"])
        self.metrics = ckpt["metrics"]
        self.saved_at = self.position()
        states = ckpt["rng"]
        if len(states) != self.ctx.world and self.ctx.main:
            print(f"na_cuda.train: the checkpoint was written by {len(states)} process(es), this run has "
                  f"{self.ctx.world}: ranks without a saved RNG state keep their fresh seeds", file=sys.stderr)
        if self.ctx.rank < len(states):
            _set_rng_state(states[self.ctx.rank], self.aug_gen, self.device)

    # -- steps ---------------------------------------------------------------------------------------------------
    def _all_sum(self, values: list[torch.Tensor]) -> torch.Tensor:
        t = torch.stack([v.detach().to(self.device, torch.float64).reshape(()) for v in values])
        if self.ctx.active:
            dist.all_reduce(t)
        return t

    def any_stop(self, stop: _StopRequest) -> bool:
        """Whether any rank received a stop signal (collective)."""
        flag = torch.tensor(float(stop.signum is not None))
        return bool(self._all_sum([flag])[0].item() > 0) if self.ctx.active else stop.signum is not None

    def evaluate(self) -> tuple[float, float]:
        """(loss per sample, accuracy) on the test set, sharded over the ranks."""
        self.net.eval()
        n = len(self.test_ds)
        shard = torch.arange(n).tensor_split(self.ctx.world)[self.ctx.rank]
        total = torch.zeros(3, dtype=torch.float64, device=self.device)
        with torch.no_grad():
            for idx in shard.split(self.cfg.eval_batch_size):
                x, y = self.test_ds.batch(idx, self.device)
                out = self.net(self.prepare(x, train=False))
                total[0] += loss_sum(self.cfg, out, y).double()
                total[1] += (losses.spike_count_predictions(out) == y).sum()
                total[2] += y.numel()
        if self.ctx.active:
            dist.all_reduce(total)
        loss, correct, count = total.tolist()
        return loss / count, correct / count

    def train_epoch(self, stop: _StopRequest) -> bool:
        """Runs the rest of epoch ``self.epoch``; returns False if a stop signal ended it early."""
        cfg, ctx = self.cfg, self.ctx
        batches = _epoch_batches(cfg.seed, self.epoch, len(self.train_index), cfg.batch_size, ctx.world)
        denom = 1.0 if cfg.loss_reduction == "sum" else None
        self.model.train()
        bar = None
        if ctx.main and cfg.progress:
            from tqdm import tqdm

            bar = tqdm(total=len(batches), initial=self.step, desc=f"epoch {self.epoch + 1}/{cfg.epochs}",
                       unit="step", dynamic_ncols=True, leave=False, file=sys.stderr)
        try:
            while self.step < len(batches):
                t0 = time.perf_counter()
                batch = self.train_index[batches[self.step]]
                shard = batch.tensor_split(ctx.world)[ctx.rank]
                x, y = self.train_ds.batch(shard, self.device)
                out = self.model(self.prepare(x, train=True))
                loss = loss_sum(cfg, out, y)
                if self.loss_hook is not None:
                    loss = self.loss_hook(self.epoch, self.step, loss)
                scale = ctx.world / (denom if denom is not None else float(batch.numel()))
                self.optimizer.zero_grad(set_to_none=True)
                (loss * scale).backward()
                gnorm = torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip if cfg.grad_clip > 0 else math.inf)
                correct = (losses.spike_count_predictions(out) == y).sum()
                stats = self._all_sum([loss, correct, torch.tensor(float(y.numel())), gnorm,
                                       torch.tensor(float(stop.signum is not None))])
                loss_v, correct_v, n_v, gnorm_v, stop_v = stats.tolist()
                if not (math.isfinite(loss_v) and math.isfinite(gnorm_v)):
                    what = f"loss {loss_v}" if not math.isfinite(loss_v) else f"gradient norm {gnorm_v}"
                    raise NonFiniteLoss(f"non-finite {what} at epoch {self.epoch + 1}, step {self.step + 1} "
                                        f"(of {len(batches)})")
                self.optimizer.step()
                if cfg.weight_clip > 0:
                    self.net.clamp_weights_(cfg.weight_clip)
                self.step += 1
                p = self.partial
                p["loss"] += loss_v
                p["correct"] += correct_v
                p["n"] += n_v
                dt = time.perf_counter() - t0
                p["seconds"] += dt
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{p['loss'] / p['n']:.4f}", acc=f"{100 * p['correct'] / p['n']:.1f}%",
                                    sps=f"{n_v / max(dt, 1e-9):.0f}")
                if stop_v > 0:
                    return False
        finally:
            if bar is not None:
                bar.close()
        return True

    def finish_epoch(self) -> dict[str, Any]:
        """Scheduler step, evaluation, metrics; moves to the next epoch."""
        t0 = time.perf_counter()
        lr = self.optimizer.param_groups[0]["lr"]
        self.scheduler.step()
        test_loss, test_acc = self.evaluate()
        p = self.partial
        row = {
            "epoch": self.epoch + 1,
            "train_loss": p["loss"] / p["n"],
            "train_accuracy": p["correct"] / p["n"],
            "test_loss": test_loss,
            "test_accuracy": test_acc,
            "lr": lr,
            "seconds": p["seconds"] + time.perf_counter() - t0,
            "samples_per_second": p["n"] / max(p["seconds"], 1e-9),
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
        if self.ctx.main:
            _write_json(self.out / "metrics.json", self.metrics)
            title = f"{self.cfg.preset}: {self.cfg.arch}, {self.cfg.method}, T = {self.cfg.T}"
            _plot_curves(self.out / "curves.png", self.metrics["epochs"], title)


# ----------------------------------------------------------------------------------------------------------------
# Entry points.
# ----------------------------------------------------------------------------------------------------------------
def run(cfg: TrainConfig, *, resume: bool = False, overwrite: bool = False,
        datasets: Optional[tuple[Any, Any]] = None,
        loss_hook: Optional[Callable[[int, int, torch.Tensor], torch.Tensor]] = None,
        ddp_timeout: float = DDP_TIMEOUT_S) -> int:
    """Train with ``cfg`` (validated); returns the process exit status (0 done, 1 non-finite loss,
    128 + signum when stopped by a signal).

    ``resume``: continue from ``cfg.out/checkpoint.pt`` (``cfg`` must equal the saved config except for
    ``RESUMABLE_CHANGES``; use ``resume_config``). ``overwrite``: start afresh even if a checkpoint exists.
    ``datasets``: ``(train, test)`` objects following the ``na_cuda.data.Dataset`` contract instead of
    ``na_cuda.data.load`` (tests). ``loss_hook(epoch, step, loss) -> loss``: applied to every training loss
    before backward (tests, e.g. to inject a NaN); epoch and step are 0-based. ``ddp_timeout``: seconds a
    collective of a distributed run waits for the other ranks before it fails (torch's default is 30 minutes).
    """
    validate_config(cfg)
    ctx = _dist_from_env()
    if cfg.out is None:
        cfg.out = f"runs/{cfg.preset}-{cfg.method}"
    out = Path(cfg.out)
    ckpt_path = out / CHECKPOINT
    if not resume and ckpt_path.exists() and not overwrite:
        raise ConfigError(f"--out: {out} already holds a checkpoint; pass --resume to continue it, --overwrite to "
                          "start afresh, or another --out")
    initialised_here = False
    rc: Optional[int] = None
    try:
        if ctx.active and not dist.is_initialized():
            use_cuda = (cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda")
            dist.init_process_group("nccl" if use_cuda else "gloo", timeout=datetime.timedelta(seconds=ddp_timeout))
            initialised_here = True
        rc = _train(cfg, ctx, resume=resume, overwrite=overwrite, datasets=datasets, loss_hook=loss_hook)
        return rc
    finally:
        if initialised_here:
            if rc is not None:  # every rank returned normally: leave together (gloo aborts on an early teardown)
                dist.barrier()
            dist.destroy_process_group()


def _train(cfg: TrainConfig, ctx: _Dist, *, resume: bool, overwrite: bool, datasets: Optional[tuple[Any, Any]],
           loss_hook: Optional[Callable[[int, int, torch.Tensor], torch.Tensor]]) -> int:
    out = Path(cfg.out)
    _resolve_device(cfg, ctx)  # sets this rank's CUDA device before the first collective
    lock = FolderLock(out)
    error = None
    if ctx.main:
        try:
            out.mkdir(parents=True, exist_ok=True)
            lock.acquire()
        except (FolderBusy, OSError) as exc:
            error = f"--out: {exc}; wait for that run to end or choose another --out"
    _all_ranks_raise(ctx, error)
    try:
        return _train_locked(cfg, ctx, resume=resume, overwrite=overwrite, datasets=datasets, loss_hook=loss_hook)
    finally:
        lock.release()


def _all_ranks_raise(ctx: _Dist, error: Optional[str]) -> None:
    """Every rank raises ConfigError when rank 0 reports ``error`` (a collective in a distributed run), so that no
    rank is left waiting for one that stopped."""
    if ctx.active:
        box = [error]
        dist.broadcast_object_list(box, src=0)  # NCCL: on the current device, which _resolve_device set
        error = box[0]
    if error:
        raise ConfigError(error if ctx.main else f"(rank {ctx.rank}) rank 0 stopped: {error}")


def _train_locked(cfg: TrainConfig, ctx: _Dist, *, resume: bool, overwrite: bool,
                  datasets: Optional[tuple[Any, Any]],
                  loss_hook: Optional[Callable[[int, int, torch.Tensor], torch.Tensor]]) -> int:
    out = Path(cfg.out)
    ckpt_path = out / CHECKPOINT
    if ctx.main:
        for tmp in remove_stale_temps(out):
            print(f"na_cuda.train: removed {tmp}, left by a killed run", file=sys.stderr, flush=True)
        if overwrite and not resume:
            for name in (CHECKPOINT, "metrics.json", "curves.png"):
                (out / name).unlink(missing_ok=True)
    r = _Run(cfg, ctx, datasets, loss_hook)
    if resume:  # every rank reads the file, so every rank stops on a bad one
        try:  # to the CPU: RNG states must be CPU tensors; load_state_dict moves weights and optimiser state
            r.load_checkpoint(checkpoint.load(ckpt_path), ckpt_path)
        except checkpoint.CheckpointError as exc:
            raise ConfigError(f"--resume: {exc}") from None
    error = None
    if ctx.main:
        try:
            r.check_room()
        except ConfigError as exc:
            error = str(exc)
    _all_ranks_raise(ctx, error)
    if ctx.main:
        _write_json(out / "config.json", asdict(cfg))
        where = f"epoch {r.epoch + 1}, step {r.step + 1}" if r.step else f"epoch {r.epoch + 1}"
        print(f"na_cuda.train: {cfg.preset} ({cfg.arch}, method {cfg.method}, T = {cfg.T}) on {r.device}"
              + (f" x {ctx.world} processes" if ctx.active else "")
              + f", {len(r.train_index)} train / {len(r.test_ds)} test samples, "
              + (f"resuming at {where}" if resume else "from scratch") + f", output {out}\n{r.net.describe()}",
              flush=True)
    stop = _StopRequest()
    stop.install()
    try:
        while r.epoch < cfg.epochs:
            if not r.train_epoch(stop):
                r.save_checkpoint()
                if ctx.main:
                    print(f"na_cuda.train: stopped at epoch {r.epoch + 1}, step {r.step}; checkpoint written to "
                          f"{ckpt_path}; continue with --resume", file=sys.stderr, flush=True)
                return 128 + int(stop.signum or signal.SIGTERM)
            row = r.finish_epoch()
            r.save_checkpoint()
            r.write_reports()
            if ctx.main:
                print(f"epoch {row['epoch']}/{cfg.epochs}: train loss {row['train_loss']:.4f} "
                      f"acc {100 * row['train_accuracy']:.2f}% | test loss {row['test_loss']:.4f} "
                      f"acc {100 * row['test_accuracy']:.2f}% | lr {row['lr']:.3g} | {row['seconds']:.1f} s "
                      f"({row['samples_per_second']:.0f} samples/s)", flush=True)
            if r.any_stop(stop) and r.epoch < cfg.epochs:
                if ctx.main:
                    print(f"na_cuda.train: stopped after epoch {r.epoch}; checkpoint written to {ckpt_path}; "
                          "continue with --resume", file=sys.stderr, flush=True)
                return 128 + int(stop.signum or signal.SIGTERM)
    except NonFiniteLoss as exc:
        if ctx.main:
            kept = (f"the last good checkpoint ({r.saved_at}) is kept at {ckpt_path}" if r.saved_at
                    else "no checkpoint was written")
            clip = f"--set grad_clip=<smaller> (now {cfg.grad_clip:g})" if cfg.grad_clip > 0 else "--set grad_clip=1"
            print(f"na_cuda.train: {exc}; training stopped, {kept}. Try a lower --lr (now {cfg.lr:g}), "
                  f"stronger gradient clipping ({clip}), another --seed, or check the inputs for NaN/inf; continue "
                  "the saved run with --resume, or change settings in a new --out", file=sys.stderr, flush=True)
        return 1
    finally:
        stop.uninstall()
    if ctx.main:
        m = r.metrics
        last = m["epochs"][-1]["test_accuracy"] if m["epochs"] else float("nan")
        best = m["best_test_accuracy"] if m["best_test_accuracy"] is not None else float("nan")
        print(f"test accuracy: {100 * last:.2f}% (best {100 * best:.2f}% at epoch {m['best_epoch']}); metrics in "
              f"{out / 'metrics.json'}", flush=True)
    return 0


def resume_config(out: Union[str, Path], explicit: dict[str, Any]) -> TrainConfig:
    """The config saved in ``out/checkpoint.pt`` with the allowed ``explicit`` changes applied; raises
    ``ConfigError`` naming a flag that tries to change anything else."""
    path = Path(out) / CHECKPOINT
    if not path.exists():
        raise ConfigError(f"--resume: no checkpoint at {path}; run without --resume to start")
    try:
        values = checkpoint.load(path)["config"]
    except checkpoint.CheckpointError as exc:
        raise ConfigError(f"--resume: {exc}") from None
    for key, value in explicit.items():
        if key in RESUMABLE_CHANGES:
            values[key] = value
        elif value != values.get(key):
            raise ConfigError(f"{_flag(key)}: {value!r} differs from the checkpoint's {values.get(key)!r}; --resume "
                              f"continues the saved run (only {', '.join(RESUMABLE_CHANGES)} may change)")
    values["out"] = str(out)
    unknown = sorted(set(values) - {f.name for f in dataclasses.fields(TrainConfig)})
    if unknown:
        raise ConfigError(f"--resume: {path}: field `config` has unknown entries {unknown}")
    cfg = TrainConfig(**values)
    try:
        validate_config(cfg)
    except ConfigError as exc:
        raise ConfigError(f"--resume: {path}: field `config`: {exc}") from None
    return cfg


def _parse_value(text: str) -> Any:
    """--set VALUE: JSON (numbers, true/false/null, [lists]) or a plain string."""
    lowered = {"true": True, "false": False, "none": None, "null": None}
    if text.lower() in lowered:
        return lowered[text.lower()]
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an int >= `minimum`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an int >= {minimum}; got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an int >= {minimum}; got {value}")
        return value

    return parse


_positive_int = _int_at_least(1)
_nonneg_int = _int_at_least(0)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0; got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a finite number > 0; got {text!r}")
    return value


def _device(text: str) -> str:
    if text.split(":")[0] not in ("cpu", "cuda") or (":" in text and not text.split(":", 1)[1].isdigit()):
        raise argparse.ArgumentTypeError(f"expected cpu, cuda or cuda:N; got {text!r}")
    return text


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m na_cuda.train",
        description="Train a spiking network with NA (or STBP / TSSL-BP). Without arguments: the digits demo.",
        epilog="Presets: " + "; ".join(f"{k}: {v['arch']}, {v['epochs']} epochs, batch {v['batch_size']}, "
                                       f"lr {v['lr']:g}" for k, v in PRESETS.items())
        + ". Any config field: --set FIELD=VALUE (e.g. --set dropout=0.2 --set padding=[1,0]).",
    )
    p.add_argument("--preset", choices=list(PRESETS), default=None, help="network and recipe (default: digits)")
    p.add_argument("--method", choices=list(_validate.METHODS), default=None, help="training rule (default: na)")
    p.add_argument("--fidelity", choices=list(FIDELITY), default=None,
                   help="paper (default: the paper's text) or released (the authors' code: clip 5, u > threshold, "
                        "rounded rescale means, double-filtered target)")
    p.add_argument("--epochs", type=_positive_int, default=None)
    p.add_argument("--batch-size", type=_positive_int, default=None, help="global batch size (split over ranks)")
    p.add_argument("--lr", type=_positive_float, default=None)
    p.add_argument("--T", type=_positive_int, default=None, help="time steps")
    p.add_argument("--device", type=_device, default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument("--data-dir", default=None, help="dataset directory (default: $NA_CUDA_DATA or ~/.cache/na_cuda)")
    p.add_argument("--out", default=None, help="output directory (default: runs/<preset>-<method>)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--overwrite", action="store_true", help="start afresh even if OUT holds a checkpoint")
    p.add_argument("--limit-train", type=_positive_int, default=None, metavar="K",
                   help="train on a fixed random subset of K samples")
    p.add_argument("--no-augment", action="store_true", help="no data augmentation")
    p.add_argument("--seed", type=_nonneg_int, default=None)
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    p.add_argument("--ddp-timeout", type=_positive_float, default=DDP_TIMEOUT_S, metavar="SECONDS",
                   help="distributed runs: how long a rank waits for a stopped or dead one before failing "
                        f"(default {DDP_TIMEOUT_S:g})")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override any config field (repeatable)")
    return p


def main(argv: Optional[Sequence[str]] = None, *, datasets: Optional[tuple[Any, Any]] = None,
         loss_hook: Optional[Callable[[int, int, torch.Tensor], torch.Tensor]] = None) -> int:
    """CLI entry point; returns the exit status. ``datasets`` and ``loss_hook``: see ``run`` (for tests)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    explicit: dict[str, Any] = {}
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    for item in args.set:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            parser.error(f"argument --set: expected FIELD=VALUE; got {item!r}")
        if key not in names:
            parser.error(f"argument --set: unknown field {key!r}; fields: {', '.join(sorted(names))}")
        explicit[key] = _parse_value(text.strip())
    for name, value in (("method", args.method), ("fidelity", args.fidelity), ("epochs", args.epochs), ("batch_size", args.batch_size),
                        ("lr", args.lr), ("T", args.T), ("device", args.device), ("data_dir", args.data_dir),
                        ("out", args.out), ("limit_train", args.limit_train), ("seed", args.seed)):
        if value is not None:
            explicit[name] = value
    if args.no_augment:
        explicit["augment"] = False
    if args.no_progress:
        explicit["progress"] = False
    preset = args.preset or explicit.pop("preset", None) or "digits"
    try:
        if args.resume:
            if args.overwrite:
                raise ConfigError("--resume and --overwrite exclude each other")
            method = explicit.get("method", PRESETS[preset].get("method", "na"))
            out = explicit.get("out") or f"runs/{preset}-{method}"
            if args.preset is not None:
                explicit["preset"] = preset
            cfg = resume_config(out, explicit)
        else:
            cfg = make_config(preset, **explicit)
        return run(cfg, resume=args.resume, overwrite=args.overwrite, datasets=datasets, loss_hook=loss_hook,
                   ddp_timeout=args.ddp_timeout)
    except ConfigError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
