"""The training configuration: :class:`TrainConfig`, the paper's presets, what ``--fidelity`` sets, and the
validation of every field (``ConfigError`` naming the CLI flag). Also :func:`neuron_options`, the one place that
turns a config into the neuron's arguments, and :func:`resume_config` (the config saved in a checkpoint).
See docs/training.md."""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import torch

from .. import _validate
from .._validate import BACKENDS
from ..models import ARCHITECTURES, parse_architecture
from ..params import LifParams
from ..rules import METHODS, NA, RULES, STBP, Rule
from . import checkpoint

__all__ = [
    "TrainConfig",
    "PRESETS",
    "FIDELITY",
    "LOSSES",
    "COMPILE_MODES",
    "ConfigError",
    "make_config",
    "validate_config",
    "neuron_options",
    "resume_config",
    "flag",
]

#: Losses a preset may name (``na_cuda.losses``): van_rossum (the released "kernel" loss, eq. 5, with the
#: desired train ``target``), spike_count (TSSL-BP ``loss_count``), tet, sdt.
LOSSES = ("van_rossum", "spike_count", "tet", "sdt")
TARGETS = ("na", "tssl")
REDUCTIONS = ("sum", "mean")
CHECKPOINT = checkpoint.FILENAME
# Fields that --resume may change; every other field comes from the checkpoint.
RESUMABLE_CHANGES = ("epochs", "device", "data_dir", "out", "progress", "log_every", "compile")
#: Modes of ``--compile`` (``torch.compile(mode=...)``); "reduce-overhead" uses CUDA graphs on a GPU.
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
# Metrics that measure time (differ between runs of the same computation).
TIMING_KEYS = ("seconds", "samples_per_second") + checkpoint.OPTIONAL_EPOCH_KEYS


@dataclass
class TrainConfig:
    """Everything a run depends on. Presets fill it; every field can be overridden (CLI flag or ``--set``)."""

    preset: str = "digits"
    fidelity: str = "paper"
    dataset: str = "digits"
    arch: str = ARCHITECTURES["digits"]
    # neuron (na_cuda.nn.LIF): the keywords of na_cuda.lif that a run sets, their defaults from the typed objects
    method: str = METHODS[0]
    T: int = 5
    tau_m: float = LifParams.tau_m
    tau_s: float = LifParams.tau_s
    threshold: float = LifParams.threshold
    first_order: str = NA.first_order
    dist_power: int = NA.dist_power
    clip: float = NA.clip
    surrogate: str = STBP.surrogate
    surrogate_alpha: Optional[float] = STBP.alpha
    backend: str = BACKENDS[0]
    strict_threshold: bool = LifParams.strict_threshold
    #: the other keywords of na_cuda.lif (``--set v_reset=null``, ``--set detach_reset=false``, ...), by keyword
    lif_options: dict = field(default_factory=dict)
    grad_rescale: bool = True
    rescale_round: Optional[int] = None
    # network (na_cuda.models.build_model)
    padding: Union[int, list] = 1
    conv_weight_scale: float = 1.0
    linear_weight_scale: float = 1.0
    pool_scale: float = 1.1
    dropout: float = 0.0
    # a NIR graph instead of `arch` (--model-nir; na_cuda.nir.from_nir with the rule above, dt = nir_dt, docs/nir.md)
    model_nir: Optional[str] = None
    nir_dt: float = 1e-4
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
    # execution (no effect on the math): steps between reads of the training statistics; torch.compile mode
    log_every: int = 50
    compile: Optional[str] = None


_BASE = dict(
    T=5, tau_m=5.0, tau_s=2.0, lr=5e-4, loss="van_rossum", target="na", augment=True, dropout=0.0, conv_weight_scale=1.0
)

#: The paper's settings (appendix A.2; architectures of section 4, padding / weight scales / dropout of the released
#: ``Networks/*.yaml``) and the small ``digits`` demo.
# Appendix A.2.3 (600 epochs, batch 50, lr 5e-4); Networks/CIFAR10.yaml (padding 1, conv weight_scale 5, dropout 0.2
# after every hidden layer, loss "kernel"): the recipe of both CIFAR-10 presets.
_CIFAR10: dict[str, Any] = dict(
    _BASE, dataset="cifar10", padding=1, epochs=600, batch_size=50, conv_weight_scale=5.0, dropout=0.2
)

