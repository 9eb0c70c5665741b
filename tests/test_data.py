"""na_cuda.data: file formats (IDX, CIFAR-10 batches, N-MNIST events) on generated files in the published formats,
the real MNIST/Fashion-MNIST copies in shared/data when present, lookup and verified download (against a local HTTP
server), on-device augmentation, normalisation and the static-image encoding."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import importlib.util
import io
import math
import os
import pickle
import tarfile
import threading
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch

from na_cuda import data
from na_cuda.data import cifar, idx, nmnist, store

CUDA = pytest.param(
    "cuda",
    marks=[pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")],
)
DEVICES = ["cpu", CUDA]
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


# --------------------------------------------------------------------------------------------------------- helpers
def make_idx_folder(root: Path, n_train: int = 12, n_test: int = 7, gz: bool = True, seed: int = 0):
    """An MNIST-layout folder with random 28x28 images; returns {train: (images, labels), ...}."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    out = {}
    for train, n in ((True, n_train), (False, n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n).astype(np.uint8)
        img_stem, lab_stem = idx.IDX_STEMS[train]
        suffix = ".gz" if gz else ""
        idx.write_idx(root / (img_stem + suffix), images)
        idx.write_idx(root / (lab_stem + suffix), labels)
        out[train] = (images, labels)
    return out


def make_cifar_folder(root: Path, per_batch: int = 3, seed: int = 0):
    """cifar-10-batches-py/ with `per_batch` random images per batch; returns {train: (images, labels)}."""
    rng = np.random.default_rng(seed)
    d = root / cifar.BATCH_DIR
    d.mkdir(parents=True, exist_ok=True)
    out = {True: ([], []), False: ([], [])}
    for train in (True, False):
        for name in cifar.batch_names(train):
            images = rng.integers(0, 256, (per_batch, 3, 32, 32), dtype=np.uint8)
            labels = rng.integers(0, 10, per_batch)
            cifar.write_cifar_batch(d / name, images, labels, batch_label=name)
            out[train][0].append(images)
            out[train][1].append(labels)
    return {k: (np.concatenate(v[0]), np.concatenate(v[1])) for k, v in out.items()}


def make_nmnist_folder(root: Path, per_digit: int = 2, seed: int = 0):
    """Train/ and Test/ with `per_digit` random recordings per digit; returns {train: [(label, events), ...]}."""
    rng = np.random.default_rng(seed)
    out = {}
    for train, split in ((True, "Train"), (False, "Test")):
        recs = []
        for d in range(10):
            folder = root / split / str(d)
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_digit):
                n = int(rng.integers(20, 60))
                ev = dict(
                    x=rng.integers(0, 34, n),
                    y=rng.integers(0, 34, n),
                    p=rng.integers(0, 2, n),
                    ts=np.sort(rng.integers(0, 300_000, n)),
                )
                (folder / f"{i:05d}.bin").write_bytes(nmnist.encode_events(ev["x"], ev["y"], ev["p"], ev["ts"]))
                recs.append((d, ev))
        out[train] = recs
    return out


