"""Datasets, augmentation and input encoding for training like the paper.

    from na_cuda import data
    ds = data.load("mnist", train=True)            # or "fashion-mnist", "cifar10", "nmnist" (T=, fraction=), "digits"
    x, y = ds.batch(torch.randperm(len(ds))[:64], "cuda")   # images [B, C, H, W] in [0, 1]; frames [T, B, 2, 34, 34]
    x = data.augmentation("mnist")(x, torch.Generator("cuda").manual_seed(0))
    x = data.encode_static(data.normalize(x, "mnist"), T=5, tau_s=4.0)  # [T, B, C, H, W]

Files are looked up with :func:`find_root` (``data_dir``, else ``$NA_CUDA_DATA``, else ``~/.cache/na_cuda``; directly
or in a ``<name>`` subfolder) and downloaded with SHA-256 verification where a canonical source exists.

Modules: ``idx`` (MNIST/Fashion-MNIST IDX files), ``cifar`` (CIFAR-10 python batches), ``nmnist`` (N-MNIST events and
binning), ``digits`` (scikit-learn's 8x8 digits), ``store`` (lookup, download, checksums), ``dataset`` (the
Dataset objects), ``augment`` (on-device augmentation), ``encode`` (normalisation, static-image encoding),
``names`` (the dataset name registry, a leaf), ``layout`` (which files mark a dataset's folder), ``catalog``
(``load``).
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
