"""CIFAR-10 from its "python version" batches (``cifar-10-batches-py/``).

Each batch file (``data_batch_1`` .. ``data_batch_5``: 10,000 images each; ``test_batch``: 10,000) is a pickled dict
with bytes keys: ``b"data"`` a uint8 array ``[N, 3072]`` whose rows hold the 1024 red, then green, then blue values of
a 32x32 image in row-major order; ``b"labels"`` a list of N ints in 0..9 (also ``b"batch_label"``, ``b"filenames"``).

The files are pickles; they are read with an unpickler that only builds numpy arrays and plain containers, so a
tampered file cannot run code. See docs/training.md.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence, Tuple, Union

import numpy as np

PathLike = Union[str, Path]

BATCH_DIR = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCHES = ("test_batch",)


def batch_names(train: bool) -> Tuple[str, ...]:
    """The batch file names of a split."""
    return TRAIN_BATCHES if train else TEST_BATCHES


def _numpy_global(module: str, name: str) -> Any:
    # numpy >= 2 moved numpy.core to numpy._core; old pickles (the published batches) name numpy.core.
    if name == "_reconstruct" and module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        try:
            from numpy._core.multiarray import _reconstruct  # type: ignore[attr-defined]
        except ImportError:  # numpy < 2
            from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]
        return _reconstruct
    if (module, name) == ("_codecs", "encode"):  # how protocol-2 pickles written by Python 3 store bytes
        import codecs

        return codecs.encode
    if module == "numpy" and name in ("ndarray", "dtype"):
        return getattr(np, name)
    if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name == "scalar":
        try:
            from numpy._core.multiarray import scalar  # type: ignore[attr-defined]
        except ImportError:
            from numpy.core.multiarray import scalar  # type: ignore[no-redef]
        return scalar
    raise pickle.UnpicklingError(
        f"na_cuda.data: a CIFAR batch may only hold numpy arrays, lists and bytes; this one refers to {module}.{name}"
    )


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:  # noqa: D102
        return _numpy_global(module, name)


def read_cifar_batch(path: PathLike) -> Tuple[np.ndarray, np.ndarray]:
    """Images uint8 ``[N, 3, 32, 32]`` and labels int64 ``[N]`` of one CIFAR-10 python batch file."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            d = _ArrayUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
        raise ValueError(
            f"na_cuda.data: {path} is not a CIFAR-10 python batch ({exc}); delete it and download "
            "cifar-10-python.tar.gz again"
        ) from exc
    if not isinstance(d, dict) or b"data" not in d or b"labels" not in d:
        keys = sorted(d) if isinstance(d, dict) else type(d).__name__
        raise ValueError(
            f"na_cuda.data: {path} is not a CIFAR-10 python batch: expected a dict with b'data' and "
            f"b'labels', got {keys}"
        )
    data = np.asarray(d[b"data"])
    labels = np.asarray(d[b"labels"], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(f"na_cuda.data: {path}: b'data' must be uint8 [N, 3072]; got {data.dtype} {list(data.shape)}")
    if labels.shape != (data.shape[0],):
        raise ValueError(f"na_cuda.data: {path}: {data.shape[0]} images but {labels.size} labels")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"na_cuda.data: {path}: labels must be in 0..9; got {labels.min()}..{labels.max()}")
    return data.reshape(-1, 3, 32, 32), labels


def write_cifar_batch(path: PathLike, images: np.ndarray, labels: Sequence[int], batch_label: str = "batch") -> Path:
    """Write a batch file in the published format (protocol-2 pickle of the dict described above); for tests."""
    images = np.asarray(images, dtype=np.uint8)
    if images.ndim != 4 or images.shape[1:] != (3, 32, 32):
        raise ValueError(f"na_cuda.data: write_cifar_batch: `images` must be [N, 3, 32, 32]; got {images.shape}")
    d = {
        b"batch_label": batch_label.encode(),
        b"labels": [int(v) for v in labels],
        b"data": images.reshape(len(images), -1),
        b"filenames": [f"img_{i}.png".encode() for i in range(len(images))],
    }
    buf = io.BytesIO()
    pickle.dump(d, buf, protocol=2)
    Path(path).write_bytes(buf.getvalue())
    return Path(path)


def find_batch_dir(root: PathLike, names: Optional[Iterable[str]] = None) -> Optional[Path]:
    """The folder under `root` holding the batch files `names` (default: all six): ``root/cifar-10-batches-py`` or
    `root` itself; None when neither holds them all."""
    names = tuple(names) if names is not None else TRAIN_BATCHES + TEST_BATCHES
    for d in (Path(root) / BATCH_DIR, Path(root)):
        if all((d / n).is_file() for n in names):
            return d
    return None


def load_cifar10(root: PathLike, train: bool) -> Tuple[np.ndarray, np.ndarray]:
    """Images uint8 ``[N, 3, 32, 32]`` and labels int64 ``[N]`` of a split (50,000 train / 10,000 test)."""
    d = find_batch_dir(root, batch_names(train))
    if d is None:
        raise FileNotFoundError(
            f"na_cuda.data: CIFAR-10 batches {', '.join(batch_names(train))} are not in "
            f"{Path(root) / BATCH_DIR} nor in {root}"
        )
    parts = [read_cifar_batch(d / n) for n in batch_names(train)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
