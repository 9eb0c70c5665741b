"""Where dataset files live, and how missing ones are downloaded and verified (SHA-256).

:func:`find_root` looks in ``data_dir``, else ``$NA_CUDA_DATA``, else ``~/.cache/na_cuda`` (directly or in a
``<name>`` subfolder); :func:`download_file` streams into a temporary file, checks the digest, renames it into
place, and bounds every wait. Details: docs/training.md, "Dataset files and downloads (na_cuda.data.store)".
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import logging
import os
import shutil
import socket
import tarfile
import tempfile
import threading
import time
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

from .._files import open_temp, remove_stale_temps
from .layout import has_files
from .names import canonical_name

PathLike = Union[str, Path]
log = logging.getLogger("na_cuda.data")

ENV_VAR = "NA_CUDA_DATA"
CHUNK = 1 << 20
TIMEOUT_ENV, TIMEOUT_S = "NA_CUDA_DOWNLOAD_TIMEOUT", 20.0  # seconds one connect or read may wait
DEADLINE_ENV, DEADLINE_S = "NA_CUDA_DOWNLOAD_DEADLINE", 900.0  # seconds one file may take in all
PROGRESS_EVERY_S = 10.0


class ChecksumError(ValueError):
    """A downloaded file's SHA-256 is not the expected one (the file was not kept)."""


class DownloadTimeout(TimeoutError):
    """A download did not complete within its deadline (the partial file was not kept)."""


class FetchError(OSError):
    """No mirror of a file worked; ``attempts`` holds ``(url, reason)`` per mirror tried, in order."""

    def __init__(self, name: str, attempts: List[Tuple[str, str]]) -> None:
        self.name, self.attempts = name, attempts
        super().__init__("; ".join(f"{url}: {why}" for url, why in attempts) if attempts else f"no URL for {name}")


def _limit(name: str, value: Optional[float], env: str, default: float) -> float:
    """`value` if given, else ``$env``, else `default`; a finite number > 0."""
    source = f"`{name}`"
    if value is None:
        text = os.environ.get(env)
        if not text:
            return default
        source = f"${env}"
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"na_cuda.data: {source} must be a number of seconds; got {text!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
        raise ValueError(f"na_cuda.data: {source} must be a finite number of seconds > 0; got {value!r}")
    return float(value)


class _Deadline:
    """Shuts down the connections of one download when its deadline passes: a read blocked on one returns at once
    (the socket timeout bounds a single read; this bounds the sum, status line and headers included)."""

    def __init__(self, seconds: float) -> None:
        self.expired = False
        self._socks: list = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def track(self, sock: socket.socket) -> None:
        with self._lock:
            self._socks.append(sock)
            if self.expired:
                self._shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._socks:
                self._shut(sock)

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:  # already closed
            pass

    def cancel(self) -> None:
        self._timer.cancel()

    def opener(self) -> urllib.request.OpenerDirector:
        """urllib's opener whose HTTP(S) connections register their sockets here."""
        deadline = self

        def tracked(base: type[http.client.HTTPConnection]) -> type[http.client.HTTPConnection]:
            class Tracked(base):  # type: ignore[misc, valid-type]
                def connect(self) -> None:
                    super().connect()
                    deadline.track(self.sock)

            return Tracked

        class HTTP(urllib.request.HTTPHandler):
            def http_open(self, req):  # type: ignore[no-untyped-def]
                return self.do_open(tracked(http.client.HTTPConnection), req)

        class HTTPS(urllib.request.HTTPSHandler):
            def https_open(self, req):  # type: ignore[no-untyped-def]
                # HTTPS() below has the default SSL context (None), which do_open's default gives as well
                return self.do_open(tracked(http.client.HTTPSConnection), req)

        return urllib.request.build_opener(HTTP(), HTTPS())


@dataclass(frozen=True)
class RemoteFile:
    """A file of a dataset that can be downloaded.

    name: its name in the dataset folder. urls: mirrors, tried in order. sha256: accepted digests of the file's bytes.
    sha256_content: digest of its gzip-decompressed content, accepted instead (for ``.gz`` files).
    """

    name: str
    urls: Tuple[str, ...]
    sha256: Tuple[str, ...] = ()
    sha256_content: Optional[str] = None
    extract: bool = False  # a .tar.gz archive to unpack into the dataset folder (then deleted)


def _mnist_file(stem: str, gz: str, raw: str) -> RemoteFile:
    mirrors = (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    )
    return RemoteFile(stem + ".gz", tuple(m + stem + ".gz" for m in mirrors), (gz,), raw)


def _fashion_file(stem: str, raw: str) -> RemoteFile:
    base = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
    return RemoteFile(stem + ".gz", (base + stem + ".gz",), (), raw)


