"""Datasets, augmentation and input encoding for training like the paper (docs/training.md, "Data").

    ds = data.load("mnist", train=True)            # or "fashion-mnist", "cifar10", "nmnist", "digits"
    x, y = ds.batch(torch.randperm(len(ds))[:64], "cuda")
    x = data.encode_static(data.normalize(x, "mnist"), T=5, tau_s=4.0)  # [T, B, C, H, W]

Modules: ``idx``, ``cifar``, ``nmnist``, ``digits`` (readers), ``store`` (lookup, download), ``dataset``,
``augment``, ``encode``, ``names`` (the name registry, a leaf), ``layout``, ``catalog`` (``load``).
"""

from __future__ import annotations

from .augment import (
    Augment,
    ColorJitter,
    Compose,
    Identity,
    RandomCrop,
    RandomHorizontalFlip,
    RandomRotation,
    augmentation,
    color_jitter,
    random_crop,
    random_horizontal_flip,
    random_rotation,
    rotate,
)
from .catalog import load
from .cifar import read_cifar_batch
from .dataset import Dataset, ImageDataset
from .encode import NORMALIZATION, encode_static, normalize
from .idx import read_idx
from .names import DATASETS, canonical_name
from .nmnist import EventDataset, read_nmnist_events
from .store import ChecksumError, download_file, find_root

__all__ = [
    "DATASETS",
    "load",
    "find_root",
    "canonical_name",
    "Dataset",
    "ImageDataset",
    "EventDataset",
    "augmentation",
    "normalize",
    "encode_static",
    "NORMALIZATION",
    "Augment",
    "Compose",
    "Identity",
    "RandomCrop",
    "RandomRotation",
    "ColorJitter",
    "RandomHorizontalFlip",
    "random_crop",
    "random_rotation",
    "rotate",
    "color_jitter",
    "random_horizontal_flip",
    "read_idx",
    "read_cifar_batch",
    "read_nmnist_events",
    "download_file",
    "ChecksumError",
]
