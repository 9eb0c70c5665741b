"""N-MNIST (Orchard et al. 2015): event recordings of MNIST digits, binned into frames on the fly.

Frames are ``T x 2 x 34 x 34`` (polarity, y, x) over the first ``fraction`` of each recording (or bins of
``window_us``), binary by default, with the saccade motion undone (``stabilize``). The file format, the binning
and how it compares with TSSL-BP's preprocessing, the memory and time costs: docs/training.md, "N-MNIST
(na_cuda.data.nmnist)".
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .dataset import Dataset, Device, IndexLike, as_index

PathLike = Union[str, Path]

SIZE = 34
PLANE = SIZE * SIZE  # 1156 pixels per polarity
PIXELS = 2 * PLANE  # 2312 values per frame
SPLIT_DIRS = {True: "Train", False: "Test"}
SACCADE_US = 105_000.0  # each of the three saccades of the N-MNIST recordings lasts 105 ms

MISSING_HELP = (
    "N-MNIST has no stable direct download URL. Download Train.zip and Test.zip from "
    "https://www.garrickorchard.com/datasets/n-mnist (hosted on Mendeley Data: "
    "https://data.mendeley.com/datasets/468j46mzdv/1) and unzip them into {root}, so that {root}/Train/0/*.bin .. "
    "{root}/Train/9/*.bin and {root}/Test/0/*.bin .. {root}/Test/9/*.bin exist."
)


# ------------------------------------------------------------------------------------------------------ files
def decode_events(data: Union[bytes, np.ndarray], source: str = "<bytes>") -> Dict[str, np.ndarray]:
    """Decode 5-byte N-MNIST events: x, y, p (uint8; p = 1 for ON) and ts (int64, microseconds)."""
    buf = np.frombuffer(data, dtype=np.uint8) if isinstance(data, (bytes, bytearray)) else np.asarray(data, np.uint8)
    if buf.size % 5:
        raise ValueError(
            f"na_cuda.data: {source} is not an N-MNIST event file: {buf.size} bytes is not a multiple of "
            "5 (one event is 40 bits)"
        )
    ev = buf.reshape(-1, 5)
    b2 = ev[:, 2]
    ts = ((b2 & 0x7F).astype(np.int64) << 16) | (ev[:, 3].astype(np.int64) << 8) | ev[:, 4].astype(np.int64)
    return {"x": ev[:, 0].copy(), "y": ev[:, 1].copy(), "p": (b2 >> 7).astype(np.uint8), "ts": ts}


def read_nmnist_events(path: PathLike) -> Dict[str, np.ndarray]:
    """The events of one ``.bin`` file (see :func:`decode_events`)."""
    return decode_events(Path(path).read_bytes(), str(path))


def encode_events(x: Sequence[int], y: Sequence[int], p: Sequence[int], ts: Sequence[int]) -> bytes:
    """Events in the 5-byte N-MNIST format (the inverse of :func:`decode_events`); for tests and tools."""
    xa, ya, pa, ta = (np.asarray(v, dtype=np.int64) for v in (x, y, p, ts))
    if not (xa.shape == ya.shape == pa.shape == ta.shape and xa.ndim == 1):
        raise ValueError("na_cuda.data: encode_events: x, y, p and ts must be 1-D of the same length")
    if xa.size and (
        xa.min() < 0
        or xa.max() > 255
        or ya.min() < 0
        or ya.max() > 255
        or ta.min() < 0
        or ta.max() >= 1 << 23
        or not np.isin(pa, (0, 1)).all()
    ):
        raise ValueError("na_cuda.data: encode_events: x, y must be in 0..255, p in {0, 1}, ts in 0..2**23-1")
    ev = np.stack([xa, ya, (pa << 7) | (ta >> 16), (ta >> 8) & 0xFF, ta & 0xFF], axis=1).astype(np.uint8)
    return ev.tobytes()


def list_files(root: PathLike, train: bool) -> Tuple[List[Path], np.ndarray]:
    """The ``.bin`` files of a split, by digit then name, and their labels."""
    split = Path(root) / SPLIT_DIRS[bool(train)]
    if not split.is_dir():
        raise FileNotFoundError(f"na_cuda.data: {split} does not exist. " + MISSING_HELP.format(root=root))
    missing = [str(d) for d in range(10) if not (split / str(d)).is_dir()]
    if missing:
        raise FileNotFoundError(
            f"na_cuda.data: {split} lacks the digit folders {', '.join(missing)}; the archive was "
            "unpacked only in part. " + MISSING_HELP.format(root=root)
        )
    paths: List[Path] = []
    labels: List[int] = []
    for d in range(10):
        files = sorted((split / str(d)).glob("*.bin"))
        paths += files
        labels += [d] * len(files)
    if not paths:
        raise FileNotFoundError(f"na_cuda.data: no .bin files under {split}/0..9. " + MISSING_HELP.format(root=root))
    return paths, np.asarray(labels, dtype=np.int64)


# ------------------------------------------------------------------------------------------------------ binning
def stabilize(x: np.ndarray, y: np.ndarray, ts: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Orchard's ``stabilize.m``: shift x, y back by the saccade displacement at time ts, rounded half up; returns
    int64 x, y (which may leave 0..33).

    stabilize.m: for t <= 105 ms, dx = 3.5 t / 105 ms, dy = 7 t / 105 ms; for 105 < t <= 210 ms, dx = 3.5 + 3.5 (t - 105
    ms) / 105 ms, dy = 7 - 7 (t - 105 ms) / 105 ms; after that dx = 7 - 7 (t - 210 ms) / 105 ms, dy = 0; then
    x - dx and y - dy are rounded (MATLAB round; for the values kept, >= 1 in its 1-based coordinates, that is
    floor(v + 0.5), which commutes with the shift to 0-based). Evaluated exactly in integers, scaled by 210000 (2 x
    105 ms in us), so half-way cases round as in MATLAB's double arithmetic, where they are exact too.
    """
    t = np.asarray(ts, dtype=np.int64)
    x2 = 210_000 * np.asarray(x, dtype=np.int64) + 105_000  # 210000 * (x + 0.5)
    y2 = 210_000 * np.asarray(y, dtype=np.int64) + 105_000
    first, third = t <= 105_000, t > 210_000
    # 210000 * dx: 7 t in saccades 1 and 2 (3.5 + 3.5 (t - 105k) / 105k = 3.5 t / 105k), 4410000 - 14 t in saccade 3
    xs = np.where(third, x2 - 4_410_000 + 14 * t, x2 - 7 * t)
    # 210000 * dy: 14 t in saccade 1, 2940000 - 14 t in saccade 2, 0 in saccade 3
    ys = np.where(first, y2 - 14 * t, np.where(third, y2, y2 - 2_940_000 + 14 * t))
    return xs // 210_000, ys // 210_000