# MNIST: the .gz digests are those of the original files (the same on the PyTorch and TensorFlow mirrors); the content
# digests are those of the uncompressed IDX files. Fashion-MNIST: content digests only (the uncompressed IDX files).
SOURCES: Dict[str, Tuple[RemoteFile, ...]] = {
    "mnist": (
        _mnist_file(
            "train-images-idx3-ubyte",
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        ),
        _mnist_file(
            "train-labels-idx1-ubyte",
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        ),
        _mnist_file(
            "t10k-images-idx3-ubyte",
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        ),
        _mnist_file(
            "t10k-labels-idx1-ubyte",
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        ),
    ),
    "fashion-mnist": (
        _fashion_file("train-images-idx3-ubyte", "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
        _fashion_file("train-labels-idx1-ubyte", "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
        _fashion_file("t10k-images-idx3-ubyte", "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
        _fashion_file("t10k-labels-idx1-ubyte", "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
    ),
    "cifar10": (
        RemoteFile(
            "cifar-10-python.tar.gz",
            ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
            ("6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",),
            None,
            extract=True,
        ),
    ),
    "nmnist": (),  # no stable direct URL: see nmnist.MISSING_HELP
    "digits": (),  # ships with scikit-learn
}


# ------------------------------------------------------------------------------------------------------ lookup
def base_dir(data_dir: Optional[PathLike] = None) -> Path:
    """`data_dir`, else ``$NA_CUDA_DATA``, else ``~/.cache/na_cuda`` (expanded, not created)."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "na_cuda"


def candidates(name: str, data_dir: Optional[PathLike] = None) -> List[Path]:
    """The folders searched for dataset `name`, in order: ``<base>/<name>``, then ``<base>``."""
    base = base_dir(data_dir)
    return [base / name, base]


def find_root(name: str, data_dir: Optional[PathLike] = None) -> Path:
    """The folder holding dataset `name`'s files: the first of :func:`candidates` that holds them, else
    ``<base>/<name>`` (the folder a download writes to). See the module docstring for the rule."""
    name = canonical_name(name)
    cands = candidates(name, data_dir)
    for d in cands:
        if d.is_dir() and has_files(name, d):
            return d
    return cands[0]


# ------------------------------------------------------------------------------------------------------ digests
def sha256_file(path: PathLike) -> str:
    """SHA-256 (hex) of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_gzip_content(path: PathLike) -> Optional[str]:
    """SHA-256 (hex) of a gzip file's decompressed content; None when the file is not valid gzip."""
    h = hashlib.sha256()
    try:
        with gzip.open(path, "rb") as f:
            for chunk in iter(lambda: f.read(CHUNK), b""):
                h.update(chunk)
    except (OSError, EOFError, zlib.error):
        return None
    return h.hexdigest()


def verify(
    path: PathLike, sha256: Iterable[str] = (), sha256_content: Optional[str] = None, digest: Optional[str] = None
) -> Tuple[bool, str]:
    """Whether `path` has one of the digests `sha256` or, decompressed, the digest `sha256_content`; with a line
    saying what was found. `digest` is the file's SHA-256 when already known."""
    accepted = {s.lower() for s in sha256}
    digest = digest or sha256_file(path)
    if digest in accepted:
        return True, f"sha256 {digest}"
    if sha256_content:
        content = sha256_gzip_content(path)
        if content == sha256_content.lower():
            return True, f"sha256 of the decompressed content {content}"
        want = " or ".join(sorted(accepted) + [f"content {sha256_content}"])
        return False, f"sha256 {digest} (decompressed: {content or 'not gzip'}), expected {want}"
    return False, f"sha256 {digest}, expected {' or '.join(sorted(accepted))}"


# ------------------------------------------------------------------------------------------------------ download
def download_file(
    url: str,
    dest: PathLike,
    *,
    sha256: Sequence[str] = (),
    sha256_content: Optional[str] = None,
    timeout: Optional[float] = None,
    deadline: Optional[float] = None,
) -> Path:
    """Download `url` to `dest` with SHA-256 verification (see the module docstring); returns `dest`.

    `timeout`: seconds a connect or a read may wait (default ``$NA_CUDA_DOWNLOAD_TIMEOUT`` or 20); `deadline`:
    seconds the whole file may take (default ``$NA_CUDA_DOWNLOAD_DEADLINE`` or 900). Raises ChecksumError on a
    digest mismatch, DownloadTimeout past the deadline, OSError (urllib.error.URLError, TimeoutError, ...) or
    http.client.HTTPException on network failures; in every failure case no file is left at `dest` or next to it,
    and the folders this call created for `dest` are removed again.
    """
    timeout = _limit("timeout", timeout, TIMEOUT_ENV, TIMEOUT_S)
    deadline = _limit("deadline", deadline, DEADLINE_ENV, DEADLINE_S)
    if isinstance(sha256, str):
        sha256 = (sha256,)
    if not sha256 and not sha256_content:
        raise ValueError(
            "na_cuda.data: download_file: give `sha256` (or `sha256_content`); downloads without a checksum are refused"
        )
    dest = Path(dest)
    created = _make_dirs(dest.parent)
    try:
        return _download(url, dest, sha256, sha256_content, timeout, deadline)
    except BaseException:
        for folder in created:  # innermost first; only the folders this call made, and only while empty
            try:
                folder.rmdir()
            except OSError:
                break
        raise


def _make_dirs(folder: Path) -> List[Path]:
    """Create `folder` and its missing parents; returns the ones created, innermost first."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for d in reversed(missing):
        d.mkdir(exist_ok=True)
    return missing


def _download(
    url: str, dest: Path, sha256: Sequence[str], sha256_content: Optional[str], timeout: float, deadline: float
) -> Path:
    """download_file's body once `dest`'s folder exists."""
    remove_stale_temps(dest.parent, dest.name)
    start = time.monotonic()
    fd, tmp = open_temp(dest, "part")
    limit = _Deadline(deadline)
    size = 0
    try:
        h = hashlib.sha256()
        req = urllib.request.Request(url, headers={"User-Agent": "na_cuda"})
        try:
            with os.fdopen(fd, "wb") as out, limit.opener().open(req, timeout=timeout) as resp:
                total = resp.headers.get("Content-Length")
                reported = start
                # read1: at most one socket read per call, so progress shows however slowly bytes arrive.
                for chunk in iter(lambda: resp.read1(CHUNK), b""):
                    out.write(chunk)
                    h.update(chunk)
                    size += len(chunk)
                    now = time.monotonic()
                    if now - reported >= PROGRESS_EVERY_S:
                        of = f" of {int(total) / 1e6:.1f}" if total else ""
                        log.warning(
                            "na_cuda.data: %s: %.1f%s MB (%.0f kB/s)", url, size / 1e6, of, size / 1e3 / (now - start)
                        )
                        reported = now
                if total is not None and size != int(total) and not limit.expired:
                    raise http.client.IncompleteRead(b"", int(total) - size)
        except (OSError, http.client.HTTPException):
            if not limit.expired:
                raise
        if limit.expired:
            raise DownloadTimeout(
                f"na_cuda.data: {url}: {size} bytes after {time.monotonic() - start:.0f} s, past "
                f"the deadline of {deadline:g} s (raise it with deadline= or ${DEADLINE_ENV})"
            )
        ok, detail = verify(tmp, sha256, sha256_content, digest=h.hexdigest())
        if not ok:
            raise ChecksumError(f"na_cuda.data: checksum mismatch for {url}: {detail}; the download was discarded")
        os.replace(tmp, dest)
        log.info("na_cuda.data: downloaded %s -> %s (%s)", url, dest, detail)
        return dest
    finally:
        limit.cancel()
        if tmp.exists():
            tmp.unlink()


def fetch(
    spec: RemoteFile, root: PathLike, *, timeout: Optional[float] = None, deadline: Optional[float] = None
) -> Path:
    """Download `spec` into `root` from the first mirror that works (unpacking archives); raises FetchError with
    every mirror's error when none does. `timeout`, `deadline`: per mirror, as in :func:`download_file`."""
    root = Path(root)
    errors: List[Tuple[str, str]] = []
    for url in spec.urls:
        log.warning("na_cuda.data: downloading %s to %s", url, root)
        try:
            path = download_file(
                url,
                root / spec.name,
                sha256=spec.sha256,
                sha256_content=spec.sha256_content,
                timeout=timeout,
                deadline=deadline,
            )
        except (OSError, http.client.HTTPException, ChecksumError) as exc:
            errors.append((url, str(exc)))
            continue
        if spec.extract:
            try:
                extract_tar(path, root)
            finally:
                path.unlink()
        return root / spec.name
    raise FetchError(spec.name, errors)


def extract_tar(archive: PathLike, root: PathLike) -> None:
    """Unpack a tar(.gz) archive into `root`, refusing members that are links or leave the folder; the top-level
    entries are moved into place only after the whole archive was unpacked."""
    root = Path(root)
    with tempfile.TemporaryDirectory(dir=root, prefix=".extract.") as tmp:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            for m in members:
                target = (Path(tmp) / m.name).resolve()
                if not (m.isfile() or m.isdir()) or not str(target).startswith(str(Path(tmp).resolve()) + os.sep):
                    raise ValueError(
                        f"na_cuda.data: refusing to unpack {archive}: member {m.name!r} is a link or "
                        "points outside the folder"
                    )
            if hasattr(tarfile, "data_filter"):
                tar.extractall(tmp, members=members, filter="data")
            else:  # pragma: no cover - Python < 3.8.17 / 3.11.4
                tar.extractall(tmp, members=members)
        for entry in Path(tmp).iterdir():
            dest = root / entry.name
            if dest.is_dir():
                shutil.rmtree(dest)
            elif dest.exists():
                dest.unlink()
            os.replace(entry, dest)
