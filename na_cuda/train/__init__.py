"""Train the NA paper's spiking networks: ``python -m na_cuda.train [--preset P] [--method na|stbp|tssl] ...``.

Without arguments it trains the small ``digits`` preset (no download) into ``runs/digits-na``. Multi-process data
parallel: ``torchrun --nproc_per_node N -m na_cuda.train --preset mnist ...``. The released recipe, the outputs,
checkpoints, stops and resumes, data parallelism and the checks before a run: docs/training.md, "The training
CLI in detail".

Modules: ``config`` (TrainConfig, presets, validation), ``recipe`` (data, network, optimiser, loss: :func:`setup`),
``loop`` (steps, evaluation, checkpoints, stop signals), ``session`` (:func:`run`), ``checkpoint`` (file format,
RNG states), ``distributed`` (DDP), ``progress``, ``report``, ``cli`` (argparse, :func:`main`).
"""

from __future__ import annotations

from .checkpoint import CheckpointError
from .cli import build_parser, device_arg, main, nonneg_int, positive_float, positive_int
from .config import (
    CHECKPOINT,
    FIDELITY,
    LOSSES,
    PRESETS,
    RESUMABLE_CHANGES,
    TIMING_KEYS,
    ConfigError,
    TrainConfig,
    make_config,
    neuron_options,
    resume_config,
    validate_config,
)
from .distributed import DDP_TIMEOUT_S
from .loop import NonFiniteLoss
from .recipe import DataError, Recipe, epoch_batches, loss_sum, model_from_config, setup
from .session import run

__all__ = [
    "TrainConfig",
    "PRESETS",
    "FIDELITY",
    "LOSSES",
    "CHECKPOINT",
    "RESUMABLE_CHANGES",
    "TIMING_KEYS",
    "DDP_TIMEOUT_S",
    "ConfigError",
    "DataError",
    "NonFiniteLoss",
    "CheckpointError",
    "make_config",
    "validate_config",
    "resume_config",
    "neuron_options",
    "model_from_config",
    "loss_sum",
    "epoch_batches",
    "Recipe",
    "setup",
    "run",
    "main",
    "build_parser",
    "positive_int",
    "nonneg_int",
    "positive_float",
    "device_arg",
]