def bin_events(
    sample: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    p: np.ndarray,
    ts: np.ndarray,
    n_samples: int,
    *,
    T: int,
    fraction: float = 1.0,
    window_us: Optional[float] = None,
    stabilize_motion: bool = True,
    binary: bool = True,
) -> Tuple[np.ndarray, np.ndarray]:
    """Frame codes of the events of `n_samples` recordings (events grouped by nondecreasing `sample` id).

    Returns ``codes`` int32 (``bin * 2312 + p * 1156 + y * 34 + x``, per sample sorted and unique when `binary`) and
    ``counts`` int64 [n_samples] (codes per sample). See the module docstring for the binning rule.
    """
    sample = np.asarray(sample, dtype=np.int64)
    ts = np.asarray(ts, dtype=np.int64)
    if window_us is not None:
        bins = (
            np.floor_divide(ts, window_us).astype(np.int64)
            if float(window_us).is_integer()
            else np.floor(ts / float(window_us)).astype(np.int64)
        )
    else:
        last = np.full(n_samples, -1, dtype=np.int64)
        if ts.size:
            np.maximum.at(last, sample, ts)
        span = fraction * (last[sample] + 1).astype(np.float64)
        bins = np.floor(ts.astype(np.float64) * T / span).astype(np.int64)
    keep = (bins >= 0) & (bins < T)
    bins, sample, ts = bins[keep], sample[keep], ts[keep]
    x, y, p = (np.asarray(v)[keep].astype(np.int64) for v in (x, y, p))
    if stabilize_motion:
        x, y = stabilize(x, y, ts)
    keep = (x >= 0) & (x < SIZE) & (y >= 0) & (y < SIZE)
    codes = (bins * PIXELS + p * PLANE + y * SIZE + x)[keep]
    sample = sample[keep]
    if binary:
        # sort + drop repeats (np.unique hashes, slower); the keys come nearly sorted (by sample, then by time), which
        # the stable sort (timsort) exploits
        key = np.sort(sample * (T * PIXELS) + codes, kind="stable")
        key = key[np.concatenate(([True], key[1:] != key[:-1]))] if key.size else key
        sample, codes = key // (T * PIXELS), key % (T * PIXELS)
    return codes.astype(np.int32), np.bincount(sample, minlength=n_samples).astype(np.int64)


