"""Crash-safe files: atomic writes through named temporary files, removal of the temporaries a killed process left,
and an exclusive lock on a folder.

A temporary file of ``DIR/NAME`` is ``DIR/.NAME.<pid>.<8 hex>.<suffix>`` (suffix ``tmp`` for training outputs,
``part`` for downloads): the pid says whether its writer still runs, so :func:`remove_stale_temps` removes only the
files of processes that are gone (a SIGKILL skips every cleanup handler). See docs/reliability.md.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path
from typing import Any, Callable, Optional

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: FolderLock does not lock
    fcntl = None  # type: ignore[assignment]

_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.(?P<suffix>tmp|part)$")


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (on this machine)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by another user
        return True
    return True


def open_temp(path: Path, suffix: str = "tmp") -> tuple[int, Path]:
    """Create (O_EXCL) a new temporary file for ``path`` in its folder; returns (fd, its path)."""
    while True:
        tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.{suffix}"
        try:
            # 0o666 (not mkstemp's 0o600) so the file gets the usual permissions under the umask.
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666), tmp
        except FileExistsError:
            continue


def atomic_write(path: Path, write: Callable[[Any], None], mode: str = "wb") -> None:
    """Write via ``write(file)`` to a temporary file next to ``path``, fsync, then ``os.replace``: a reader sees the
    old file or the new one, never a partial one. The temporary file is removed on any failure."""
    fd, tmp = open_temp(path)
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_stale_temps(folder: Path, name: Optional[str] = None) -> list[Path]:
    """Remove the temporary files in ``folder`` (of ``name`` only, if given) whose writing process is gone; returns
    them. A missing folder holds none."""
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        m = _TEMP.match(entry.name)
        if m is None or (name is not None and m["name"] != name) or pid_alive(int(m["pid"])):
            continue
        try:
            entry.unlink()
            removed.append(entry)
        except FileNotFoundError:  # another process cleaned it first
            pass
    return removed


class FolderBusy(RuntimeError):
    """Another live process holds the folder's lock."""


class FolderLock:
    """An exclusive lock on a folder: the file ``<folder>/.lock``, locked with ``fcntl.flock`` and holding the
    owner's pid. The operating system releases the lock when the owner dies, so the file a killed run left behind
    is simply taken over. (Without fcntl, i.e. not on POSIX, nothing is locked.)"""

    NAME = ".lock"

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / self.NAME
        self._fd: Optional[int] = None

    def acquire(self) -> None:
        """Take the lock or raise FolderBusy naming the holder's pid; the folder must exist."""
        if fcntl is None or self._fd is not None:
            return
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise FolderBusy(
                    f"{self.path.parent} is in use by another run (pid {holder}; lock file {self.path})"
                ) from None
            # A previous owner may have unlinked the file between our open and flock: lock the file on disk.
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> FolderLock:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()
