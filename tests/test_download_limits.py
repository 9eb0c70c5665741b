"""Bounded waits of downloads (na_cuda/data/store.py): a per-read timeout and an overall deadline per file, set by
keyword or environment variable, progress in the log, no partial file left behind.

The servers are threads on 127.0.0.1 that misbehave on purpose; each stops itself after a few seconds."""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from na_cuda.data import store

BODY = bytes(range(100))


class _Server:
    """Accepts connections on 127.0.0.1 and runs `behave(conn)` for each, in threads; stops after `life_s`."""

    def __init__(self, behave, life_s: float = 8.0) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/f.bin"
        self.stop = threading.Event()
        self.behave, self.end = behave, time.monotonic() + life_s
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set() and time.monotonic() < self.end:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()
        self.sock.close()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            try:
                self.behave(conn, self)
            except OSError:  # the client gave up
                pass

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; False once the server stops."""
        return not self.stop.wait(seconds) and time.monotonic() < self.end

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)


@pytest.fixture
def serve(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "*")
    for var in (store.TIMEOUT_ENV, store.DEADLINE_ENV):
        monkeypatch.delenv(var, raising=False)
    servers = []

    def start(behave, life_s: float = 8.0) -> _Server:
        servers.append(_Server(behave, life_s))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def _silent(conn, server):  # accepts, reads the request, never answers
    while server.wait(0.1):
        pass


def _trickle_body(conn, server):  # a valid header, then one byte every 0.2 s
    conn.recv(4096)
    conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(BODY))
    for b in BODY:
        if not server.wait(0.2):
            return
        conn.sendall(bytes([b]))


def _trickle_status(conn, server):  # the status line itself, one byte every 0.2 s: each read is within the timeout
    conn.recv(4096)
    for b in b"HTTP/1.0 200 OK\r\n" * 10:
        if not server.wait(0.2):
            return
        conn.sendall(bytes([b]))


def _fast(conn, server):  # the whole file, 10 bytes every 0.02 s
    conn.recv(4096)
    conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(BODY))
    for i in range(0, len(BODY), 10):
        time.sleep(0.02)
        conn.sendall(BODY[i : i + 10])


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir())


def test_silent_server_fails_after_the_read_timeout(serve, tmp_path):
    s = serve(_silent)
    t0 = time.monotonic()
    with pytest.raises(OSError):
        store.download_file(
            s.url, tmp_path / "f.bin", sha256=hashlib.sha256(BODY).hexdigest(), timeout=0.5, deadline=30
        )
    assert time.monotonic() - t0 < 3
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("behave", [_trickle_body, _trickle_status], ids=["body", "status-line"])
def test_trickling_server_fails_at_the_deadline(serve, tmp_path, behave):
    s = serve(behave)
    t0 = time.monotonic()
    with pytest.raises(store.DownloadTimeout, match="deadline of 1.5 s"):
        store.download_file(s.url, tmp_path / "f.bin", sha256=hashlib.sha256(BODY).hexdigest(), timeout=1, deadline=1.5)
    assert 1.4 < time.monotonic() - t0 < 4
    assert _leftovers(tmp_path) == []  # no .part file


def test_environment_sets_the_limits(serve, tmp_path, monkeypatch):
    s = serve(_trickle_body)
    monkeypatch.setenv(store.DEADLINE_ENV, "1")
    with pytest.raises(store.DownloadTimeout, match=store.DEADLINE_ENV):
        store.download_file(s.url, tmp_path / "f.bin", sha256=hashlib.sha256(BODY).hexdigest())
    monkeypatch.setenv(store.TIMEOUT_ENV, "soon")
    with pytest.raises(ValueError, match=store.TIMEOUT_ENV):
        store.download_file(s.url, tmp_path / "f.bin", sha256=hashlib.sha256(BODY).hexdigest())
    with pytest.raises(ValueError, match="`deadline`"):
        store.download_file(s.url, tmp_path / "f.bin", sha256="0" * 64, timeout=1, deadline=-1)


def test_fetch_moves_on_to_the_next_mirror(serve, tmp_path):
    bad, good = serve(_trickle_body), serve(_fast)
    spec = store.RemoteFile("f.bin", (bad.url, good.url), (hashlib.sha256(BODY).hexdigest(),))
    path = store.fetch(spec, tmp_path, timeout=1, deadline=1)
    assert path.read_bytes() == BODY and _leftovers(tmp_path) == ["f.bin"]


def test_progress_is_logged(serve, tmp_path, monkeypatch, caplog):
    s = serve(_fast)
    monkeypatch.setattr(store, "PROGRESS_EVERY_S", 0.0)
    with caplog.at_level(logging.WARNING, logger="na_cuda.data"):
        store.download_file(s.url, tmp_path / "f.bin", sha256=hashlib.sha256(BODY).hexdigest(), timeout=2, deadline=10)
    lines = [r.getMessage() for r in caplog.records if "kB/s" in r.getMessage()]
    assert lines and "of 0.0 MB" in lines[-1]


def test_partial_file_of_a_killed_download_is_removed(serve, tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    stale = tmp_path / f".f.bin.{proc.pid}.0123abcd.part"
    stale.write_bytes(b"half")
    mine = tmp_path / f".f.bin.{os.getpid()}.0123abcd.part"  # a live download's file stays
    mine.write_bytes(b"half")
    s = serve(_fast)
    store.download_file(s.url, tmp_path / "f.bin", sha256=hashlib.sha256(BODY).hexdigest(), timeout=2, deadline=10)
    assert not stale.exists() and mine.exists() and (tmp_path / "f.bin").read_bytes() == BODY
