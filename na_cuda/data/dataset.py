"""The dataset object of ``na_cuda.data``: compact storage, batches assembled on the training device.

A :class:`Dataset` holds a whole split in memory in a compact form (uint8 images; events for N-MNIST) and hands out
batches by index: ``x, y = ds.batch(index, device)``. There is no DataLoader and no worker process: indexing a
uint8 tensor and one host-to-device copy per batch is cheaper than per-sample Python code, and augmentation runs on
the device afterwards (``na_cuda.data.augmentation``). See docs/training.md.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Sequence, Tuple, Union

import numpy as np
import torch

Device = Union[str, torch.device]
IndexLike = Union[torch.Tensor, Sequence[int], np.ndarray]


def as_index(index: IndexLike, n: int, device: torch.device) -> torch.Tensor:
    """`index` as a 1-D int64 tensor on `device`, checked to lie in ``[0, n)``."""
    if not isinstance(index, torch.Tensor):
        index = torch.as_tensor(np.asarray(index))
    if index.dtype == torch.bool or index.dtype.is_floating_point or index.dtype.is_complex:
        raise TypeError(
            "na_cuda.data: batch `index` must be an integer tensor (e.g. a slice of "
            f"torch.randperm(len(ds))); got dtype {index.dtype}"
        )
    if index.dim() != 1:
        raise ValueError(f"na_cuda.data: batch `index` must be 1-D; got shape {list(index.shape)}")
    if index.numel():
        lo, hi = int(index.min()), int(index.max())
        if lo < 0 or hi >= n:
            raise IndexError(
                f"na_cuda.data: batch `index` must be in [0, {n}) for this dataset of {n} samples; "
                f"got values {lo}..{hi}"
            )
    return index.to(device=device, dtype=torch.int64)


class Dataset(ABC):
    """One split of a dataset (an abstract base: the image and event datasets implement `batch` and `to`).

    Attributes: ``name``, ``train``, ``num_classes``, ``kind`` ("image" or "frames"), ``sample_shape`` ((C, H, W) for
    images, (T, 2, 34, 34) for frames) and ``labels`` (int64 [N], on the CPU). ``len(ds)`` is the number of samples.
    """

    name: str
    train: bool
    num_classes: int
    kind: str
    sample_shape: Tuple[int, ...]
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @abstractmethod
    def batch(self, index: IndexLike, device: Device = "cpu") -> Tuple[torch.Tensor, torch.Tensor]:
        """The samples at `index` as ``(x, y)`` on `device`: images x float32 [B, C, H, W] in [0, 1]; frames x float32
        [T, B, 2, 34, 34] (time first); y int64 [B]."""

    @abstractmethod
    def to(self, device: Device) -> Dataset:
        """Keep the compact storage on `device` (e.g. the GPU, so batches are gathered there); returns self."""

    def __repr__(self) -> str:
        split = "train" if self.train else "test"
        return (
            f"{type(self).__name__}({self.name!r}, {split}, n={len(self)}, kind={self.kind!r}, "
            f"sample_shape={tuple(self.sample_shape)}, num_classes={self.num_classes})"
        )


class ImageDataset(Dataset):
    """Images stored as uint8 ``[N, C, H, W]``; a batch is ``images[index] / max_value`` as float32 (max_value =
    255, or 16 for digits). Gathered where the images are (see :meth:`to`), then copied to the batch's device."""

    kind = "image"

    def __init__(
        self,
        name: str,
        train: bool,
        images: Union[np.ndarray, torch.Tensor],
        labels: Union[np.ndarray, torch.Tensor],
        *,
        num_classes: int,
        max_value: int = 255,
    ) -> None:
        if isinstance(images, np.ndarray):
            images = torch.from_numpy(np.array(images, order="C", copy=True if not images.flags.writeable else None))
        if isinstance(labels, np.ndarray):
            labels = torch.from_numpy(np.array(labels, dtype=np.int64))
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(
                f"na_cuda.data: ImageDataset `images` must be uint8 [N, C, H, W]; got {images.dtype} "
                f"{list(images.shape)}"
            )
        if labels.dim() != 1 or labels.shape[0] != images.shape[0]:
            raise ValueError(
                f"na_cuda.data: ImageDataset: {images.shape[0]} images but labels of shape {list(labels.shape)}"
            )
        self.name, self.train, self.num_classes = name, bool(train), int(num_classes)
        self.images = images
        self.labels = labels.to(dtype=torch.int64, device="cpu")
        self._labels_store = self.labels.to(images.device)
        self.sample_shape = tuple(int(s) for s in images.shape[1:])
        self.max_value = int(max_value)

    def batch(self, index: IndexLike, device: Device = "cpu") -> Tuple[torch.Tensor, torch.Tensor]:
        device = torch.device(device)
        idx = as_index(index, len(self), self.images.device)
        x = self.images.index_select(0, idx)
        y = self._labels_store.index_select(0, idx)
        x = x.to(device).to(torch.float32).div_(self.max_value)
        return x, y.to(device)

    def to(self, device: Device) -> ImageDataset:
        self.images = self.images.to(device)
        self._labels_store = self.labels.to(device)
        return self
