"""What one training step computes (spec §8, the released code's recipe): the device, the data, the network built
from the config, AdamW + ExponentialLR, the batch order, the input encoding and the loss. :func:`setup` returns
them as a :class:`Recipe`, which the training loop (``loop.py``) and experiments (``na_cuda.experiments.mp_dist``)
drive; it creates nothing on disk except downloads into the data folder. See docs/training.md."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np
import torch
from torch import nn

from .. import data, losses
from ..models import SpikingNet, build_model
from ..nn import enable_grad_rescale
from ..rules import NA
from .config import ConfigError, TrainConfig, neuron_options, rule_of
from .distributed import Dist, all_ranks_raise, wrap

__all__ = [
    "Recipe",
    "DataError",
    "setup",
    "resolve_device",
    "model_from_config",
    "loss_sum",
    "epoch_batches",
    "check_labels",
]


class DataError(RuntimeError):
    """The dataset could not be loaded (missing files, a failed download); the message says what to put where."""


def resolve_device(cfg: TrainConfig, ctx: Dist) -> torch.device:
    """The device of ``cfg`` (default: cuda if available); sets this rank's CUDA device in a distributed run.
    Raises ConfigError for cuda without a GPU."""
    name = cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if not name.startswith("cuda"):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError(
            f"--device: {name} was requested but torch {torch.__version__} sees no CUDA GPU; use --device cpu"
        )
    if ctx.active:
        torch.cuda.set_device(ctx.local_rank)
        return torch.device("cuda", ctx.local_rank)
    index = torch.device(name).index
    if index is not None and index >= torch.cuda.device_count():
        raise ConfigError(f"--device: {name} was requested but torch sees {torch.cuda.device_count()} GPU(s)")
    return torch.device(name)


def check_data_dir(cfg: TrainConfig) -> None:
    """An explicit ``--data-dir`` must be an existing folder (a mistyped one is reported, not created), for every
    dataset: digits reads none, but a mistyped path is as wrong there (docs/training.md promises exit 2)."""
    if cfg.data_dir is None:
        return
    path = data.store.base_dir(cfg.data_dir)
    if not path.is_dir():
        what = "is not a folder" if path.exists() else "does not exist"
        if cfg.dataset == "digits":
            raise ConfigError(
                f"--data-dir: {path} {what}; the digits dataset ships with scikit-learn and reads no files, so "
                "leave --data-dir out"
            )
        raise ConfigError(
            f"--data-dir: {path} {what} (looked for {cfg.dataset} there); pass the folder that holds "
            f"the {cfg.dataset} files (directly or in a '{cfg.dataset}' subfolder), or create it "
            "first to download into it"
        )


def load_data(cfg: TrainConfig, ctx: Dist, device: torch.device) -> tuple[Any, Any]:
    """(train split, test split) of ``cfg.dataset``. Rank 0 loads (and downloads) first, the others after it; a
    failure on rank 0 stops every rank (DataError)."""
    if cfg.dataset not in data.DATASETS:
        raise ConfigError(f"--set dataset: unknown dataset {cfg.dataset!r}; choose one of {', '.join(data.DATASETS)}")
    check_data_dir(cfg)
    kw: dict[str, Any] = dict(T=cfg.T, fraction=cfg.nmnist_fraction) if cfg.dataset == "nmnist" else {}

    def load() -> list[Any]:
        return [data.load(cfg.dataset, train, cfg.data_dir, **kw) for train in (True, False)]

    splits: list[Any] = []
    error = None
    if ctx.main:
        try:
            splits = load()
        except (OSError, ValueError) as exc:  # FileNotFoundError with what to put where; a bad archive
            error = f"--data-dir: {exc}"
    all_ranks_raise(ctx, error, DataError)
    if not ctx.main:
        splits = load()
    if device.type == "cuda":  # keep the compact storage on the GPU: batches are gathered there
        for ds in splits:
            ds.to(device)
    return splits[0], splits[1]


def model_from_config(cfg: TrainConfig, input_shape: Sequence[int]) -> Any:
    """The network of ``cfg`` for per-sample inputs ``input_shape`` ((C, H, W) or, for frames, (2, 34, 34)): a
    ``SpikingNet``, or with ``model_nir`` the graph's ``na_cuda.nir.NIRModule``."""
    if cfg.model_nir:
        return _nir_model(cfg, input_shape)
    return build_model(
        cfg.arch,
        input_shape,
        padding=cfg.padding,
        conv_weight_scale=cfg.conv_weight_scale,
        linear_weight_scale=cfg.linear_weight_scale,
        pool_scale=cfg.pool_scale,
        dropout=cfg.dropout,
        grad_rescale=cfg.grad_rescale and isinstance(rule_of(cfg), NA),
        rescale_round=cfg.rescale_round,
        **neuron_options(cfg),
    )