PRESETS: dict[str, dict[str, Any]] = {
    # Small demo: 8x8 digits, ~1 minute on a 2-core CPU.
    "digits": dict(_BASE, dataset="digits", arch=ARCHITECTURES["digits"], padding=1, epochs=30, batch_size=32, lr=5e-3),
    # Appendix A.2.1; Networks/MNIST_CNN.yaml (padding 0, loss "kernel", tau_m 5, tau_s 2).
    "mnist": dict(_BASE, dataset="mnist", arch=ARCHITECTURES["mnist"], padding=0, epochs=200, batch_size=64),
    # "Same as MNIST" (the released FashionMNIST_CNN.yaml is a TSSL-BP config with another network).
    "fashion-mnist": dict(
        _BASE, dataset="fashion-mnist", arch=ARCHITECTURES["mnist"], padding=0, epochs=200, batch_size=64
    ),
    # Appendix A.2.2 (100 epochs, batch 50, lr 5e-4, no augmentation); section 4.4 (T = 30, the first 30 % of each
    # recording); Networks/NMNIST_CNN.yaml (padding 1 then 0, tau_m 8, tau_s 4, count loss 15 / 3).
    "nmnist": dict(
        _BASE,
        dataset="nmnist",
        arch=ARCHITECTURES["nmnist"],
        padding=[1, 0],
        T=30,
        tau_m=8.0,
        tau_s=4.0,
        epochs=100,
        batch_size=50,
        loss="spike_count",
        desired_count=15.0,
        undesired_count=3.0,
        augment=False,
        nmnist_fraction=0.3,
    ),
    "cifar10-alexnet": dict(_CIFAR10, arch=ARCHITECTURES["alexnet"]),
    # The paper reports CifarNet only for STBP; same recipe as AlexNet.
    "cifar10-cifarnet": dict(_CIFAR10, arch=ARCHITECTURES["cifarnet"]),
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
_FLAGS = {
    "preset": "--preset",
    "fidelity": "--fidelity",
    "method": "--method",
    "epochs": "--epochs",
    "batch_size": "--batch-size",
    "lr": "--lr",
    "T": "--T",
    "device": "--device",
    "data_dir": "--data-dir",
    "model_nir": "--model-nir",
    "out": "--out",
    "limit_train": "--limit-train",
    "na_window": "--na-window",
    "augment": "--no-augment",
    "seed": "--seed",
    "compile": "--compile",
    "log_every": "--log-every",
}


class ConfigError(ValueError):
    """A bad configuration value; the message names the flag or field."""


def flag(name: str) -> str:
    """The CLI flag that sets config field ``name`` (``--set NAME`` for fields without their own flag)."""
    return _FLAGS.get(name, f"--set {name}")


def lif_keywords() -> tuple[str, ...]:
    """The keywords of ``na_cuda.lif`` a run may set that are not config fields of their own (they go to
    ``lif_options``): derived from the neuron's and the rules' fields; ``output`` is the recipe's ("psc")."""
    own = {f.name for f in dataclasses.fields(TrainConfig)}
    return tuple(k for k in _validate.keywords() if k not in own and k != "output")


def make_config(preset: str = "digits", **overrides: Any) -> TrainConfig:
    """The preset's config with ``overrides`` applied, validated (``ConfigError`` naming the field); a keyword of
    ``na_cuda.lif`` without a field of its own goes to ``lif_options``."""
    if preset not in PRESETS:
        raise ConfigError(f"--preset: unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    values = copy.deepcopy(dict(PRESETS[preset], preset=preset))
    fidelity = overrides.get("fidelity", values.get("fidelity", "paper"))
    if fidelity not in FIDELITY:
        raise ConfigError(f"--fidelity: must be one of {', '.join(FIDELITY)}; got {fidelity!r}")
    values.update(FIDELITY[fidelity], fidelity=fidelity)
    for key, value in overrides.items():
        if key in lif_keywords():
            values["lif_options"] = {**values.get("lif_options", {}), key: copy.deepcopy(value)}
        elif key not in names:
            raise ConfigError(f"{flag(key)}: unknown config field {key!r}; fields: {', '.join(sorted(names))}")
        else:
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
        return ConfigError(f"{flag(name)}: must be {what}; got {getattr(cfg, name)!r}")

    for name in ("T", "epochs", "batch_size", "eval_batch_size", "log_every"):
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
    if (
        not isinstance(cfg.betas, (list, tuple))
        or len(cfg.betas) != 2
        or not all(_is_real(b) and 0 <= b < 1 for b in cfg.betas)
    ):
        raise bad("betas", "two numbers in [0, 1), e.g. [0, 0.999]")
    cfg.betas = [float(b) for b in cfg.betas]
    if not (isinstance(cfg.padding, int) and _is_int(cfg.padding) and cfg.padding >= 0) and not (
        isinstance(cfg.padding, (list, tuple)) and all(_is_int(p) and p >= 0 for p in cfg.padding)
    ):
        raise bad("padding", "an int >= 0 or a list with one int >= 0 per conv layer")
    if isinstance(cfg.padding, tuple):
        cfg.padding = list(cfg.padding)
    for name in ("grad_rescale", "augment", "frame_psc", "progress", "strict_threshold"):
        if not isinstance(getattr(cfg, name), bool):
            raise bad(name, "true or false")
    for name, choices in (
        ("loss", LOSSES),
        ("target", TARGETS),
        ("loss_reduction", REDUCTIONS),
        ("method", METHODS),
        ("fidelity", tuple(FIDELITY)),
        ("target_filters", (1, 2)),
    ):
        if getattr(cfg, name) not in choices:
            raise bad(name, f"one of {', '.join(map(str, choices))}")
    if cfg.compile is not None and cfg.compile not in COMPILE_MODES:
        raise bad("compile", f"null (eager) or a torch.compile mode: one of {', '.join(COMPILE_MODES)}")
    for name in ("dataset", "arch"):
        if not isinstance(getattr(cfg, name), str) or not getattr(cfg, name):
            raise bad(name, "a non-empty string")
    for name in ("data_dir", "out", "model_nir"):
        if getattr(cfg, name) is not None and not isinstance(getattr(cfg, name), str):
            raise bad(name, "a path")
    if cfg.device is not None and (not isinstance(cfg.device, str) or cfg.device.split(":")[0] not in ("cpu", "cuda")):
        raise bad("device", "cpu or cuda")
    if cfg.loss == "van_rossum" and cfg.target == "tssl" and cfg.T % 5:
        raise ConfigError(f"--set target: the TSSL-BP target (0, 1, 1, 1, 1) needs T a multiple of 5; got T = {cfg.T}")
    if cfg.loss == "spike_count" and cfg.desired_count < cfg.undesired_count:
        raise ConfigError(
            f"--set desired_count: must be >= undesired_count (the label neuron fires more); got desired_count = "
            f"{cfg.desired_count}, undesired_count = {cfg.undesired_count}"
        )
    if cfg.out is not None and not cfg.out.strip():
        raise bad("out", "a folder path (use --out . for the current folder)")
    if not isinstance(cfg.lif_options, dict) or not set(cfg.lif_options) <= set(lif_keywords()):
        raise bad("lif_options", f"a dict of keywords of na_cuda.lif ({', '.join(lif_keywords())})")
    try:
        # In the model's dtype too: a value valid as a double can round to 0 or inf in float32, which would fail at
        # the first forward, after --out/config.json was written (na_cuda.params.values_fit_dtype).
        neuron, rule, _ = _validate.build(output="psc", **neuron_options(cfg))
        rule.fit_dtype(neuron, torch.get_default_dtype())
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"neuron parameters ({flag('method')}, --set tau_m/tau_s/...): {exc}") from None
    try:
        layers = parse_architecture(cfg.arch)
    except ValueError as exc:
        raise ConfigError(f"--set arch: {exc}") from None
    n_conv = sum(layer.kind == "conv" for layer in layers)
    if isinstance(cfg.padding, list) and len(cfg.padding) != n_conv:
        raise ConfigError(
            f"--set padding: {cfg.padding} has {len(cfg.padding)} entries but the arch {cfg.arch!r} has "
            f"{n_conv} conv layer(s); give one int for all or one per conv"
        )


def rule_of(cfg: TrainConfig) -> Rule:
    """The training rule object of ``cfg`` (``na_cuda.rules``: NA spec §3, STBP §5, TSSL-BP §6), validated."""
    return _validate.build(output="psc", **neuron_options(cfg))[1]


def neuron_options(cfg: TrainConfig) -> dict[str, Any]:
    """The keyword arguments of every LIF of the network (``na_cuda.nn.LIF`` via ``models.build_model``): each
    keyword of the neuron and of the chosen rule that is a config field."""
    rule = RULES.get(cfg.method)  # the chosen rule's fields only: another rule's would be refused (ignored)
    wanted = {**LifParams.keywords(), "method": None, "backend": None, **(rule.keywords() if rule else {})}
    options = {k: getattr(cfg, k) for k in wanted if hasattr(cfg, k)}
    return {**options, **cfg.lif_options}


def resume_config(out: Union[str, Path], explicit: dict[str, Any]) -> TrainConfig:
    """The config saved in ``out/checkpoint.pt`` with the allowed ``explicit`` changes applied; raises
    ``ConfigError`` naming a flag that tries to change anything else."""
    path = Path(out) / CHECKPOINT
    if not path.is_file():
        raise ConfigError(f"--resume: no checkpoint at {path}; run without --resume to start")
    try:
        values = checkpoint.load(path)["config"]
    except checkpoint.CheckpointError as exc:
        raise ConfigError(f"--resume: {exc}") from None
    for key, value in explicit.items():
        saved = values.get("lif_options", {}).get(key) if key in lif_keywords() else values.get(key)
        if key in RESUMABLE_CHANGES:
            values[key] = value
        elif value != saved:
            raise ConfigError(
                f"{flag(key)}: {value!r} differs from the checkpoint's {saved!r}; --resume "
                f"continues the saved run (only {', '.join(RESUMABLE_CHANGES)} may change)"
            )
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