def frames_from_codes(codes: Sequence[np.ndarray], T: int, binary: bool = True) -> np.ndarray:
    """Dense frames ``[N, T, 2, 34, 34]`` float32 of per-sample code arrays (a slow, simple reference)."""
    out = np.zeros((len(codes), T * PIXELS), dtype=np.float32)
    for i, c in enumerate(codes):
        np.add.at(out[i], np.asarray(c, dtype=np.int64), 1.0)
    if binary:
        out = np.minimum(out, 1.0)
    return out.reshape(len(codes), T, 2, SIZE, SIZE)


# ------------------------------------------------------------------------------------------------------ dataset
class EventDataset(Dataset):
    """N-MNIST split kept as per-sample event codes; ``batch`` builds frames ``[T, B, 2, 34, 34]`` on the device."""

    kind = "frames"

    def __init__(
        self,
        name: str,
        train: bool,
        codes: Union[np.ndarray, torch.Tensor],
        counts: Union[np.ndarray, torch.Tensor],
        labels: Union[np.ndarray, torch.Tensor],
        *,
        T: int,
        binary: bool = True,
        num_classes: int = 10,
        info: Optional[dict] = None,
    ) -> None:
        codes = torch.as_tensor(np.asarray(codes, dtype=np.int32)) if not isinstance(codes, torch.Tensor) else codes
        counts = (
            torch.as_tensor(np.asarray(counts, dtype=np.int64))
            if not isinstance(counts, torch.Tensor)
            else counts.to(torch.int64)
        )
        labels = torch.as_tensor(np.asarray(labels)) if not isinstance(labels, torch.Tensor) else labels
        if counts.dim() != 1 or labels.shape != counts.shape or int(counts.sum()) != codes.numel():
            raise ValueError(
                f"na_cuda.data: EventDataset: {labels.numel()} labels, {counts.numel()} counts summing to "
                f"{int(counts.sum())}, {codes.numel()} codes; they must agree"
            )
        self.name, self.train, self.num_classes = name, bool(train), int(num_classes)
        self.T, self.binary = int(T), bool(binary)
        self.info = dict(info or {})
        self.sample_shape = (self.T, 2, SIZE, SIZE)
        self.labels = labels.to(dtype=torch.int64, device="cpu")
        self._codes = codes.to(torch.int32)
        self._offsets = torch.cat([torch.zeros(1, dtype=torch.int64), torch.cumsum(counts, 0)]).to(codes.device)
        self._labels_store = self.labels.to(codes.device)

    @property
    def num_events(self) -> int:
        """Stored codes (events after binning and, when binary, deduplication)."""
        return int(self._codes.numel())

    def sample_codes(self, i: int) -> torch.Tensor:
        """The codes of sample `i` (int32)."""
        return self._codes[int(self._offsets[i]) : int(self._offsets[i + 1])]

    def batch(self, index: IndexLike, device: Device = "cpu") -> Tuple[torch.Tensor, torch.Tensor]:
        device = torch.device(device)
        store = self._codes.device
        idx = as_index(index, len(self), store)
        starts = self._offsets.index_select(0, idx)
        lens = self._offsets.index_select(0, idx + 1) - starts
        B, T = int(idx.numel()), self.T
        x = torch.zeros(T * B * PIXELS, dtype=torch.float32, device=device)
        total = int(lens.sum()) if B else 0
        if total:
            # gather the codes where they are stored; expand them into frame positions on the batch's device
            first = torch.cumsum(lens, 0) - lens  # where each sample's codes start in the gathered list
            pos = torch.arange(total, device=store) + torch.repeat_interleave(starts - first, lens, output_size=total)
            codes = self._codes.index_select(0, pos).to(device).to(torch.int64)
            sample = torch.repeat_interleave(torch.arange(B, device=device), lens.to(device), output_size=total)
            t = torch.div(codes, PIXELS, rounding_mode="floor")
            flat = (t * B + sample) * PIXELS + (codes - t * PIXELS)
            if self.binary:
                x.index_fill_(0, flat, 1.0)
            else:
                x.index_put_((flat,), torch.ones(total, dtype=torch.float32, device=device), accumulate=True)
        y = self._labels_store.index_select(0, idx).to(device)
        return x.view(T, B, 2, SIZE, SIZE), y

    def to(self, device: Device) -> EventDataset:
        self._codes = self._codes.to(device)
        self._offsets = self._offsets.to(device)
        self._labels_store = self.labels.to(device)
        return self