def _nir_model(cfg: TrainConfig, input_shape: Sequence[int]) -> Any:
    """``--model-nir``: ``na_cuda.nir.from_nir`` with the configured rule (the neuron settings come from the graph),
    in float32, the released code's rescale under NA as for the presets; ``num_classes`` from a run on zeros."""
    try:
        from .. import nir as na_nir

        opts = {k: v for k, v in neuron_options(cfg).items() if k not in ("tau_m", "tau_s", "threshold")}
        opts.pop("strict_threshold")
        net = na_nir.from_nir(cfg.model_nir, dt=cfg.nir_dt, **opts).float()
        with torch.no_grad():
            out = net(torch.zeros(1, 1, *input_shape))
    except (ImportError, OSError, ValueError, TypeError, RuntimeError) as exc:
        raise ConfigError(f"--model-nir: {exc}") from None
    if not isinstance(out, torch.Tensor) or out.dim() != 3:
        raise ConfigError(f"--model-nir: the graph must have one Output of shape [classes]; got {type(out).__name__}")
    if cfg.grad_rescale and isinstance(rule_of(cfg), NA):
        enable_grad_rescale(net, cfg.rescale_round)
    net.num_classes = int(out.shape[-1])
    return net


def loss_sum(cfg: TrainConfig, outputs: torch.Tensor, labels: torch.Tensor, check_labels: bool = True) -> torch.Tensor:
    """The configured loss of a batch (spec §7), summed over its samples (0-dim). ``check_labels=False`` skips the
    label range check (a host sync on a GPU) for labels of a dataset :func:`setup` checked (:func:`check_labels`)."""
    T, B, C = outputs.shape
    ok = check_labels
    if cfg.loss == "van_rossum":
        if cfg.target == "na":
            target = losses.na_desired_spikes(labels, C, T, dtype=outputs.dtype, check_labels=ok)
        else:
            target = losses.tssl_desired_spikes(labels, C, T, dtype=outputs.dtype, check_labels=ok)
        return losses.van_rossum(outputs, target, cfg.tau_s, reduction="sum", target_filters=cfg.target_filters)
    if cfg.loss == "spike_count":
        return losses.spike_count(
            outputs, labels, cfg.desired_count, cfg.undesired_count, reduction="sum", check_labels=ok
        )
    if cfg.loss == "tet":
        return losses.tet(outputs, labels, cfg.tet_lamb, cfg.tet_phi, check_labels=ok) * B
    return losses.sdt(outputs, labels, check_labels=ok) * B


def check_labels(ds: Any, split: str, num_classes: int) -> None:
    """The labels of a dataset split (``ds.labels``, int64 [N] on the CPU, the ``na_cuda.data.Dataset`` contract)
    must lie in ``[0, num_classes)``: checked once here, where the data is loaded, so that the training and
    evaluation steps skip the per-batch check (a device-to-host sync each step on a GPU). Raises DataError."""
    labels = torch.as_tensor(ds.labels)
    if labels.dtype == torch.bool or labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dim() != 1:
        raise DataError(
            f"the {split} split of {ds.name}: `labels` must be an integer tensor [N] of class indices; got "
            f"{labels.dtype} of shape {tuple(labels.shape)}"
        )
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise DataError(
            f"the {split} split of {ds.name}: labels lie in [{int(labels.min())}, {int(labels.max())}] but the "
            f"dataset has {num_classes} classes (labels must lie in [0, {num_classes})); the data files are "
            "corrupt or belong to another dataset: delete them to download them again"
        )


