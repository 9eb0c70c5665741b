"""The dataset names, and :func:`load`: find (or download) a dataset's files and build its :class:`Dataset`."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, List, Optional, Tuple, Union

from . import cifar, idx, nmnist, store
from .dataset import Dataset, ImageDataset

PathLike = Union[str, Path]
log = logging.getLogger("na_cuda.data")

DATASETS: Tuple[str, ...] = ("mnist", "fashion-mnist", "cifar10", "nmnist", "digits")
_ALIASES = {"fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist", "fmnist": "fashion-mnist",
            "cifar-10": "cifar10", "cifar_10": "cifar10", "n-mnist": "nmnist", "n_mnist": "nmnist"}
ARCHIVE = "cifar-10-python.tar.gz"
_TITLES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST", "cifar10": "CIFAR-10", "nmnist": "N-MNIST",
           "digits": "digits"}


def canonical_name(name: str) -> str:
    """The canonical spelling (one of :data:`DATASETS`) of a dataset name; case and a few aliases are accepted."""
    if not isinstance(name, str):
        raise TypeError(f"na_cuda.data: the dataset `name` must be a str, one of {', '.join(DATASETS)}; got "
                        f"{type(name).__name__}")
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in DATASETS:
        raise ValueError(f"na_cuda.data: unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return key


def has_files(name: str, folder: PathLike) -> bool:
    """Whether `folder` holds (some of) dataset `name`'s files: the marker used by ``find_root``."""
    folder = Path(folder)
    if name in ("mnist", "fashion-mnist"):
        return any(idx.find_idx_file(folder, s) is not None for split in (True, False) for s in idx.IDX_STEMS[split])
    if name == "cifar10":
        return (folder / cifar.BATCH_DIR).is_dir() or any((folder / n).is_file() for n in
                                                          cifar.TRAIN_BATCHES + cifar.TEST_BATCHES + (ARCHIVE,))
    if name == "nmnist":
        return (folder / "Train").is_dir() or (folder / "Test").is_dir()
    return False


def _missing(name: str, root: Path, train: bool) -> List[str]:
    """The files a split needs that are not under `root` (names as they would be downloaded)."""
    if name in ("mnist", "fashion-mnist"):
        return [s + ".gz" for s in idx.IDX_STEMS[train] if idx.find_idx_file(root, s) is None]
    if name == "cifar10":
        return [] if cifar.find_batch_dir(root, cifar.batch_names(train)) else [ARCHIVE]
    return []


def _not_found(name: str, train: bool, data_dir: Optional[PathLike], root: Path, missing: List[str],
               errors: List[str]) -> FileNotFoundError:
    split = "train" if train else "test"
    searched = " and ".join(str(d) for d in store.candidates(name, data_dir))
    if name in ("mnist", "fashion-mnist"):
        what = (f"{' and '.join(missing)} (gzip; or uncompressed, named without .gz) directly in {root}")
        urls = store.SOURCES[name][0].urls[0].rsplit("/", 1)[0] + "/"
    else:  # cifar10
        what = (f"the folder {cifar.BATCH_DIR}/ (data_batch_1..5, test_batch) unpacked from {ARCHIVE} in {root}, "
                f"or {ARCHIVE} itself there")
        urls = store.SOURCES[name][0].urls[0]
    tried = f" Download failed: {'; '.join(errors)}." if errors else " (download=False, so nothing was downloaded.)"
    return FileNotFoundError(
        f"na_cuda.data: {_TITLES[name]} ({split} split) not found in {searched}.{tried} Put {what} (source: {urls}); "
        f"or pass data_dir= / set ${store.ENV_VAR} to a folder that holds them, directly or in a '{name}' subfolder.")


def _ensure_files(name: str, train: bool, data_dir: Optional[PathLike], download: bool) -> Path:
    root = store.find_root(name, data_dir)
    missing = _missing(name, root, train)
    for spec in store.SOURCES[name]:  # an archive put there by hand (e.g. cifar-10-python.tar.gz): verify, unpack
        archive = root / spec.name
        if missing and spec.extract and spec.name in missing and archive.is_file():
            ok, detail = store.verify(archive, spec.sha256, spec.sha256_content)
            if not ok:
                raise ValueError(f"na_cuda.data: {archive} is not the published archive ({detail}); delete it")
            log.warning("na_cuda.data: unpacking %s", archive)
            store.extract_tar(archive, root)
            missing = _missing(name, root, train)
    if not missing:
        return root
    errors: List[str] = []
    if download:
        for spec in store.SOURCES[name]:
            if spec.name in missing:
                try:
                    store.fetch(spec, root)
                except OSError as exc:
                    errors.append(f"{spec.name}: {exc}")
        missing = _missing(name, root, train)
        if not missing:
            return root
    raise _not_found(name, train, data_dir, root, missing, errors)


def load(name: str, train: bool, data_dir: Optional[PathLike] = None, *, download: bool = True,
         **kw: Any) -> Dataset:
    """Load one split of a dataset.

    name: one of :data:`DATASETS`. train: the training split (else the test split). data_dir: where the files are
    (directly or in ``<data_dir>/<name>``); default ``$NA_CUDA_DATA``, else ``~/.cache/na_cuda``. download: fetch
    missing files from the canonical sources, verified by SHA-256 (MNIST, Fashion-MNIST, CIFAR-10; N-MNIST must be
    put in place by hand). Raises FileNotFoundError saying which files to put where when they are missing.

    Keyword arguments, "nmnist" only: ``T`` (frames, default 30), ``fraction`` (leading part of each recording binned
    into the T frames, default 0.3), ``window_us`` (fixed bin width in us instead of `fraction`), ``stabilize``
    (default True), ``binary`` (default True); see ``na_cuda.data.nmnist``.
    """
    name = canonical_name(name)
    if not isinstance(train, bool):
        raise TypeError(f"na_cuda.data: `train` must be a bool (True: training split, False: test split); "
                        f"got {train!r}")
    if name != "nmnist" and kw:
        raise TypeError(f"na_cuda.data: load({name!r}) takes no keyword arguments {sorted(kw)}; T, fraction, "
                        "window_us, stabilize and binary are for 'nmnist'")
    if name == "digits":
        from .digits import MAX_VALUE, load_digits_split

        images, labels = load_digits_split(train)
        return ImageDataset(name, train, images, labels, num_classes=10, max_value=MAX_VALUE)
    if name == "nmnist":
        allowed = {"T", "fraction", "window_us", "stabilize", "binary"}
        unknown = set(kw) - allowed
        if unknown:
            raise TypeError(f"na_cuda.data: load('nmnist') got unknown keyword arguments {sorted(unknown)}; allowed: "
                            f"{', '.join(sorted(allowed))}")
        root = store.find_root(name, data_dir)
        if not (root / nmnist.SPLIT_DIRS[train]).is_dir():
            searched = " and ".join(str(d) for d in store.candidates(name, data_dir))
            raise FileNotFoundError(f"na_cuda.data: N-MNIST ({'train' if train else 'test'} split) not found in "
                                    f"{searched}. " + nmnist.MISSING_HELP.format(root=root))
        return nmnist.load_nmnist(root, train, **kw)
    root = _ensure_files(name, train, data_dir, download)
    if name == "cifar10":
        images, labels = cifar.load_cifar10(root, train)
    else:
        images, labels = idx.load_idx_split(root, train)
        images = images[:, None]
    return ImageDataset(name, train, images, labels, num_classes=10)
