"""Checkpoint integrity and run safety of ``na_cuda.train`` (na_cuda/train/checkpoint.py, na_cuda/_files.py): the
content digest, the schema check of every field, the lock on --out, stale temporary files, the free-space check before
training, and the DDP timeout."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from na_cuda import train
from na_cuda._files import FolderLock
from na_cuda.train import checkpoint, loop
from tests.helpers import subprocess_pythonpath

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _fake_data import datasets  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RUNNER = str(Path(__file__).resolve().parent / "_train_runner.py")
FAST = ["--limit-train", "128", "--batch-size", "32", "--no-progress"]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A run of 1 epoch (4 steps); tests copy its checkpoint."""
    out = tmp_path_factory.mktemp("trained") / "run"
    assert train.main(FAST + ["--epochs", "1", "--out", str(out)], datasets=datasets()) == 0
    return out


def _copy_run(trained: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    out.mkdir()
    for name in ("checkpoint.pt", "config.json", "metrics.json"):
        (out / name).write_bytes((trained / name).read_bytes())
    return out


def _resume(out: Path, epochs: int = 2) -> int:
    return train.main(FAST + ["--epochs", str(epochs), "--out", str(out), "--resume"], datasets=datasets())


def test_checkpoint_round_trip_and_digest(trained):
    ckpt = checkpoint.load(trained / "checkpoint.pt")
    assert ckpt["epoch"] == 1 and ckpt["step"] == 0
    data = (trained / "checkpoint.pt").read_bytes()
    assert data.startswith(b"na_cuda-checkpoint 2 sha256=")


def test_flipped_bytes_in_a_weight_are_refused(trained, tmp_path, capsys):
    out = _copy_run(trained, tmp_path)
    data = bytearray((out / "checkpoint.pt").read_bytes())
    # Inside the tensor data of the largest weight: torch.load alone would not notice (no CRC check).
    at = len(data) // 2
    data[at : at + 64] = bytes(b ^ 0xFF for b in data[at : at + 64])
    (out / "checkpoint.pt").write_bytes(bytes(data))
    assert _resume(out) == 2
    err = capsys.readouterr().err
    assert "is damaged" in err and "SHA-256" in err
    assert len(err.strip().splitlines()) == 1


def test_truncated_and_foreign_files_are_refused(trained, tmp_path, capsys):
    out = _copy_run(trained, tmp_path)
    data = (out / "checkpoint.pt").read_bytes()
    (out / "checkpoint.pt").write_bytes(data[: len(data) - 100])
    assert _resume(out) == 2
    assert "truncated" in capsys.readouterr().err
    body = data[data.index(b"\n") + 1 :]
    (out / "checkpoint.pt").write_bytes(body)  # a bare torch.save file: the format before the digest
    assert _resume(out) == 2
    assert "format 1" in capsys.readouterr().err
    (out / "checkpoint.pt").write_bytes(b"")
    assert _resume(out) == 2
    assert "not a na_cuda checkpoint" in capsys.readouterr().err


def _edit(ckpt: dict, change: str) -> None:
    if change == "epoch=-5":
        ckpt["epoch"] = -5
    elif change == "step=1e6":
        ckpt["step"] = 1e6
    elif change == "step=-3":
        ckpt["step"] = -3
    elif change == "step past the epoch":
        ckpt["step"] = 10**6
        ckpt["partial"]["n"] = 1.0
    elif change == "steps without samples":
        ckpt["step"] = 2
    elif change == "no optimizer":
        del ckpt["optimizer"]
    elif change == "metrics is a list":
        ckpt["metrics"] = []
    elif change == "rng of another world":
        ckpt["world_size"] = 2
    elif change == "model is not a state dict":
        ckpt["model"] = {"w": 3}
    elif change == "config has an unknown field":
        ckpt["config"]["no_such_field"] = 1
    elif change == "config value out of range":
        ckpt["config"]["lr"] = -1.0
    elif change == "weights of another network":
        ckpt["model"] = {k + "_renamed": v for k, v in ckpt["model"].items()}


EDITS = {
    "epoch=-5": "`epoch`",
    "step=1e6": "`step`",
    "step=-3": "`step`",
    "step past the epoch": "`step`",
    "steps without samples": "`partial`",
    "no optimizer": "missing",
    "metrics is a list": "`metrics`",
    "rng of another world": "`rng`",
    "model is not a state dict": "`model`",
    "config has an unknown field": "`config`",
    "config value out of range": "`config`",
    "weights of another network": "does not fit",
}


@pytest.mark.parametrize("change", list(EDITS))
def test_every_field_is_checked(trained, tmp_path, capsys, change):
    """A checkpoint with a valid digest but a bad field: a one-line error naming the field, exit 2."""
    out = _copy_run(trained, tmp_path)
    ckpt = checkpoint.load(out / "checkpoint.pt")
    _edit(ckpt, change)
    (out / "checkpoint.pt").write_bytes(checkpoint.encode(ckpt))
    assert _resume(out) == 2
    err = capsys.readouterr().err
    assert EDITS[change] in err, err
    assert len(err.strip().splitlines()) == 1, err


def test_stale_temp_files_are_removed_at_start(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    stale = out / f".checkpoint.pt.{_dead_pid()}.0123abcd.tmp"
    live = out / f".checkpoint.pt.{os.getpid()}.0123abcd.tmp"  # a live writer's file stays
    stale.write_bytes(b"x")
    live.write_bytes(b"x")
    assert train.main(FAST + ["--epochs", "1", "--out", str(out)], datasets=datasets()) == 0
    assert not stale.exists() and live.exists()
    assert "left by a killed run" in capsys.readouterr().err


def test_second_run_on_the_same_out_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    with FolderLock(out):  # as a running training holds it
        assert train.main(FAST + ["--epochs", "1", "--out", str(out)], datasets=datasets()) == 2
        err = capsys.readouterr().err
        assert f"in use by another run (pid {os.getpid()}" in err
        assert not (out / "checkpoint.pt").exists()
    # The lock file of a killed run (its pid is gone, the OS released the lock) is taken over.
    (out / FolderLock.NAME).write_text(f"{_dead_pid()}\n")
    assert train.main(FAST + ["--epochs", "1", "--out", str(out)], datasets=datasets()) == 0
    assert not (out / FolderLock.NAME).exists()


def test_concurrent_cli_runs_on_one_out(tmp_path):
    """Two real processes on one --out: while the first trains, the second stops with the lock message."""
    out = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=subprocess_pythonpath())
    first = subprocess.Popen(
        [sys.executable, RUNNER] + FAST + ["--epochs", "50", "--out", str(out)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (out / FolderLock.NAME).exists() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        second = subprocess.run(
            [sys.executable, RUNNER] + FAST + ["--epochs", "1", "--out", str(out), "--overwrite"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode == 2, second.stderr
        assert f"pid {first.pid}" in second.stderr and "in use by another run" in second.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=120)
    assert first.returncode == 128 + signal.SIGTERM, first.stderr


def test_low_free_space_fails_before_training(tmp_path, capsys, monkeypatch):
    class Usage:
        total, used, free = 10 << 20, 10 << 20, 100 << 10

    monkeypatch.setattr(loop.shutil, "disk_usage", lambda path: Usage)
    out = tmp_path / "run"
    assert train.main(FAST + ["--epochs", "1", "--out", str(out)], datasets=datasets()) == 2
    err = capsys.readouterr().err
    assert "MiB free" in err and "--out" in err
    assert not (out / "metrics.json").exists() and not (out / "checkpoint.pt").exists()


def test_failed_write_test_stops_before_training(tmp_path):
    """A file-size limit below one checkpoint (as a nearly full disk or a quota): the early write fails with a
    message, before the first epoch."""
    out = tmp_path / "run"

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 10, 64 << 10))

    env = dict(os.environ, PYTHONPATH=subprocess_pythonpath(), PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run(
        [sys.executable, RUNNER] + FAST + ["--epochs", "1", "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        preexec_fn=limit,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "cannot write" in proc.stderr and "epoch 1/1" not in proc.stdout
    assert not out.exists()  # the folder this run created is removed again: nothing left behind


def test_ddp_timeout_flag_is_validated(capsys):
    with pytest.raises(SystemExit):
        train.main(["--ddp-timeout", "0"])
    assert "--ddp-timeout" in capsys.readouterr().err


@pytest.mark.slow
def test_ddp_stalled_rank_fails_after_the_timeout(tmp_path):
    """A rank that stops answering (here: sleeps in its second step) makes the other fail after --ddp-timeout
    seconds instead of torch's default 30 minutes."""
    env = dict(
        os.environ,
        PYTHONPATH=subprocess_pythonpath(),
        OMP_NUM_THREADS="1",
        NA_TEST_STALL_RANK1_S="40",
    )
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", RUNNER]
        + FAST
        + ["--epochs", "1", "--ddp-timeout", "3", "--out", str(tmp_path / "r")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=150)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"the stalled run did not end\n{out}\n{err}")
    assert proc.returncode != 0
    assert time.monotonic() - t0 < 150
    assert "timed out" in err.lower() or "timeout" in err.lower(), err[-3000:]