def load_nmnist(
    root: PathLike,
    train: bool,
    *,
    T: int = 30,
    fraction: float = 0.3,
    window_us: Optional[float] = None,
    stabilize: bool = True,
    binary: bool = True,
    chunk: int = 2048,
) -> EventDataset:
    """Read a split of N-MNIST from `root` (``root/Train`` or ``root/Test``) into an :class:`EventDataset`.

    T: frames per sample. fraction: the leading part of each recording binned into the T frames (0 < fraction <= 1).
    window_us: fixed bin width in microseconds instead (then `fraction` is ignored). stabilize: undo the saccade
    motion. binary: a pixel is 1 if hit in its bin (else the event count). chunk: files decoded together.
    """
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise ValueError(f"na_cuda.data: nmnist `T` must be a positive int (30 in the paper); got {T!r}")
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 < float(fraction) <= 1.0:
        raise ValueError(f"na_cuda.data: nmnist `fraction` must be in (0, 1] (0.3 in the paper); got {fraction!r}")
    if window_us is not None and (
        isinstance(window_us, bool) or not isinstance(window_us, (int, float)) or not float(window_us) > 0
    ):
        raise ValueError(
            f"na_cuda.data: nmnist `window_us` must be None or a bin width > 0 in microseconds "
            f"(TSSL-BP: 3000); got {window_us!r}"
        )
    paths, labels = list_files(root, train)
    codes_parts, counts_parts = [], []
    for start in range(0, len(paths), chunk):
        group = paths[start : start + chunk]
        blobs = [p.read_bytes() for p in group]
        for p, b in zip(group, blobs):
            if len(b) % 5:
                raise ValueError(
                    f"na_cuda.data: {p} is not an N-MNIST event file: {len(b)} bytes is not a multiple "
                    "of 5 (one event is 40 bits); the file is truncated, delete and unpack it again"
                )
        ev = decode_events(b"".join(blobs), f"{group[0].parent}")
        sample = np.repeat(np.arange(len(group), dtype=np.int64), [len(b) // 5 for b in blobs])
        codes, counts = bin_events(
            sample,
            ev["x"],
            ev["y"],
            ev["p"],
            ev["ts"],
            len(group),
            T=T,
            fraction=float(fraction),
            window_us=window_us,
            stabilize_motion=stabilize,
            binary=binary,
        )
        codes_parts.append(codes)
        counts_parts.append(counts)
    info = dict(root=str(root), T=T, fraction=float(fraction), window_us=window_us, stabilize=stabilize, binary=binary)
    return EventDataset(
        "nmnist",
        train,
        np.concatenate(codes_parts),
        np.concatenate(counts_parts),
        labels,
        T=T,
        binary=binary,
        info=info,
    )
