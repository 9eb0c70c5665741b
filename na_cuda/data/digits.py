"""The 8x8 handwritten digits of scikit-learn (UCI "Optical Recognition of Handwritten Digits", test part).

1,797 grey images of 8x8 pixels with values 0..16, ten classes, shipped inside the scikit-learn wheel, so it needs no
download: a small real dataset for quick runs and CI.

Split (fixed, deterministic, no random numbers): within each class, taken in the dataset's order, every fifth image
(the 5th, 10th, ... of that class) is a test image, the others are training images. That is a stratified 80/20 split:
1,442 train / 355 test images. See docs/training.md.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

MAX_VALUE = 16  # pixel values are 0..16
TEST_EVERY = 5  # every 5th image of a class is a test image


def split_mask(labels: np.ndarray) -> np.ndarray:
    """Boolean mask of the test images: within each class, in order, positions 4, 9, 14, ... (0-based)."""
    labels = np.asarray(labels)
    test = np.zeros(labels.shape, dtype=bool)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        test[idx[TEST_EVERY - 1 :: TEST_EVERY]] = True
    return test


def load_digits_split(train: bool) -> Tuple[np.ndarray, np.ndarray]:
    """Images uint8 ``[N, 1, 8, 8]`` with values 0..16 and labels int64 ``[N]`` of a split."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "na_cuda.data: the 'digits' dataset comes with scikit-learn; install it with "
            "`pip install scikit-learn` (a dependency of na_cuda: reinstall it)"
        ) from exc
    bunch = load_digits()
    images = np.asarray(bunch.images)
    labels = np.asarray(bunch.target, dtype=np.int64)
    if images.shape[1:] != (8, 8) or images.min() < 0 or images.max() > MAX_VALUE:
        raise ValueError(
            f"na_cuda.data: sklearn's load_digits returned images {images.shape} with values "
            f"{images.min()}..{images.max()}; expected [N, 8, 8] in 0..{MAX_VALUE}"
        )
    keep = ~split_mask(labels) if train else split_mask(labels)
    return images[keep].astype(np.uint8)[:, None], labels[keep]
