"""IDX files (MNIST, Fashion-MNIST): read, validate and write, gzip-compressed or raw.

An IDX file is a 4-byte magic number ``00 00 <type> <ndim>``, ``ndim`` big-endian uint32 dimension sizes, then the
data in C order, big-endian. MNIST and Fashion-MNIST use type 0x08 (uint8): images are 3-D ``[N, 28, 28]`` (magic
0x00000803 = 2051), labels are 1-D ``[N]`` (magic 0x00000801 = 2049). Whether a file is gzip-compressed is read from
its first two bytes (1f 8b), not from its name. See docs/training.md.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path
from typing import Any, Optional, Tuple, Union

import numpy as np

PathLike = Union[str, Path]

# IDX type byte -> numpy dtype (big-endian where it matters).
_DTYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {v: k for k, v in _DTYPES.items()}

IMAGES_MAGIC = 0x00000803  # uint8, 3 dimensions
LABELS_MAGIC = 0x00000801  # uint8, 1 dimension

# The four files of the MNIST family, without the optional ".gz".
IDX_STEMS = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_maybe_gzip(path: PathLike) -> bytes:
    """The bytes of `path`, decompressed when the file starts with the gzip magic (1f 8b)."""
    path = Path(path)
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(
                f"na_cuda.data: {path} is a corrupt or truncated gzip file ({exc}); delete it and download it again"
            ) from exc
    return data


def parse_idx(data: bytes, source: str = "<bytes>") -> np.ndarray:
    """Parse the bytes of an (uncompressed) IDX file into a native-endian numpy array.

    Raises ValueError (naming `source`) for a bad magic number, an unknown type byte, or a payload whose size does
    not match the header.
    """
    if len(data) < 4:
        raise ValueError(f"na_cuda.data: {source} is not an IDX file: only {len(data)} bytes")
    zero, code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or code not in _DTYPES or ndim == 0:
        raise ValueError(
            f"na_cuda.data: {source} is not an IDX file: magic bytes 0x{data[:4].hex()} (expected "
            "00 00 <type> <ndim>, e.g. 0x00000803 for MNIST images, 0x00000801 for labels)"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(
            f"na_cuda.data: {source} is truncated: its header needs {header} bytes, the file has {len(data)}"
        )
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = _DTYPES[code]
    need = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    have = len(data) - header
    if have != need:
        what = "truncated" if have < need else "longer than its header says"
        raise ValueError(
            f"na_cuda.data: {source} is {what}: dimensions {'x'.join(map(str, dims))} of "
            f"{dtype.itemsize}-byte values need {need} data bytes, the file has {have}; delete it and "
            "download it again"
        )
    arr = np.frombuffer(data, dtype=dtype, count=need // dtype.itemsize, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="), copy=False) if dtype.itemsize > 1 else arr


def read_idx(path: PathLike) -> np.ndarray:
    """Read an IDX file (gzip or raw) into a numpy array; see :func:`parse_idx` for the checks."""
    return parse_idx(read_maybe_gzip(path), str(path))


def write_idx(path: PathLike, array: np.ndarray, *, compress: Optional[bool] = None) -> Path:
    """Write `array` as an IDX file (gzip-compressed when `compress`, or by default when `path` ends in ".gz")."""
    path = Path(path)
    array = np.asarray(array)
    dtype = array.dtype.newbyteorder(">") if array.dtype.itemsize > 1 else array.dtype
    if dtype not in _CODES:
        raise ValueError(
            f"na_cuda.data: write_idx: dtype {array.dtype} has no IDX type code; use one of uint8, "
            "int8, int16, int32, float32, float64"
        )
    if array.ndim == 0 or array.ndim > 255:
        raise ValueError(f"na_cuda.data: write_idx: `array` must have 1 to 255 dimensions; got {array.ndim}")
    data = struct.pack(">HBB", 0, _CODES[dtype], array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data += np.ascontiguousarray(array, dtype=dtype).tobytes()
    if compress is None:
        compress = path.name.endswith(".gz")
    path.write_bytes(gzip.compress(data, mtime=0) if compress else data)
    return path


def find_idx_file(root: PathLike, stem: str) -> Optional[Path]:
    """`root/stem` or `root/stem.gz`, whichever exists (the raw file first), else None."""
    for name in (stem, stem + ".gz"):
        p = Path(root) / name
        if p.is_file():
            return p
    return None


def load_idx_split(root: PathLike, train: bool, num_classes: int = 10) -> Tuple[np.ndarray, np.ndarray]:
    """Images uint8 ``[N, H, W]`` and labels uint8 ``[N]`` of one split of an MNIST-family folder.

    The caller makes sure the files exist (see ``store``); this checks magic numbers, types, that images and labels
    agree in count and that every label is below `num_classes`.
    """
    img_stem, lab_stem = IDX_STEMS[bool(train)]
    paths = []
    for stem in (img_stem, lab_stem):
        p = find_idx_file(root, stem)
        if p is None:
            raise FileNotFoundError(f"na_cuda.data: neither {stem} nor {stem}.gz is in {root}")
        paths.append(p)
    images, labels = _read_checked(paths[0], IMAGES_MAGIC, 3), _read_checked(paths[1], LABELS_MAGIC, 1)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"na_cuda.data: {paths[0]} holds {images.shape[0]} images but {paths[1]} holds "
            f"{labels.shape[0]} labels; the two files are from different downloads"
        )
    if labels.size and int(labels.max()) >= num_classes:
        raise ValueError(f"na_cuda.data: {paths[1]} has label {int(labels.max())}, expected 0..{num_classes - 1}")
    return images, labels


def _read_checked(path: Path, magic: int, ndim: int) -> np.ndarray:
    data = read_maybe_gzip(path)
    got = struct.unpack(">I", data[:4])[0] if len(data) >= 4 else None
    if got != magic:
        got_s = "none (file shorter than 4 bytes)" if got is None else f"0x{got:08x}"
        kind = "images (uint8, 3-D)" if ndim == 3 else "labels (uint8, 1-D)"
        raise ValueError(
            f"na_cuda.data: {path} has magic number {got_s}; an IDX file of {kind} has 0x{magic:08x}. "
            "Is it the right file (images vs labels), and not an HTML error page?"
        )
    return parse_idx(data, str(path))
