"""Which files each dataset keeps in its folder: the marker that a folder holds a dataset (used by
``store.find_root``) and the files a split still lacks (used by ``catalog.load``). Depends only on the format
modules ``idx`` and ``cifar``. See docs/training.md."""

from __future__ import annotations

from pathlib import Path
from typing import List, Union

from . import cifar, idx

PathLike = Union[str, Path]
ARCHIVE = "cifar-10-python.tar.gz"


def has_files(name: str, folder: PathLike) -> bool:
    """Whether `folder` holds (some of) dataset `name`'s files (`name` canonical)."""
    folder = Path(folder)
    if name in ("mnist", "fashion-mnist"):
        return any(idx.find_idx_file(folder, s) is not None for split in (True, False) for s in idx.IDX_STEMS[split])
    if name == "cifar10":
        return (folder / cifar.BATCH_DIR).is_dir() or any(
            (folder / n).is_file() for n in cifar.TRAIN_BATCHES + cifar.TEST_BATCHES + (ARCHIVE,)
        )
    if name == "nmnist":
        return (folder / "Train").is_dir() or (folder / "Test").is_dir()
    return False


def missing_files(name: str, root: Path, train: bool) -> List[str]:
    """The files a split needs that are not under `root` (names as they would be downloaded)."""
    if name in ("mnist", "fashion-mnist"):
        return [s + ".gz" for s in idx.IDX_STEMS[train] if idx.find_idx_file(root, s) is None]
    if name == "cifar10":
        return [] if cifar.find_batch_dir(root, cifar.batch_names(train)) else [ARCHIVE]
    return []
