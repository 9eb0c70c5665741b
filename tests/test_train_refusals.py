"""The training CLI refuses what would fail later, before any file (one line, exit status 2), checks every field
of a re-signed checkpoint against the run, and survives a full disk (docs/training.md, docs/reliability.md)."""

from __future__ import annotations

import errno
import json
import os
import sys
from pathlib import Path

import pytest
import torch

from na_cuda import train
from na_cuda.train import checkpoint

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _fake_data import datasets  # noqa: E402

FAST = ["--limit-train", "128", "--batch-size", "32", "--no-progress"]


# -- CLI values valid as doubles that do not fit the model's float32 --------------------------------
@pytest.mark.parametrize(
    "argv, name",
    [
        (["--set", "threshold=1e-300"], "threshold"),
        (["--set", "tau_m=1e39"], "tau_m"),
        (["--set", "clip=1e-50"], "clip"),
        (["--method", "stbp", "--set", "surrogate_alpha=1e-30"], "surrogate_alpha"),
        (["--method", "stbp", "--set", "surrogate_alpha=1e-200"], "surrogate_alpha"),
    ],
)
def test_values_that_do_not_fit_float32_exit_2_before_any_file(argv, name, tmp_path, capsys):
    out = tmp_path / "run"
    rc = train.main(FAST + ["--epochs", "1", "--out", str(out)] + argv, datasets=datasets())
    err = capsys.readouterr().err
    assert rc == 2, err
    assert name in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