def dense_frames(ev: dict, T: int, fraction: float, binary: bool) -> np.ndarray:
    """Independent reference of the binning rule (no stabilisation): [T, 2, 34, 34]."""
    out = np.zeros((T, 2, 34, 34), dtype=np.float32)
    span = fraction * (int(np.max(ev["ts"])) + 1)
    for x, y, p, t in zip(ev["x"], ev["y"], ev["p"], ev["ts"]):
        b = math.floor(t * T / span)
        if b < T:
            out[b, p, y, x] = 1.0 if binary else out[b, p, y, x] + 1.0
    return out


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.fixture
def http_root(tmp_path, monkeypatch):
    """A folder served on http://127.0.0.1:<port>/ by a thread (shut down after the test); proxies disabled."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "*")
    www = tmp_path / "www"
    www.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(www)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield www, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


# --------------------------------------------------------------------------------------------------------- names
def test_names_and_bad_arguments(tmp_path):
    assert data.DATASETS == ("mnist", "fashion-mnist", "cifar10", "nmnist", "digits")
    assert data.canonical_name("Fashion_MNIST") == "fashion-mnist" and data.canonical_name("CIFAR-10") == "cifar10"
    with pytest.raises(ValueError, match="unknown dataset 'svhn'.*mnist"):
        data.load("svhn", True)
    with pytest.raises(TypeError, match="`train` must be a bool"):
        data.load("digits", "train")
    with pytest.raises(TypeError, match="no keyword arguments.*'T'"):
        data.load("digits", True, T=5)
    make_nmnist_folder(tmp_path, per_digit=1)
    with pytest.raises(TypeError, match="unknown keyword arguments.*'steps'"):
        data.load("nmnist", True, tmp_path, steps=5)
    with pytest.raises(ValueError, match="`fraction` must be in"):
        data.load("nmnist", True, tmp_path, fraction=0.0)
    with pytest.raises(ValueError, match="`T` must be a positive int"):
        data.load("nmnist", True, tmp_path, T=0)


# --------------------------------------------------------------------------------------------------------- IDX
@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "raw"])
def test_idx_load_and_batch(tmp_path, gz):
    ref = make_idx_folder(tmp_path / "mnist", gz=gz)
    for train in (True, False):
        ds = data.load("mnist", train, tmp_path, download=False)
        images, labels = ref[train]
        assert (ds.kind, ds.sample_shape, ds.num_classes, len(ds)) == ("image", (1, 28, 28), 10, len(labels))
        assert ds.labels.dtype == torch.int64 and ds.labels.device.type == "cpu"
        assert torch.equal(ds.labels, torch.from_numpy(labels.astype(np.int64)))
        index = torch.tensor([3, 0, 3])
        x, y = ds.batch(index, "cpu")
        assert x.shape == (3, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
        assert torch.equal(x[:, 0] * 255, torch.from_numpy(images[[3, 0, 3]].astype(np.float32)))
        assert torch.equal(y, torch.from_numpy(labels[[3, 0, 3]].astype(np.int64)))


def test_idx_validation(tmp_path):
    ref = make_idx_folder(tmp_path, n_test=5)
    labels_gz = tmp_path / "t10k-labels-idx1-ubyte.gz"
    images_gz = tmp_path / "t10k-images-idx3-ubyte.gz"
    # images and labels swapped: the magic number says which is which
    images_gz.write_bytes(labels_gz.read_bytes())
    with pytest.raises(ValueError, match="magic number 0x00000801.*0x00000803"):
        data.load("mnist", False, tmp_path, download=False)
    # truncated payload
    idx.write_idx(images_gz, ref[False][0])
    raw = gzip.decompress(images_gz.read_bytes())
    images_gz.write_bytes(gzip.compress(raw[:-10]))
    with pytest.raises(ValueError, match="truncated.*5x28x28"):
        data.load("mnist", False, tmp_path, download=False)
    # image and label counts differ
    idx.write_idx(images_gz, ref[False][0][:4])
    with pytest.raises(ValueError, match="4 images but .* 5 labels"):
        data.load("mnist", False, tmp_path, download=False)
    # corrupt gzip
    images_gz.write_bytes(b"\x1f\x8b" + b"\x00" * 20)
    with pytest.raises(ValueError, match="corrupt or truncated gzip"):
        data.load("mnist", False, tmp_path, download=False)
    # not an IDX file at all (e.g. an HTML error page saved under the name)
    with pytest.raises(ValueError, match="not an IDX file"):
        idx.parse_idx(b"<html>", "page")
    # round trip of a wider type
    a = np.arange(-6, 6, dtype=np.int32).reshape(3, 4)
    assert np.array_equal(idx.read_idx(idx.write_idx(tmp_path / "a.idx", a)), a)


def test_missing_files_message(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        data.load("mnist", False, tmp_path, download=False)
    msg = str(err.value)
    assert "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz" in msg and str(tmp_path / "mnist") in msg
    assert "NA_CUDA_DATA" in msg and "download=False" in msg
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py"):
        data.load("cifar10", True, tmp_path, download=False)
    with pytest.raises(FileNotFoundError, match="Train.zip and Test.zip.*Train/0/\\*.bin"):
        data.load("nmnist", True, tmp_path)


# (file, sha256 of the decompressed content) for the digest table of store.SOURCES.
_SHARED_FILES = [(ds, spec) for ds in ("mnist", "fashion-mnist") for spec in store.SOURCES[ds]]


@pytest.mark.skipif(not (SHARED / "mnist").is_dir(), reason=f"real MNIST not found at {SHARED / 'mnist'}")
def test_real_mnist_test_split():
    ds = data.load("mnist", False, SHARED, download=False)
    assert len(ds) == 10_000 and ds.sample_shape == (1, 28, 28)
    assert torch.bincount(ds.labels, minlength=10).tolist() == MNIST_TEST_COUNTS
    assert ds.labels[:5].tolist() == [7, 2, 1, 0, 4]
    x, _ = ds.batch(torch.arange(100), "cpu")
    assert 0.0 <= float(x.min()) and float(x.max()) == 1.0 and 0.08 < float(x.mean()) < 0.18


@pytest.mark.skipif(
    not (SHARED / "fashion-mnist").is_dir(), reason=f"real Fashion-MNIST not found at {SHARED / 'fashion-mnist'}"
)
def test_real_fashion_mnist_test_split():
    ds = data.load("fashion-mnist", False, SHARED / "fashion-mnist", download=False)
    assert torch.bincount(ds.labels, minlength=10).tolist() == [1000] * 10
    assert int(ds.labels[0]) == 9  # an ankle boot


@pytest.mark.parametrize(
    "name,spec",
    [p for p in _SHARED_FILES if p[1].name.startswith("t10k")],
    ids=lambda v: v if isinstance(v, str) else v.name,
)
def test_real_files_match_digests(name, spec):
    path = SHARED / name / spec.name
    if not path.is_file():
        pytest.skip(f"{path} not present")
    ok, detail = store.verify(path, spec.sha256, spec.sha256_content)
    assert ok, detail


# --------------------------------------------------------------------------------------------------------- CIFAR-10
def test_cifar_layout_and_batches(tmp_path):
    ref = make_cifar_folder(tmp_path)
    # the published layout: a row is 1024 red, 1024 green, 1024 blue values, each plane row-major
    with open(tmp_path / cifar.BATCH_DIR / "test_batch", "rb") as f:
        row = pickle.load(f, encoding="bytes")[b"data"][1]
    img = ref[False][0][1]
    assert row[0] == img[0, 0, 0] and row[1] == img[0, 0, 1] and row[32] == img[0, 1, 0] and row[1024] == img[1, 0, 0]
    for train, n in ((True, 15), (False, 3)):
        ds = data.load("cifar10", train, tmp_path, download=False)
        assert (len(ds), ds.sample_shape, ds.kind) == (n, (3, 32, 32), "image")
        x, y = ds.batch(torch.arange(n), "cpu")
        assert torch.equal(x * 255, torch.from_numpy(ref[train][0].astype(np.float32)))
        assert torch.equal(y, torch.from_numpy(ref[train][1]))
    # the batch files directly in data_dir work too
    flat = tmp_path / "flat"
    (tmp_path / cifar.BATCH_DIR).rename(flat)
    assert len(data.load("cifar10", False, flat, download=False)) == 3


def test_cifar_rejects_code_in_pickle(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}, protocol=2))
    with pytest.raises(ValueError, match="not a CIFAR-10 python batch.*only hold numpy arrays"):
        cifar.read_cifar_batch(tmp_path / "test_batch")
    cifar.write_cifar_batch(tmp_path / "test_batch", np.zeros((2, 3, 32, 32), np.uint8), [1, 12])
    with pytest.raises(ValueError, match="labels must be in 0..9"):
        cifar.read_cifar_batch(tmp_path / "test_batch")


# --------------------------------------------------------------------------------------------------------- N-MNIST
def test_nmnist_event_format_by_hand():
    # x=5, y=7, ON, ts=0x123456; then x=33, y=0, OFF, ts=1
    raw = bytes([5, 7, 0x80 | 0x12, 0x34, 0x56, 33, 0, 0x00, 0x00, 0x01])
    ev = nmnist.decode_events(raw)
    assert ev["x"].tolist() == [5, 33] and ev["y"].tolist() == [7, 0] and ev["p"].tolist() == [1, 0]
    assert ev["ts"].tolist() == [0x123456, 1]
    assert nmnist.encode_events(ev["x"], ev["y"], ev["p"], ev["ts"]) == raw
    with pytest.raises(ValueError, match="not a multiple of 5"):
        nmnist.decode_events(raw[:-1], "f.bin")


def test_nmnist_binning_by_hand():
    # one recording, last event at 999 us -> D = 1000 us; T = 4 over fraction 0.5 -> 125 us bins on [0, 500)
    ts = np.array([0, 100, 100, 250, 499, 500, 999])
    x = np.array([1, 2, 2, 3, 4, 5, 6])
    y = np.array([0, 1, 1, 2, 3, 4, 5])
    p = np.array([0, 1, 1, 0, 1, 1, 0])
    sample = np.zeros(7, dtype=np.int64)
    for binary in (True, False):
        codes, counts = nmnist.bin_events(
            sample, x, y, p, ts, 1, T=4, fraction=0.5, stabilize_motion=False, binary=binary
        )
        f = nmnist.frames_from_codes([codes], 4, binary)[0]
        want = np.zeros((4, 2, 34, 34), np.float32)
        want[0, 0, 0, 1] = 1
        want[0, 1, 1, 2] = 1 if binary else 2  # two events on one pixel in one bin
        want[2, 0, 2, 3] = 1  # 250 us -> bin 2
        want[3, 1, 3, 4] = 1  # 499 us -> bin 3; 500 and 999 us are after the first half
        assert np.array_equal(f, want), binary
        assert counts.tolist() == [4 if binary else 5]
    # fixed windows instead: 300 us bins, T = 2 -> [0, 300) and [300, 600)
    codes, _ = nmnist.bin_events(sample, x, y, p, ts, 1, T=2, window_us=300, stabilize_motion=False)
    assert sorted((codes // nmnist.PIXELS).tolist()) == [0, 0, 0, 1, 1]


def test_nmnist_stabilize_by_hand():
    # Orchard's stabilize.m: saccade 1 (<= 105 ms) x -= 3.5 t/105ms, y -= 7 t/105ms; saccade 2 x -= 3.5 + ...,
    # y -= 7 - ...; saccade 3 x -= 7 - 7 (t - 210 ms)/105 ms; rounded half up, out-of-field events dropped
    x = np.array([10, 10, 10, 10, 2])
    y = np.array([10, 10, 10, 10, 10])
    ts = np.array([0, 105_000, 210_000, 315_000, 210_000])
    sx, sy = nmnist.stabilize(x, y, ts)
    assert sx.tolist() == [10, 7, 3, 10, -5] and sy.tolist() == [10, 3, 10, 10, 10]
    codes, counts = nmnist.bin_events(
        np.zeros(5, np.int64), x, y, np.zeros(5, np.int64), ts, 1, T=1, stabilize_motion=True, binary=False
    )
    assert counts.tolist() == [4]  # the event moved to x = -5 is dropped


def test_nmnist_stabilize_matches_matlab_transcription():
    """The integer form against a literal transcription of stabilize.m (1-based, doubles, MATLAB round), with the
    half-way cases (timestamps on multiples of 7.5 ms) included."""
    rng = np.random.default_rng(3)
    n = 20_000
    x0, y0 = rng.integers(0, 34, n), rng.integers(0, 34, n)
    ts = np.where(rng.random(n) < 0.5, rng.integers(0, 42, n) * 7_500, rng.integers(0, 330_000, n))
    x, y, t = x0 + 1.0, y0 + 1.0, ts.astype(np.float64)
    s1, s2, s3 = t <= 105e3, (t > 105e3) & (t <= 210e3), t > 210e3
    x[s1] = x[s1] - 3.5 * t[s1] / 105e3
    y[s1] = y[s1] - 7 * t[s1] / 105e3
    x[s2] = x[s2] - 3.5 - 3.5 * (t[s2] - 105e3) / 105e3
    y[s2] = y[s2] - 7 + 7 * (t[s2] - 105e3) / 105e3
    x[s3] = x[s3] - 7 + 7 * (t[s3] - 210e3) / 105e3
    x, y = (np.sign(v) * np.floor(np.abs(v) + 0.5) for v in (x, y))  # MATLAB round: half away from zero
    keep_ref = (x >= 1) & (y >= 1) & (x <= 34) & (y <= 34)
    sx, sy = nmnist.stabilize(x0, y0, ts)
    keep = (sx >= 0) & (sy >= 0) & (sx < 34) & (sy < 34)
    assert np.array_equal(keep, keep_ref)
    assert np.array_equal(sx[keep], x[keep] - 1) and np.array_equal(sy[keep], y[keep] - 1)


def test_nmnist_dataset_batches(tmp_path):
    ref = make_nmnist_folder(tmp_path / "nmnist")
    for T, fraction, binary in ((6, 0.3, True), (4, 1.0, False)):
        ds = data.load("nmnist", True, tmp_path, T=T, fraction=fraction, stabilize=False, binary=binary)
        assert (len(ds), ds.kind, ds.sample_shape, ds.num_classes) == (20, "frames", (T, 2, 34, 34), 10)
        assert ds.labels.tolist() == [d for d, _ in ref[True]]
        index = torch.tensor([5, 0, 19, 5])
        x, y = ds.batch(index, "cpu")
        assert x.shape == (T, 4, 2, 34, 34) and x.dtype == torch.float32
        assert y.tolist() == [ref[True][i][0] for i in index.tolist()]
        for b, i in enumerate(index.tolist()):
            want = dense_frames(ref[True][i][1], T, fraction, binary)
            assert np.array_equal(x[:, b].numpy(), want), (T, fraction, binary, i)
        if fraction == 1.0:  # the whole recording: every event is counted
            assert float(x[:, 0].sum()) == len(ref[True][5][1]["ts"])
        assert ds.batch(torch.tensor([], dtype=torch.int64), "cpu")[0].shape == (T, 0, 2, 34, 34)
    test = data.load("nmnist", False, tmp_path / "nmnist")  # defaults: T = 30, 30 %, stabilised, binary
    assert test.sample_shape == (30, 2, 34, 34) and test.info["stabilize"] and test.info["binary"]
    x, _ = test.batch(torch.arange(len(test)), "cpu")
    assert set(torch.unique(x).tolist()) <= {0.0, 1.0} and float(x.sum()) > 0


def test_nmnist_bad_folders(tmp_path):
    make_nmnist_folder(tmp_path, per_digit=1)
    (tmp_path / "Train" / "3" / "00000.bin").write_bytes(b"\x00" * 7)
    with pytest.raises(ValueError, match="00000.bin is not an N-MNIST event file: 7 bytes"):
        data.load("nmnist", True, tmp_path)
    for f in (tmp_path / "Test" / "9").iterdir():
        f.unlink()
    (tmp_path / "Test" / "9").rmdir()
    with pytest.raises(FileNotFoundError, match="lacks the digit folders 9"):
        data.load("nmnist", False, tmp_path)


def test_batch_index_checks(tmp_path):
    make_idx_folder(tmp_path, n_test=7)
    ds = data.load("mnist", False, tmp_path, download=False)
    with pytest.raises(IndexError, match=r"in \[0, 7\).*0..7"):
        ds.batch(torch.tensor([0, 7]))
    with pytest.raises(TypeError, match="integer tensor"):
        ds.batch(torch.tensor([0.0]))
    with pytest.raises(ValueError, match="1-D"):
        ds.batch(torch.zeros(2, 2, dtype=torch.int64))
    x, y = ds.batch([0, 1])  # a list works too
    assert x.shape == (2, 1, 28, 28)


# --------------------------------------------------------------------------------------------------------- digits
@pytest.mark.skipif(
    importlib.util.find_spec("sklearn") is None,
    reason="scikit-learn is not installed (the digits dataset ships with it: pip install scikit-learn)",
)
def test_digits_split():
    tr, te = data.load("digits", True), data.load("digits", False)
    assert (len(tr), len(te), tr.sample_shape, tr.kind) == (1442, 355, (1, 8, 8), "image")
    counts_tr, counts_te = torch.bincount(tr.labels), torch.bincount(te.labels)
    assert torch.all((counts_te * 4 - counts_tr).abs() <= 4)  # stratified 80/20 per class
    xtr, _ = tr.batch(torch.arange(len(tr)))
    xte, _ = te.batch(torch.arange(len(te)))
    assert float(xtr.min()) == 0.0 and float(xtr.max()) == 1.0
    # disjoint, together the whole dataset, and the same split every time
    from sklearn.datasets import load_digits

    every = torch.from_numpy(load_digits().images.astype(np.float32) / 16)
    both = torch.cat([xtr[:, 0], xte[:, 0]])
    assert sorted(map(bytes, both.numpy())) == sorted(map(bytes, every.numpy()))
    assert torch.equal(data.load("digits", False).batch(torch.arange(5))[0], xte[:5])


# --------------------------------------------------------------------------------------------------------- lookup
def test_find_root_rules(tmp_path, monkeypatch):
    monkeypatch.delenv(store.ENV_VAR, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data.find_root("mnist") == tmp_path / "home" / ".cache" / "na_cuda" / "mnist"
    assert data.find_root("MNIST", tmp_path) == tmp_path / "mnist"  # nothing there: where a download goes
    make_idx_folder(tmp_path)  # files in data_dir itself
    assert data.find_root("mnist", tmp_path) == tmp_path
    make_idx_folder(tmp_path / "mnist")  # the <name> subfolder comes first
    assert data.find_root("mnist", tmp_path) == tmp_path / "mnist"
    assert data.find_root("fashion-mnist", tmp_path / "other") == tmp_path / "other" / "fashion-mnist"
    monkeypatch.setenv(store.ENV_VAR, str(tmp_path))
    assert data.find_root("mnist") == tmp_path / "mnist"
    assert len(data.load("mnist", False)) == 7


# --------------------------------------------------------------------------------------------------------- download
def test_download_file_verifies(http_root, tmp_path):
    www, url = http_root
    payload = os.urandom(3000)
    (www / "f.bin").write_bytes(payload)
    dest = tmp_path / "dl" / "f.bin"
    assert data.download_file(url + "f.bin", dest, sha256=sha256(payload)).read_bytes() == payload
    # checksum mismatch: a clear error, and nothing left behind (neither the destination nor a partial file, nor
    # the folder made for it; a folder that existed stays)
    bad = tmp_path / "bad"
    with pytest.raises(data.ChecksumError, match="checksum mismatch.*f.bin.*expected 0{64}"):
        data.download_file(url + "f.bin", bad / "f.bin", sha256="0" * 64)
    assert not bad.exists()
    bad.mkdir()
    with pytest.raises(urllib.error.HTTPError):
        data.download_file(url + "missing.bin", bad / "m.bin", sha256="0" * 64)
    assert list(bad.iterdir()) == []
    with pytest.raises(ValueError, match="without a checksum are refused"):
        data.download_file(url + "f.bin", bad / "f.bin")
    # a re-compressed .gz (different bytes) is accepted by the digest of its content
    content = b"idx content" * 100
    (www / "c.gz").write_bytes(gzip.compress(content, compresslevel=1))
    got = data.download_file(
        url + "c.gz",
        tmp_path / "c.gz",
        sha256=sha256(gzip.compress(content, 9, mtime=0)),
        sha256_content=sha256(content),
    )
    assert gzip.decompress(got.read_bytes()) == content


def test_load_downloads_mnist(http_root, tmp_path, monkeypatch):
    www, url = http_root
    ref = make_idx_folder(www)
    specs = []
    for stem in idx.IDX_STEMS[True] + idx.IDX_STEMS[False]:
        b = (www / (stem + ".gz")).read_bytes()
        # the first mirror lacks the files: the second one is used
        specs.append(
            store.RemoteFile(
                stem + ".gz",
                (url + "nowhere/" + stem + ".gz", url + stem + ".gz"),
                (sha256(b),),
                sha256(gzip.decompress(b)),
            )
        )
    monkeypatch.setitem(store.SOURCES, "mnist", tuple(specs))
    ds = data.load("mnist", False, tmp_path / "data")
    assert torch.equal(ds.labels, torch.from_numpy(ref[False][1].astype(np.int64)))
    assert sorted(p.name for p in (tmp_path / "data" / "mnist").iterdir()) == [
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ]
    # a corrupted mirror: FileNotFoundError naming the checksum failure and the files to put in place
    (www / "train-images-idx3-ubyte.gz").write_bytes(b"garbage")
    with pytest.raises(
        FileNotFoundError,
        match="not found in .*Put train-images-idx3-ubyte.gz.*Download failed from: .*checksum mismatch",
    ):
        data.load("mnist", True, tmp_path / "data")
    left = sorted(p.name for p in (tmp_path / "data" / "mnist").iterdir())  # the good file is kept, the bad one not
    assert left == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "train-labels-idx1-ubyte.gz"]


def test_failed_download_message_is_short_and_leaves_no_folder(http_root, tmp_path, monkeypatch):
    """Every mirror fails: the useful sentence comes first, the mirrors follow as a short list (one reason each),
    and the folders made for the download are removed again."""
    _, url = http_root
    specs = tuple(
        store.RemoteFile(stem + ".gz", tuple(f"{url}m{i}/{stem}.gz" for i in range(5)), ("0" * 64,))
        for stem in idx.IDX_STEMS[True] + idx.IDX_STEMS[False]
    )
    monkeypatch.setitem(store.SOURCES, "mnist", specs)
    with pytest.raises(FileNotFoundError) as err:
        data.load("mnist", True, tmp_path / "typo" / "data")
    msg = str(err.value)
    assert msg.startswith("na_cuda.data: MNIST (train split) not found in ")
    assert msg.index("Put train-images-idx3-ubyte.gz") < msg.index("Download failed from: ")
    assert msg.count("(HTTP Error 404: File not found)") == 3 and msg.endswith("; and 2 more.")
    assert len(msg) < 900, len(msg)
    assert not (tmp_path / "typo").exists()


def test_load_downloads_and_extracts_cifar(http_root, tmp_path, monkeypatch):
    www, url = http_root
    src = tmp_path / "src"
    ref = make_cifar_folder(src, per_batch=2)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(src / cifar.BATCH_DIR, arcname=cifar.BATCH_DIR)
    (www / "cifar-10-python.tar.gz").write_bytes(buf.getvalue())
    spec = store.RemoteFile(
        "cifar-10-python.tar.gz", (url + "cifar-10-python.tar.gz",), (sha256(buf.getvalue()),), extract=True
    )
    monkeypatch.setitem(store.SOURCES, "cifar10", (spec,))
    ds = data.load("cifar10", True, tmp_path / "data")
    x, y = ds.batch(torch.arange(len(ds)))
    assert len(ds) == 10 and torch.equal(y, torch.from_numpy(ref[True][1]))
    assert torch.equal(x * 255, torch.from_numpy(ref[True][0].astype(np.float32)))
    assert sorted(p.name for p in (tmp_path / "data" / "cifar10").iterdir()) == [cifar.BATCH_DIR]  # archive removed
    # the archive put in place by hand: verified and unpacked without downloading (and kept)
    local = tmp_path / "local"
    local.mkdir()
    (local / "cifar-10-python.tar.gz").write_bytes(buf.getvalue())
    assert len(data.load("cifar10", False, local, download=False)) == 2
    assert sorted(p.name for p in local.iterdir()) == [cifar.BATCH_DIR, "cifar-10-python.tar.gz"]
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "cifar-10-python.tar.gz").write_bytes(b"not it")
    with pytest.raises(ValueError, match="not the published archive"):
        data.load("cifar10", False, bad, download=False)


# --------------------------------------------------------------------------------------------------------- augment
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "name,shape",
    [
        ("mnist", (6, 1, 28, 28)),
        ("fashion-mnist", (6, 1, 28, 28)),
        ("cifar10", (6, 3, 32, 32)),
        ("digits", (6, 1, 8, 8)),
        ("nmnist", (6, 2, 34, 34)),
    ],
)
def test_augmentation_shapes_and_determinism(name, shape, device):
    x = torch.rand(shape, generator=torch.Generator().manual_seed(1)).to(device)
    aug = data.augmentation(name)
    a = aug(x, torch.Generator(device).manual_seed(0))
    b = aug(x, torch.Generator(device).manual_seed(0))
    c = aug(x, torch.Generator(device).manual_seed(1))
    assert a.device == x.device
    assert a.shape == x.shape and a.dtype == x.dtype and torch.equal(a, b)
    assert torch.equal(a, x) if name == "nmnist" else not torch.equal(a, c)
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0


@pytest.mark.parametrize("device", [CUDA])
def test_augmentation_on_gpu_matches_identities(device):
    x = torch.rand(8, 3, 32, 32, device=device)
    g = torch.Generator(device).manual_seed(0)
    assert torch.equal(data.random_crop(x, g, padding=0), x)
    assert torch.equal(data.random_rotation(x, g, degrees=0.0), x)
    assert torch.equal(data.random_horizontal_flip(x, g, p=1.0), x.flip(-1))
    with pytest.raises(ValueError, match="generator is on cpu.*torch.Generator\\(device=x.device\\)"):
        data.random_crop(x, torch.Generator(), padding=4)


@pytest.mark.parametrize("device", DEVICES)
def test_batches_on_device(tmp_path, device):
    make_idx_folder(tmp_path / "mnist")
    make_nmnist_folder(tmp_path / "nmnist", per_digit=2)
    index = torch.tensor([4, 1, 4, 0])
    for ds in (
        data.load("mnist", True, tmp_path, download=False),
        data.load("nmnist", True, tmp_path, T=5, fraction=0.5),
        data.load("nmnist", True, tmp_path, T=5, fraction=0.5, binary=False),
    ):
        x_cpu, y_cpu = ds.batch(index, "cpu")
        x, y = ds.batch(index, device)  # storage on the CPU, batch built on the device
        assert x.device.type == y.device.type == torch.device(device).type
        assert torch.equal(x.cpu(), x_cpu) and torch.equal(y.cpu(), y_cpu)
        ds.to(device)  # storage on the device
        x, y = ds.batch(index.to(device), device)
        assert torch.equal(x.cpu(), x_cpu) and torch.equal(y.cpu(), y_cpu) and ds.labels.device.type == "cpu"


def test_random_crop():
    x = torch.arange(2 * 3 * 5 * 5, dtype=torch.float32).view(2, 3, 5, 5) + 1
    g = torch.Generator().manual_seed(0)
    assert torch.equal(data.random_crop(x, g, padding=0), x)
    out = data.random_crop(torch.cat([x] * 20), g, padding=2)
    assert out.shape == (40, 3, 5, 5)
    padded = torch.nn.functional.pad(torch.cat([x] * 20), (2, 2, 2, 2))
    offsets = set()
    for b in range(40):  # every crop is some window of the zero-padded image
        hits = [(i, j) for i in range(5) for j in range(5) if torch.equal(out[b], padded[b, :, i : i + 5, j : j + 5])]
        assert hits, b
        offsets.add(hits[0])
    assert len(offsets) > 5  # per-sample offsets
    with pytest.raises(ValueError, match="`padding` must be an int >= 0"):
        data.random_crop(x, g, padding=-1)


def test_rotation():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 2, 9, 9, generator=g)
    assert torch.equal(data.random_rotation(x, g, degrees=0.0), x)
    assert torch.allclose(data.rotate(x, torch.zeros(4), mode="bilinear"), x, atol=1e-5)
    # 90 degrees counter-clockwise as displayed (row 0 at the top): the pixel right of the centre moves above it
    img = torch.zeros(1, 1, 9, 9)
    img[0, 0, 4, 6] = 1.0
    r = data.rotate(img, torch.tensor([math.pi / 2]))
    assert r[0, 0, 2, 4] == 1.0 and float(r.sum()) == 1.0
    # random angles differ per sample and stay within the range: a single bright pixel stays on its circle
    out = data.random_rotation(torch.cat([img] * 8), g, degrees=15.0, mode="nearest")
    assert out.shape == (8, 1, 9, 9) and len({tuple(o.nonzero().tolist()[0]) for o in out if o.sum()}) > 1


def test_flip_and_color_jitter():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(16, 3, 4, 5, generator=g)
    assert torch.equal(data.random_horizontal_flip(x, g, p=1.0), x.flip(-1))
    assert torch.equal(data.random_horizontal_flip(x, g, p=0.0), x)
    half = data.random_horizontal_flip(x, g, p=0.5)
    flipped = [torch.equal(h, f) for h, f in zip(half, x.flip(-1))]
    kept = [torch.equal(h, o) for h, o in zip(half, x)]
    assert all(a or b for a, b in zip(flipped, kept)) and 0 < sum(flipped) < 16
    assert torch.equal(data.color_jitter(x, g), x)  # all factors 0: identity
    bright = data.color_jitter(x * 0.5, g, brightness=0.4)
    ratio = (bright / (x * 0.5)).flatten(1)
    assert torch.allclose(ratio.min(1).values, ratio.max(1).values, atol=1e-5)  # one factor per image
    assert float(ratio.min()) >= 0.6 - 1e-6 and float(ratio.max()) <= 1.4 + 1e-6
    grey = data.color_jitter(x, g, saturation=1.0, contrast=0.5, hue=0.3)
    assert grey.shape == x.shape and float(grey.min()) >= 0 and float(grey.max()) <= 1
    assert data.color_jitter(x[:, :1], g, contrast=0.5, saturation=0.5, hue=0.5).shape == (16, 1, 4, 5)
    with pytest.raises(ValueError, match="`brightness` must be in"):
        data.color_jitter(x, g, brightness=1.5)
    with pytest.raises(TypeError, match="`generator` must be a torch.Generator"):
        data.random_horizontal_flip(x, 0)
    with pytest.raises(ValueError, match=r"float batch \[B, C, H, W\]"):
        data.random_crop(x[0], g, padding=1)


# --------------------------------------------------------------------------------------------------------- encode
def test_normalize_by_hand():
    x = torch.tensor([0.1307, 1.0]).view(2, 1, 1, 1)
    assert torch.allclose(data.normalize(x, "mnist").flatten(), torch.tensor([0.0, (1 - 0.1307) / 0.3081]))
    c = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1).expand(2, 3, 2, 2)
    assert torch.allclose(data.normalize(c, "cifar10"), torch.zeros(2, 3, 2, 2), atol=1e-7)
    one = data.normalize(torch.ones(1, 3, 1, 1), "cifar10").flatten()
    assert torch.allclose(one, torch.tensor([(1 - 0.4914) / 0.2023, (1 - 0.4822) / 0.1994, (1 - 0.4465) / 0.2010]))
    assert torch.allclose(data.normalize(torch.full((1, 1, 1, 1), 0.2860), "fashion-mnist"), torch.zeros(1))
    frames = torch.rand(3, 2, 2, 34, 34)
    assert data.normalize(frames, "nmnist") is frames
    assert data.normalize(torch.rand(5, 2, 1, 28, 28), "mnist").shape == (5, 2, 1, 28, 28)  # [T, B, C, H, W]
    with pytest.raises(ValueError, match="1 channel.*dimension -3"):
        data.normalize(torch.rand(2, 3, 28, 28), "mnist")


def test_encode_static_by_hand():
    x = torch.tensor([[1.0, 2.0]]).view(1, 2, 1, 1)
    out = data.encode_static(x, T=3, tau_s=2.0)
    assert out.shape == (3, 1, 2, 1, 1)
    # a[t] = (1 - 1/2) a[t-1] + x / 2: 0.5, 0.75, 0.875 (times x)
    assert torch.allclose(out[:, 0, :, 0, 0], torch.tensor([[0.5, 1.0], [0.75, 1.5], [0.875, 1.75]]))
    # tau_s = 4: x/4, then 0.75 * x/4 + x/4 = 0.4375 x
    assert torch.allclose(data.encode_static(x, 2, 4.0)[:, 0, 0, 0, 0], torch.tensor([0.25, 0.4375]))
    assert torch.equal(data.encode_static(x, 4, 1.0), x.expand(4, 1, 2, 1, 1))  # tau_s = 1: no filtering
    y = torch.rand(3, 1, 5, 5, dtype=torch.float64)
    a, ref = torch.zeros_like(y), []
    for _ in range(6):
        a = (1 - 1 / 5.0) * a + y / 5.0
        ref.append(a)
    assert torch.allclose(data.encode_static(y, 6, 5.0), torch.stack(ref), atol=1e-12, rtol=0)
    with pytest.raises(ValueError, match="`tau_s` must be a float >= 1"):
        data.encode_static(x, 3, 0.5)
    with pytest.raises(ValueError, match="`T` must be a positive int"):
        data.encode_static(x, 0, 2.0)
