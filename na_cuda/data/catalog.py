"""Loading a dataset by name: :func:`load`: find (or download) a dataset's files and build its :class:`Dataset`.
See docs/training.md."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

from . import cifar, idx, nmnist, store
from .dataset import Dataset, ImageDataset
from .digits import MAX_VALUE, load_digits_split
from .layout import ARCHIVE, missing_files
from .names import DATASETS, TITLES, canonical_name

PathLike = Union[str, Path]
log = logging.getLogger("na_cuda.data")
__all__ = ["DATASETS", "canonical_name", "load"]
#: How many mirrors the not-found message lists (with one reason each), and how long a reason may be.
MAX_LISTED, MAX_REASON = 3, 90


def _short(reason: str, url: str) -> str:
    """One failure reason, without the package prefix and the URL it repeats, cut to MAX_REASON characters."""
    text = reason.replace("na_cuda.data: ", "").replace(f" for {url}", "").replace(f"{url}: ", "")
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 3] + "..."


def _tried(attempts: List[Tuple[str, str]]) -> str:
    """The mirrors tried, as a short list: one entry per mirror folder with its first failure reason."""
    by_mirror: Dict[str, str] = {}
    for url, reason in attempts:
        by_mirror.setdefault(url.rsplit("/", 1)[0] + "/", _short(reason, url))
    listed = [f"{base} ({why})" for base, why in list(by_mirror.items())[:MAX_LISTED]]
    more = len(by_mirror) - len(listed)
    return "; ".join(listed) + (f"; and {more} more" if more > 0 else "")


def _not_found(
    name: str,
    train: bool,
    data_dir: Optional[PathLike],
    root: Path,
    missing: List[str],
    attempts: Optional[List[Tuple[str, str]]],
) -> FileNotFoundError:
    """What was looked for and where, how to fix it; then (``attempts`` not None: a download was tried) the
    mirrors that failed, as a short list."""
    split = "train" if train else "test"
    searched = " and ".join(str(d) for d in store.candidates(name, data_dir))
    if name in ("mnist", "fashion-mnist"):
        what = f"{' and '.join(missing)} (gzip; or uncompressed, named without .gz) directly in {root}"
        source = store.SOURCES[name][0].urls[0].rsplit("/", 1)[0] + "/"
    else:  # cifar10
        what = (
            f"the folder {cifar.BATCH_DIR}/ (data_batch_1..5, test_batch) unpacked from {ARCHIVE} in {root}, "
            f"or {ARCHIVE} itself there"
        )
        source = store.SOURCES[name][0].urls[0]
    tried = (
        " (download=False, so nothing was downloaded.)"
        if attempts is None
        else f" Download failed from: {_tried(attempts)}."
        if attempts
        else ""
    )
    return FileNotFoundError(
        f"na_cuda.data: {TITLES[name]} ({split} split) not found in {searched}. Put {what} (source: {source}); or "
        f"pass data_dir= / set ${store.ENV_VAR} to a folder that holds them, directly or in a '{name}' "
        f"subfolder.{tried}"
    )


def _ensure_files(name: str, train: bool, data_dir: Optional[PathLike], download: bool) -> Path:
    root = store.find_root(name, data_dir)
    missing = missing_files(name, root, train)
    for spec in store.SOURCES[name]:  # an archive put there by hand (e.g. cifar-10-python.tar.gz): verify, unpack
        archive = root / spec.name
        if missing and spec.extract and spec.name in missing and archive.is_file():
            ok, detail = store.verify(archive, spec.sha256, spec.sha256_content)
            if not ok:
                raise ValueError(f"na_cuda.data: {archive} is not the published archive ({detail}); delete it")
            log.warning("na_cuda.data: unpacking %s", archive)
            store.extract_tar(archive, root)
            missing = missing_files(name, root, train)
    if not missing:
        return root
    if not download:
        raise _not_found(name, train, data_dir, root, missing, None)
    attempts: List[Tuple[str, str]] = []
    for spec in store.SOURCES[name]:
        if spec.name in missing:
            try:
                store.fetch(spec, root)
            except store.FetchError as exc:
                attempts.extend(exc.attempts)
    missing = missing_files(name, root, train)
    if not missing:
        return root
    raise _not_found(name, train, data_dir, root, missing, attempts)


def load(name: str, train: bool, data_dir: Optional[PathLike] = None, *, download: bool = True, **kw: Any) -> Dataset:
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
        raise TypeError(
            f"na_cuda.data: `train` must be a bool (True: training split, False: test split); got {train!r}"
        )
    if name != "nmnist" and kw:
        raise TypeError(
            f"na_cuda.data: load({name!r}) takes no keyword arguments {sorted(kw)}; T, fraction, "
            "window_us, stabilize and binary are for 'nmnist'"
        )
    if name == "digits":
        images, labels = load_digits_split(train)
        return ImageDataset(name, train, images, labels, num_classes=10, max_value=MAX_VALUE)
    if name == "nmnist":
        allowed = {"T", "fraction", "window_us", "stabilize", "binary"}
        unknown = set(kw) - allowed
        if unknown:
            raise TypeError(
                f"na_cuda.data: load('nmnist') got unknown keyword arguments {sorted(unknown)}; allowed: "
                f"{', '.join(sorted(allowed))}"
            )
        root = store.find_root(name, data_dir)
        if not (root / nmnist.SPLIT_DIRS[train]).is_dir():
            searched = " and ".join(str(d) for d in store.candidates(name, data_dir))
            raise FileNotFoundError(
                f"na_cuda.data: N-MNIST ({'train' if train else 'test'} split) not found in "
                f"{searched}. " + nmnist.MISSING_HELP.format(root=root)
            )
        return nmnist.load_nmnist(root, train, **kw)
    root = _ensure_files(name, train, data_dir, download)
    if name == "cifar10":
        images, labels = cifar.load_cifar10(root, train)
    else:
        images, labels = idx.load_idx_split(root, train)
        images = images[:, None]
    return ImageDataset(name, train, images, labels, num_classes=10)
