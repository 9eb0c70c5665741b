"""Small deterministic datasets that follow the ``na_cuda.data.Dataset`` contract, for the training tests.

``digits(train)`` is a synthetic 10-class set of 8x8 images (a fixed random prototype per class plus noise), named
"digits" so that ``na_cuda.data.normalize`` / ``augmentation`` / ``encode_static`` treat it like the real one. It
needs no download and no scikit-learn, and it is easy enough that a few epochs reach a high accuracy.
"""

from __future__ import annotations

from typing import Tuple, Union

import torch


class FakeDigits:
    """Images float32 [N, 1, 8, 8] in [0, 1] with labels ``0..9`` cycling; the contract's attributes and
    ``batch(index, device) -> (x, y)``."""

    name = "digits"
    kind = "image"
    num_classes = 10
    sample_shape = (1, 8, 8)

    def __init__(self, train: bool, n: int) -> None:
        g = torch.Generator().manual_seed(1234)
        prototypes = (torch.rand(10, 1, 8, 8, generator=g) > 0.6).float()
        g = torch.Generator().manual_seed(1 if train else 2)
        self.train = train
        self.labels = torch.arange(n) % 10
        noise = torch.rand(n, 1, 8, 8, generator=g)
        self.images = (0.7 * prototypes[self.labels] + 0.3 * noise).clamp(0, 1)

    def to(self, device: Union[str, torch.device]) -> object:
        """data.Dataset.to: the fakes build batches on demand, so there is nothing to move."""
        return self

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def batch(self, index: torch.Tensor, device: Union[str, torch.device] = "cpu") -> Tuple[torch.Tensor, torch.Tensor]:
        index = index.to(torch.int64).cpu()
        return self.images[index].to(device), self.labels[index].to(device)


def datasets(n_train: int = 256, n_test: int = 100) -> Tuple[FakeDigits, FakeDigits]:
    """(train, test) fake digits."""
    return FakeDigits(True, n_train), FakeDigits(False, n_test)


class FakeFrames:
    """N-MNIST-like event frames: x float32 [T, B, 2, 34, 34] of 0/1 (time first), one random firing rate pattern
    per class; the contract's attributes and ``batch``."""

    name = "nmnist"
    kind = "frames"
    num_classes = 10

    def __init__(self, train: bool, n: int, T: int) -> None:
        g = torch.Generator().manual_seed(99)
        rates = 0.3 * torch.rand(10, 2, 34, 34, generator=g)
        self.g_seed = 3 if train else 4
        self.labels = torch.arange(n) % 10
        g = torch.Generator().manual_seed(self.g_seed)
        self.frames = (torch.rand(T, n, 2, 34, 34, generator=g) < rates[self.labels]).to(torch.uint8)
        self.sample_shape = (T, 2, 34, 34)

    def to(self, device: Union[str, torch.device]) -> object:
        """data.Dataset.to: the fakes build batches on demand, so there is nothing to move."""
        return self

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def batch(self, index: torch.Tensor, device: Union[str, torch.device] = "cpu") -> Tuple[torch.Tensor, torch.Tensor]:
        index = index.to(torch.int64).cpu()
        return self.frames[:, index].float().to(device), self.labels[index].to(device)
