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
"samples_per_second", "train_seconds", "eval_seconds"}], "best_test_accuracy", "best_epoch"}``; losses are per
sample, accuracies fractions in [0, 1]; ``samples_per_second`` is training samples per second of training time,
``seconds`` = training + evaluation), ``curves.png`` (needs matplotlib; metrics.json is written first) and
``checkpoint.pt``. Every file is written atomically (a temporary file in DIR, then
``os.replace``); ``checkpoint.pt`` carries a SHA-256 of its content, checked (with every field) on ``--resume``
(``na_cuda/train/checkpoint.py``). A run holds an exclusive lock on DIR (``DIR/.lock``, with its pid; a second run on
the same DIR stops with a message; the lock of a killed run is taken over), removes the temporary files killed runs
left, and checks before training that DIR has room for two checkpoints (the old one stays until the new one is
complete) by writing one.

Checkpoints: one after every epoch, and one when SIGINT/SIGTERM arrives: training finishes the current step (a
distributed run: the steps up to the next log point), writes a *mid-epoch* checkpoint (the position in the epoch,
the partial epoch statistics and every RNG state) and exits with status 128 + signal number; ``--resume`` continues
at the next step and gives the same numbers as an uninterrupted run (CPU). A second signal aborts at once.

A step never waits on the host: its statistics accumulate on the device and are read at log points (every
``--log-every`` steps, the epoch's last step, a stop; ``loop.py``), and the datasets' labels are checked once, when
they are loaded. A non-finite loss or gradient norm is found at the next log point: training stops with a message
naming the epoch and the first such step, writes no checkpoint (the weights in memory went through that step),
keeps the last good one, and exits with status 1. ``--compile [MODE]`` runs network + loss as one
``torch.compile``d function. So does a failed write of an output
file (a full disk: one line naming the file, the space it needs and the free space; the previous files are intact,
``--resume`` after freeing space continues exactly).

Data parallel: every rank draws the same seeded permutation of the training set per epoch and takes its
contiguous shard of each global batch of ``--batch-size`` samples (a final batch with fewer samples than ranks
is dropped). The loss is summed per rank and scaled so that DDP's gradient average equals the gradient of the
whole global batch, so N processes follow the single-process run up to float rounding. Two exceptions, stated:
``grad_rescale`` computes its factors from each rank's shard (as a per-device rescaling would), and
augmentation/dropout draw per-rank random numbers. Evaluation is sharded over the ranks and summed.

Checks before anything is created on disk (one line on stderr, exit status 2): every config value, ``--out`` (a
file, under a file, not writable), ``--device cuda`` without a GPU, a mistyped ``--data-dir`` (it is not
created), a network that does not fit the data; missing data (after the download failed) exits with 1.
``--resume`` of a finished run says so and exits 0.

Modules: ``config`` (TrainConfig, presets, fidelity, validation, the neuron's options), ``recipe`` (device, data,
network, optimiser, batches, input encoding, loss: :func:`setup`), ``loop`` (one process's state, steps,
evaluation, checkpoints, stop signals), ``session`` (:func:`run`: checks, ``--out``, the epoch loop),
``checkpoint`` (the file format and RNG states), ``distributed`` (DDP), ``progress`` (bars / plain lines, ETA),
``report`` (JSON, plot, printed lines), ``cli`` (argparse, :func:`main`).
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