def epoch_batches(seed: int, epoch: int, n: int, batch_size: int, world: int = 1) -> list[torch.Tensor]:
    """Global batches (positions into the training subset) of an epoch, from a permutation seeded by (seed, epoch).
    Batches with fewer samples than ranks are dropped (each rank needs at least one sample)."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch + 1)
    perm = torch.randperm(n, generator=g)
    return [b for b in perm.split(batch_size) if b.numel() >= world]


@dataclass
class Recipe:
    """Everything a training step uses. ``net`` is the bare network, ``model`` the one to call in training
    (DDP-wrapped in a distributed run); ``train_index``: the training samples used (``limit_train``)."""

    cfg: TrainConfig
    ctx: Dist
    device: torch.device
    train_ds: Any
    test_ds: Any
    train_index: torch.Tensor
    net: SpikingNet
    model: nn.Module
    params: list[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    augment: Optional[Any]
    aug_gen: torch.Generator

    def batches(self, epoch: int) -> list[torch.Tensor]:
        """The global batches of ``epoch`` (positions into ``train_index``)."""
        return epoch_batches(self.cfg.seed, epoch, len(self.train_index), self.cfg.batch_size, self.ctx.world)

    def prepare(self, x: torch.Tensor, train: bool) -> torch.Tensor:
        """Batch from the dataset -> network input [T, B, ...] (augmented when ``train``)."""
        if self.train_ds.kind == "frames":
            return losses.psc(x, self.cfg.tau_s) if self.cfg.frame_psc else x
        if train and self.augment is not None:
            x = self.augment(x, self.aug_gen)
        return data.encode_static(data.normalize(x, self.cfg.dataset), self.cfg.T, self.cfg.tau_s)


def setup(
    cfg: TrainConfig,
    ctx: Optional[Dist] = None,
    datasets: Optional[tuple[Any, Any]] = None,
    device: Optional[torch.device] = None,
) -> Recipe:
    """The :class:`Recipe` of ``cfg`` (validated by ``make_config``): data (``datasets`` = (train, test) objects of
    the ``na_cuda.data.Dataset`` contract instead of ``na_cuda.data.load``), seeded network, optimiser, scheduler,
    augmentation. Raises ConfigError when the network does not fit the data, DataError when the data is missing."""
    ctx = ctx or Dist()
    device = device or resolve_device(cfg, ctx)
    train_ds, test_ds = datasets if datasets is not None else load_data(cfg, ctx, device)
    for ds, split in ((train_ds, "train"), (test_ds, "test")):
        if ds.kind == "frames" and ds.sample_shape[0] != cfg.T:
            raise ConfigError(f"--T: the {split} frames have T = {ds.sample_shape[0]} steps but T = {cfg.T}")
    for ds, split in ((train_ds, "train"), (test_ds, "test")):
        check_labels(ds, split, train_ds.num_classes)
    input_shape = tuple(train_ds.sample_shape[1:] if train_ds.kind == "frames" else train_ds.sample_shape)
    n = len(train_ds)
    if cfg.limit_train is not None and cfg.limit_train < n:
        train_index = (
            torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed))[: cfg.limit_train].sort().values
        )
    else:
        train_index = torch.arange(n)
    if len(train_index) < ctx.world:
        raise ConfigError(f"--limit-train: {len(train_index)} training samples for {ctx.world} processes")
    # The same initial weights on every rank (seeded), then per-rank RNG streams.
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    try:
        net = model_from_config(cfg, input_shape).to(device)
    except ValueError as exc:  # e.g. a conv that does not fit the dataset's images
        raise ConfigError(f"--set arch / --set padding: {exc}") from None
    if net.num_classes != train_ds.num_classes:
        raise ConfigError(
            f"--set arch: the output layer has {net.num_classes} neurons but {cfg.dataset} has "
            f"{train_ds.num_classes} classes"
        )
    torch.manual_seed(cfg.seed + ctx.rank)
    aug_gen = torch.Generator(device=device).manual_seed(cfg.seed + 1_000_003 * (ctx.rank + 1))
    params = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=cfg.lr_gamma)
    augment = data.augmentation(cfg.dataset) if cfg.augment and train_ds.kind == "image" else None
    return Recipe(
        cfg,
        ctx,
        device,
        train_ds,
        test_ds,
        train_index,
        net,
        wrap(ctx, net, device),
        params,
        optimizer,
        scheduler,
        augment,
        aug_gen,
    )