# -- an empty --out ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("extra", [[], ["--resume"]])
def test_empty_out_is_refused(extra, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        train.main(FAST + ["--epochs", "1", "--out", ""] + extra, datasets=datasets())
    assert exc.value.code == 2
    assert "--out" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    rc = train.main(FAST + ["--epochs", "1", "--set", "out="], datasets=datasets())
    assert rc == 2 and "out" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


# -- re-signed checkpoint fields ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A run of 1 epoch (4 steps); tests copy its checkpoint."""
    out = tmp_path_factory.mktemp("trained") / "run"
    assert train.main(FAST + ["--epochs", "1", "--out", str(out)], datasets=datasets()) == 0
    return out


def _first_state(ckpt: dict) -> dict:
    return ckpt["optimizer"]["state"][0]


RESIGNED = {
    "optimizer lr = 100": (lambda c: c["optimizer"]["param_groups"][0].update(lr=100.0), "param_groups[0].lr"),
    "optimizer lr = -1": (lambda c: c["optimizer"]["param_groups"][0].update(lr=-1.0), "param_groups[0].lr"),
    "NaN in a weight": (lambda c: next(iter(c["model"].values())).view(-1)[0].fill_(float("nan")), "model."),
    "optimizer betas": (lambda c: c["optimizer"]["param_groups"][0].update(betas=(0.5, 0.9)), "betas"),
    "scheduler gamma = NaN": (lambda c: c["scheduler"].update(gamma=float("nan")), "scheduler.gamma"),
    "scheduler last_epoch = 'x'": (lambda c: c["scheduler"].update(last_epoch="x"), "scheduler.last_epoch"),
    "test_accuracy = 5.0": (
        lambda c: c["metrics"]["epochs"][0].update(test_accuracy=5.0),
        "metrics.epochs[0].test_accuracy",
    ),
    "best accuracy not the rows'": (lambda c: c["metrics"].update(best_test_accuracy=0.999), "best_test_accuracy"),
    "exp_avg of the wrong shape": (lambda c: _first_state(c).update(exp_avg=torch.zeros(3)), "exp_avg"),
    "exp_avg_sq < 0": (
        lambda c: _first_state(c).update(exp_avg_sq=-_first_state(c)["exp_avg_sq"] - 1),
        "exp_avg_sq",
    ),
    "optimizer step = -5": (lambda c: _first_state(c).update(step=torch.tensor(-5.0)), "state[0].step"),
    "state of no parameter": (lambda c: c["optimizer"]["state"].update({99: _first_state(c)}), "state[99]"),
    "python RNG state malformed": (lambda c: c["rng"][0].update(python=[3, [1, 2, 3], None]), "rng[0].python"),
    "torch RNG state truncated": (lambda c: c["rng"][0].update(torch=c["rng"][0]["torch"][:100]), "rng[0].torch"),
    "numpy RNG state malformed": (
        lambda c: c["rng"][0].update(numpy=["MT19937", torch.zeros(5, dtype=torch.int64), 0, 0, 0.0]),
        "rng[0].numpy",
    ),
}


@pytest.mark.parametrize("change", list(RESIGNED))
def test_resigned_fields_are_checked_against_the_run(change, trained, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    for name in ("checkpoint.pt", "config.json", "metrics.json"):
        (out / name).write_bytes((trained / name).read_bytes())
    ckpt = checkpoint.load(out / "checkpoint.pt")
    edit, words = RESIGNED[change]
    edit(ckpt)
    (out / "checkpoint.pt").write_bytes(checkpoint.encode(ckpt))  # a valid digest over the edited payload
    before = (out / "checkpoint.pt").read_bytes()
    rc = train.main(FAST + ["--epochs", "2", "--out", str(out), "--resume"], datasets=datasets())
    err = capsys.readouterr().err
    assert rc == 2, err
    assert words in err and len(err.strip().splitlines()) == 1, err
    assert (out / "checkpoint.pt").read_bytes() == before


# -- a disk that fills mid-run -----------------------------------------------------------------------------
def _fill_disk_at(monkeypatch, name: str, call: int) -> None:
    """The ``call``-th atomic write of a file called ``name`` (1-based) fails as a full disk does, after writing
    part of its temporary file (atomic_write removes it)."""
    from na_cuda.train import report

    real = report.atomic_write
    calls = {"n": 0}

    def atomic_write(path, write, mode="wb"):
        if Path(path).name == name:
            calls["n"] += 1
            if calls["n"] == call:

                def partial(f):
                    f.write(b"x" * 1000)
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

                return real(path, partial, mode)
        return real(path, write, mode)

    monkeypatch.setattr(report, "atomic_write", atomic_write)
    monkeypatch.setattr(checkpoint, "atomic_write", atomic_write)


@pytest.mark.parametrize("name, call, kept_epoch", [("checkpoint.pt", 2, 1), ("curves.png", 2, 2)])
def test_full_disk_is_one_line_keeps_the_checkpoint_and_resumes_exactly(
    name, call, kept_epoch, tmp_path, capsys, monkeypatch
):
    straight = tmp_path / "straight"
    assert train.main(FAST + ["--epochs", "3", "--out", str(straight)], datasets=datasets()) == 0
    out = tmp_path / "run"
    with monkeypatch.context() as m:
        _fill_disk_at(m, name, call)
        rc = train.main(FAST + ["--epochs", "3", "--out", str(out)], datasets=datasets())
    err = capsys.readouterr().err
    assert rc == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert str(out / name) in lines[0] and "MiB" in lines[0] and "No space left" in lines[0], err
    assert f"last good checkpoint (after epoch {kept_epoch})" in lines[0] and "--resume" in lines[0], err
    assert checkpoint.load(out / "checkpoint.pt")["epoch"] == kept_epoch
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".") and p.name != ".lock") == []
    # Space freed: the resumed run ends where the uninterrupted one did, bit for bit.
    assert train.main(FAST + ["--epochs", "3", "--out", str(out), "--resume"], datasets=datasets()) == 0
    a, b = checkpoint.load(out / "checkpoint.pt"), checkpoint.load(straight / "checkpoint.pt")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in b["model"])
    strip = [{k: v for k, v in e.items() if k not in train.TIMING_KEYS} for e in b["metrics"]["epochs"]]
    got = json.loads((out / "metrics.json").read_text())["epochs"]
    assert [{k: v for k, v in e.items() if k not in train.TIMING_KEYS} for e in got] == strip


# -- the loss options of the config --------------------------------------------------------------------------
def test_spike_count_config_refuses_desired_below_undesired(tmp_path, capsys):
    argv = ["--set", "loss=spike_count", "--set", "desired_count=1", "--set", "undesired_count=3"]
    rc = train.main(FAST + ["--epochs", "1", "--out", str(tmp_path / "run")] + argv, datasets=datasets())
    assert rc == 2 and "desired_count" in capsys.readouterr().err
