"""Models of the paper and the training CLI (``na_cuda.models``, ``na_cuda.train``).

Training runs use the synthetic digits of ``_fake_data`` (no download, no scikit-learn) through
``train.main(..., datasets=...)`` or ``tests/_train_runner.py``; one smoke test runs the real CLI on scikit-learn's
digits (skipped without scikit-learn).
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from na_cuda import models, train
from na_cuda.data import idx, store
from na_cuda.nn import LIF
from na_cuda.train import checkpoint, progress
from tests.helpers import subprocess_pythonpath

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _fake_data import FakeFrames, datasets  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RUNNER = str(Path(__file__).resolve().parent / "_train_runner.py")
# Small, fast runs: 128 training samples, 4 steps of 32 per epoch.
FAST = ["--limit-train", "128", "--batch-size", "32", "--no-progress"]

# Per-sample input shape of each preset's dataset, and the flattened size before the first linear layer
# (the released Networks/*.yaml `n_inputs`).
PRESET_INPUTS = {
    "digits": ((1, 8, 8), 256),
    "mnist": ((1, 28, 28), 640),
    "fashion-mnist": ((1, 28, 28), 640),
    "nmnist": ((2, 34, 34), 2304),
    "cifar10-alexnet": ((3, 32, 32), 16384),
    "cifar10-cifarnet": ((3, 32, 32), 32768),
}


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = subprocess_pythonpath()
    return env


def _run(cmd: list, env: dict, timeout: float = 180, cwd=None) -> subprocess.CompletedProcess:
    """Run `cmd` in its own process group; on timeout kill the whole group (torchrun's workers too) and fail."""
    proc = subprocess.Popen(
        cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{' '.join(cmd)} timed out after {timeout} s\n{out}\n{err}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _no_timing(metrics: dict) -> list:
    return [{k: v for k, v in e.items() if k not in train.TIMING_KEYS} for e in metrics["epochs"]]


def _weights(path: Path) -> dict:
    return checkpoint.load(path)["model"]


# ----------------------------------------------------------------------------------------------------------------
# Models.
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("preset", list(train.PRESETS))
def test_preset_builds_and_runs_forward(preset):
    shape, flat = PRESET_INPUTS[preset]
    big = preset.startswith("cifar10")
    T = 2 if big else train.PRESETS[preset]["T"]
    cfg = train.make_config(preset, T=T)
    torch.manual_seed(0)
    net = train.model_from_config(cfg, shape)
    assert net.arch == train.PRESETS[preset]["arch"]
    fcs = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert fcs[0].in_features == flat
    lifs = [m for m in net.modules() if isinstance(m, LIF)]
    assert all(m.params["output"] == "psc" and m.params["method"] == "na" for m in lifs)
    assert all(m.params["tau_m"] == cfg.tau_m and m.params["tau_s"] == cfg.tau_s for m in lifs)
    assert all(m.bias is None for m in net.weight_layers())
    x = torch.rand(T, 1, *shape) * (1.0 if big else 3.0)
    with torch.no_grad():
        out = net(x)
    assert out.shape == (T, 1, 10)
    assert torch.isfinite(out).all() and out.min() >= 0


def test_set_takes_every_keyword_of_lif():
    """A neuron or rule keyword without a config field of its own (derived from LifParams and the rule classes)
    goes to ``lif_options`` and reaches every LIF; another rule's keyword is refused."""
    cfg = train.make_config("digits", method="stbp", v_reset=None, detach_reset=False, surrogate="atan")
    assert cfg.lif_options == {"v_reset": None, "detach_reset": False}
    lifs = [m for m in train.model_from_config(cfg, (1, 8, 8)).modules() if isinstance(m, LIF)]
    assert lifs and all(m.neuron.v_reset is None and m.rule.detach_reset is False for m in lifs)
    assert all(m.rule.surrogate == "atan" for m in lifs)
    with pytest.raises(train.ConfigError, match="detach_reset"):
        train.make_config("digits", method="na", detach_reset=False)
    with pytest.raises(train.ConfigError, match="output"):
        train.make_config("digits", output="spike")


def test_fidelity_released_sets_the_released_recipe():
    paper = train.make_config("mnist")
    assert (paper.fidelity, paper.strict_threshold, paper.clip, paper.target_filters, paper.rescale_round) == (
        "paper",
        False,
        10.0,
        1,
        None,
    )
    rel = train.make_config("mnist", fidelity="released")
    assert (rel.strict_threshold, rel.clip, rel.target_filters, rel.rescale_round) == (True, 5.0, 2, 3)
    assert rel.lr == paper.lr  # the released code's hard-coded lr is not part of fidelity
    assert train.make_config("mnist", fidelity="released", clip=7.0).clip == 7.0  # explicit overrides win
    with pytest.raises(train.ConfigError, match="--fidelity"):
        train.make_config("mnist", fidelity="exact")
    net = train.model_from_config(rel, (1, 28, 28))
    lifs = [m for m in net.modules() if isinstance(m, LIF)]
    assert lifs and all(m.params["strict_threshold"] and m.params["clip"] == 5.0 for m in lifs)
    assert lifs[0].grad_rescale is not None and lifs[0].grad_rescale.round_decimals == 3


def test_paper_architectures_layer_shapes():
    net = models.build_model("mnist", (1, 28, 28))
    assert [s for _, s in net.shapes] == [(15, 24, 24), (15, 12, 12), (40, 8, 8), (40, 4, 4), (300,), (10,)]
    net = models.build_model("nmnist", (2, 34, 34), padding=[1, 0])
    assert [s for _, s in net.shapes] == [(12, 32, 32), (12, 16, 16), (64, 12, 12), (64, 6, 6), (10,)]


@pytest.mark.parametrize("method", ["na", "stbp", "tssl"])
def test_every_method_trains_through_the_net(method):
    torch.manual_seed(0)
    net = models.build_model("digits", (1, 8, 8), padding=1, method=method, grad_rescale=method == "na")
    out = net(torch.rand(5, 4, 1, 8, 8) * 3)
    out.sum().backward()
    grads = [m.weight.grad for m in net.weight_layers()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_sum_pool_dropout_and_init():
    x = torch.rand(3, 2, 4, 6)
    pooled = models.SumPool2d(2, 1.1)(x)
    want = 1.1 * x.reshape(3, 2, 2, 2, 3, 2).sum(dim=(3, 5))
    torch.testing.assert_close(pooled, want)

    drop = models.TimeDropout(0.5).train()
    y = drop(torch.ones(4, 8, 16))
    assert torch.equal(y[0], y[3])  # one mask for all time steps
    assert set(y.unique().tolist()) <= {0.0, 2.0}
    assert torch.equal(drop.eval()(x), x)

    torch.manual_seed(0)
    net = models.build_model("96C3-1000-10", (3, 8, 8), padding=1, conv_weight_scale=5.0)
    conv, fc = net.weight_layers()[0], net.weight_layers()[1]
    bound = 5.0 / math.sqrt(3 * 9)  # kaiming_uniform_(a=sqrt(5)) = U(-1/sqrt(fan_in), 1/sqrt(fan_in)), times 5
    assert conv.weight.abs().max() <= bound and conv.weight.abs().max() > 0.9 * bound
    assert abs(fc.weight.std().item() - math.sqrt(2 / (96 * 64))) < 0.01 * math.sqrt(2 / (96 * 64)) * 10


@pytest.mark.parametrize(
    "arch, match",
    [
        ("15C5-P2", "end with a fully connected"),
        ("15X5-10", "15X5"),
        ("300-P2-10", "before the fully connected"),
        ("", "non-empty"),
    ],
)
def test_bad_architecture_names_the_token(arch, match):
    with pytest.raises(ValueError, match=match):
        models.build_model(arch, (1, 28, 28))


def test_model_rejects_wrong_input_shape():
    net = models.build_model("digits", (1, 8, 8), padding=1)
    with pytest.raises(ValueError, match=r"\[T, B, 1, 8, 8\]"):
        net(torch.rand(2, 1, 8, 8))


# ----------------------------------------------------------------------------------------------------------------
# Training CLI.
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_cli_smoke_real_digits(tmp_path):
    """`python -m na_cuda.train` on scikit-learn's digits: one epoch, every output file with its keys."""
    pytest.importorskip("sklearn", reason="the real 'digits' dataset ships with scikit-learn")
    out = tmp_path / "run"
    proc = _run(
        [sys.executable, "-m", "na_cuda.train", "--epochs", "1", "--limit-train", "300", "--out", str(out)],
        env=_env(),
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "test accuracy:" in proc.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"epochs", "best_test_accuracy", "best_epoch"}
    (row,) = metrics["epochs"]
    assert set(row) == {
        "epoch",
        "train_loss",
        "train_accuracy",
        "test_loss",
        "test_accuracy",
        "lr",
        "seconds",
        "samples_per_second",
        "train_seconds",
        "eval_seconds",
    }
    assert row["seconds"] == pytest.approx(row["train_seconds"] + row["eval_seconds"])
    assert row["epoch"] == 1 and 0 <= row["test_accuracy"] <= 1 and math.isfinite(row["train_loss"])
    assert metrics["best_test_accuracy"] == row["test_accuracy"]
    config = json.loads((out / "config.json").read_text())
    assert config["preset"] == "digits" and config["method"] == "na" and config["limit_train"] == 300
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ckpt = checkpoint.load(out / "checkpoint.pt")
    assert {"model", "optimizer", "scheduler", "rng", "epoch", "step", "metrics", "config"} <= set(ckpt)
    assert ckpt["epoch"] == 1 and ckpt["step"] == 0
    assert {"torch", "python", "numpy", "augment"} <= set(ckpt["rng"][0])


def test_frames_preset_trains(tmp_path):
    """The N-MNIST path (time-first frames, PSC-filtered input, spike-count loss) on fake frames, T = 5."""
    out = tmp_path / "run"
    frames = (FakeFrames(True, 40, 5), FakeFrames(False, 20, 5))
    argv = [
        "--preset",
        "nmnist",
        "--T",
        "5",
        "--epochs",
        "1",
        "--batch-size",
        "20",
        "--no-progress",
        "--out",
        str(out),
        "--set",
        "desired_count=4",
        "--set",
        "undesired_count=1",
    ]
    assert train.main(argv, datasets=frames) == 0
    (row,) = json.loads((out / "metrics.json").read_text())["epochs"]
    assert math.isfinite(row["train_loss"]) and 0 <= row["test_accuracy"] <= 1
    config = json.loads((out / "config.json").read_text())
    assert (config["loss"], config["padding"], config["T"]) == ("spike_count", [1, 0], 5)
    # The frames' T must match --T.
    assert train.main(argv[:2] + ["--T", "6"] + argv[4:] + ["--overwrite"], datasets=frames) == 2


@pytest.mark.slow
def test_resume_gives_identical_metrics(tmp_path):
    """2 epochs straight == 1 epoch + resume 1 == interrupted mid-epoch (SIGINT) + resume, on CPU."""
    straight, split, interrupted = tmp_path / "straight", tmp_path / "split", tmp_path / "interrupted"
    assert train.main(FAST + ["--epochs", "2", "--out", str(straight)], datasets=datasets()) == 0
    assert train.main(FAST + ["--epochs", "1", "--out", str(split)], datasets=datasets()) == 0
    assert train.main(FAST + ["--epochs", "2", "--out", str(split), "--resume"], datasets=datasets()) == 0

    def interrupt(epoch, step, loss):
        if (epoch, step) == (1, 1):
            os.kill(os.getpid(), signal.SIGINT)  # the handler lets this step finish, then checkpoints
        return loss

    rc = train.main(FAST + ["--epochs", "2", "--out", str(interrupted)], datasets=datasets(), loss_hook=interrupt)
    assert rc == 128 + signal.SIGINT
    ckpt = checkpoint.load(interrupted / "checkpoint.pt")
    assert (ckpt["epoch"], ckpt["step"]) == (1, 2)  # mid-epoch 2, after its second step
    assert train.main(FAST + ["--epochs", "2", "--out", str(interrupted), "--resume"], datasets=datasets()) == 0

    want = json.loads((straight / "metrics.json").read_text())
    assert len(want["epochs"]) == 2
    for run in (split, interrupted):
        got = json.loads((run / "metrics.json").read_text())
        assert _no_timing(got) == _no_timing(want)
        assert got["best_test_accuracy"] == want["best_test_accuracy"]
        for k, w in _weights(straight / "checkpoint.pt").items():
            assert torch.equal(_weights(run / "checkpoint.pt")[k], w), k


@pytest.mark.slow
def test_sigterm_writes_a_resumable_checkpoint(tmp_path):
    """A real SIGTERM to the CLI process: it finishes the step, checkpoints, exits 143, and --resume completes."""
    out = tmp_path / "run"
    cmd = [sys.executable, RUNNER, "--epochs", "200", "--out", str(out)] + FAST
    proc = subprocess.Popen(
        cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        for line in proc.stdout:  # wait until training runs (the first epoch is done)
            if line.startswith("epoch 1/200"):
                break
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "SIGTERM" in err and "--resume" in err
    ckpt = checkpoint.load(out / "checkpoint.pt")
    assert 1 <= ckpt["epoch"] < 200
    done = len(json.loads((out / "metrics.json").read_text())["epochs"])
    assert done == ckpt["epoch"]
    assert (
        train.main(FAST + ["--epochs", str(ckpt["epoch"] + 1), "--out", str(out), "--resume"], datasets=datasets()) == 0
    )
    assert len(json.loads((out / "metrics.json").read_text())["epochs"]) == ckpt["epoch"] + 1


def test_non_finite_loss_stops_and_keeps_last_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"

    def poison(epoch, step, loss):
        return loss * float("nan") if (epoch, step) == (1, 2) else loss

    rc = train.main(FAST + ["--epochs", "3", "--out", str(out)], datasets=datasets(), loss_hook=poison)
    assert rc == 1
    err = capsys.readouterr().err
    assert "non-finite loss" in err and "epoch 2, step 3" in err and "--lr" in err
    assert "last good checkpoint (after epoch 1)" in err
    ckpt = checkpoint.load(out / "checkpoint.pt")
    assert (ckpt["epoch"], ckpt["step"]) == (1, 0)
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())
    assert len(json.loads((out / "metrics.json").read_text())["epochs"]) == 1
    # The kept checkpoint resumes.
    assert train.main(FAST + ["--epochs", "2", "--out", str(out), "--resume"], datasets=datasets()) == 0


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["--preset", "imagenet"], "--preset"),
        (["--lr", "-1"], "--lr"),
        (["--lr", "nan"], "--lr"),
        (["--epochs", "0"], "--epochs"),
        (["--batch-size", "x"], "--batch-size"),
        (["--method", "bptt"], "--method"),
        (["--device", "tpu"], "--device"),
        (["--set", "bogus=1"], "--set"),
        (["--set", "dropout"], "--set"),
    ],
)
def test_cli_rejects_bad_arguments(argv, flag, capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        train.main(argv + ["--out", str(tmp_path)], datasets=datasets())
    assert exc.value.code == 2
    assert flag in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--set", "dropout=1.5"], ["--set dropout", "[0, 1)"]),
        (["--set", "loss=hinge"], ["--set loss", "van_rossum"]),
        (["--set", "tau_m=0.5"], ["tau_m"]),
        (["--set", "arch=15C5-P2"], ["--set arch", "fully connected"]),
        (["--set", "padding=[1,0]"], ["--set padding", "1 conv"]),
        (["--set", "arch=16C11-10"], ["--set arch", "does not fit"]),
        (["--resume"], ["--resume", "no checkpoint"]),
    ],
)
def test_cli_reports_bad_config(argv, words, capsys, tmp_path):
    rc = train.main(FAST + ["--epochs", "1", "--out", str(tmp_path / "run")] + argv, datasets=datasets())
    err = capsys.readouterr().err
    assert rc == 2, err
    for w in words:
        assert w in err


def test_existing_checkpoint_needs_resume_or_overwrite(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert train.main(FAST + ["--epochs", "1", "--out", out], datasets=datasets()) == 0
    assert train.main(FAST + ["--epochs", "1", "--out", out], datasets=datasets()) == 2
    assert "--resume" in capsys.readouterr().err
    # --resume may extend the epochs but not change the recipe.
    assert train.main(FAST + ["--epochs", "2", "--out", out, "--resume", "--lr", "0.1"], datasets=datasets()) == 2
    assert "--lr" in capsys.readouterr().err
    assert (
        train.main(FAST + ["--epochs", "1", "--out", out, "--overwrite", "--method", "stbp"], datasets=datasets()) == 0
    )
    assert json.loads((tmp_path / "run" / "config.json").read_text())["method"] == "stbp"


# ----------------------------------------------------------------------------------------------------------------
# CLI errors: one line on stderr, the exit status, nothing created on disk.
# ----------------------------------------------------------------------------------------------------------------
PROG = "python -m na_cuda.train: error: "


def _one_error_line(err: str, start: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(PROG + start), err
    return lines[0]


def test_mistyped_data_dir_is_reported_and_not_created(tmp_path, capsys):
    typo, out = tmp_path / "dtaa", tmp_path / "run"
    rc = train.main(["--preset", "mnist", "--data-dir", str(typo), "--out", str(out)])
    line = _one_error_line(capsys.readouterr().err, "--data-dir: ")
    assert rc == 2
    assert f"{typo} does not exist (looked for mnist there)" in line
    assert list(tmp_path.iterdir()) == []


def test_mistyped_data_dir_with_digits_exits_2(tmp_path, capsys):
    """digits reads no files, but a --data-dir that does not exist is the same error (it trained and exited 0)."""
    typo, out = tmp_path / "nonexistent", tmp_path / "run"
    rc = train.main(["--preset", "digits", "--data-dir", str(typo), "--out", str(out), "--epochs", "1"])
    line = _one_error_line(capsys.readouterr().err, "--data-dir: ")
    assert rc == 2
    assert f"{typo} does not exist; the digits dataset ships with scikit-learn" in line
    assert list(tmp_path.iterdir()) == []


def test_missing_data_after_failed_download(tmp_path, capsys, monkeypatch):
    """An existing but empty --data-dir, every mirror refusing: the useful sentence first, then the mirrors tried;
    exit 1; the data folder stays empty and --out is not created."""
    specs = tuple(
        store.RemoteFile(s + ".gz", tuple(f"http://127.0.0.1:1/m{i}/{s}.gz" for i in range(2)), ("0" * 64,))
        for s in idx.IDX_STEMS[True] + idx.IDX_STEMS[False]
    )
    monkeypatch.setitem(store.SOURCES, "mnist", specs)
    empty, out = tmp_path / "data", tmp_path / "run"
    empty.mkdir()
    rc = train.main(["--preset", "mnist", "--data-dir", str(empty), "--out", str(out)])
    line = _one_error_line(capsys.readouterr().err, "--data-dir: na_cuda.data: MNIST (train split) not found in ")
    assert rc == 1
    assert line.index("Put train-images-idx3-ubyte.gz") < line.index("Download failed from: http://127.0.0.1:1/m0/")
    assert list(empty.iterdir()) == [] and not out.exists()


@pytest.mark.parametrize("case", ["file", "under a file", "read-only"])
def test_bad_out_is_one_line(case, tmp_path, capsys, monkeypatch):
    target = tmp_path / "target"
    if case == "read-only":
        target.mkdir()
        if os.geteuid() == 0:  # root writes anywhere: report the folder as read-only (as on a read-only mount)
            real = os.access
            monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == target else real(p, mode))
        else:
            target.chmod(0o555)
        out, want = target / "run", "is not writable"
    else:
        target.write_text("x")
        out, want = (target, "is a file, not a folder") if case == "file" else (target / "run", "is a file")
    try:
        rc = train.main(FAST + ["--epochs", "1", "--out", str(out)], datasets=datasets())
    finally:
        target.chmod(0o755 if target.is_dir() else 0o644)
    line = _one_error_line(capsys.readouterr().err, "--out: ")
    assert rc == 2 and want in line
    assert [p.name for p in tmp_path.iterdir()] == ["target"]
    assert target.read_text() == "x" if target.is_file() else list(target.iterdir()) == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_device_cuda_without_gpu_is_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    rc = train.main(FAST + ["--epochs", "1", "--device", "cuda", "--out", str(out)], datasets=datasets())
    line = _one_error_line(capsys.readouterr().err, "--device: ")
    assert rc == 2 and "sees no CUDA GPU; use --device cpu" in line
    assert not out.exists()


def test_cli_errors_have_no_traceback(tmp_path):
    """The real CLI process: a mistyped --data-dir is one line on stderr (no traceback), exit 2, nothing created."""
    proc = _run(
        [
            sys.executable,
            "-m",
            "na_cuda.train",
            "--preset",
            "mnist",
            "--data-dir",
            str(tmp_path / "dtaa"),
            "--out",
            str(tmp_path / "run"),
        ],
        env=_env(),
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 2
    _one_error_line(proc.stderr, "--data-dir: ")
    assert list(tmp_path.iterdir()) == []


def test_resume_of_a_finished_run_says_so(tmp_path, capsys):
    out = tmp_path / "run"
    assert train.main(FAST + ["--epochs", "1", "--out", str(out)], datasets=datasets()) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    assert train.main(FAST + ["--epochs", "1", "--out", str(out), "--resume"], datasets=datasets()) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == (
        "na_cuda.train: run already finished 1/1 epochs; nothing to do (raise --epochs to continue)"
    )
    assert captured.err == ""
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    # --epochs below what the checkpoint holds: nothing is trained either.
    assert (
        train.main(
            FAST + ["--epochs", "2", "--out", str(out), "--resume"], datasets=datasets(), loss_hook=_stop_at(1, 1)
        )
        == 128 + signal.SIGINT
    )
    assert train.main(FAST + ["--epochs", "1", "--out", str(out), "--resume"], datasets=datasets()) == 0
    assert (
        "run already finished 1/1 epochs (the checkpoint is at step 2 of epoch 2); nothing to do"
        in capsys.readouterr().out
    )


def _stop_at(epoch: int, step: int):
    """A loss hook that sends SIGINT at (epoch, step): the run checkpoints after that step and exits."""

    def hook(e, s, loss):
        if (e, s) == (epoch, step):
            os.kill(os.getpid(), signal.SIGINT)
        return loss

    return hook


def test_progress_without_tqdm_is_plain_lines_with_eta(tmp_path, capsys, monkeypatch):
    """Without tqdm: one line saying how to get it, then plain progress lines (training and evaluation, with an
    ETA); the epoch line gives training and evaluation throughput apart and the run's ETA."""
    monkeypatch.setattr(progress, "tqdm", None)
    monkeypatch.setattr(progress, "PLAIN_EVERY_S", 0.0)
    monkeypatch.setattr(progress, "_told", [])
    argv = ["--limit-train", "128", "--batch-size", "32", "--set", "eval_batch_size=25", "--epochs", "2"]
    assert train.main(argv + ["--out", str(tmp_path / "run")], datasets=datasets()) == 0
    captured = capsys.readouterr()
    err = captured.err.splitlines()
    assert sum("tqdm is not installed" in e for e in err) == 1
    evals = [e for e in err if e.startswith("epoch 1/2 eval: ")]
    assert [e.split(": ")[1].split(" ")[0] for e in evals] == ["1/4", "2/4", "3/4", "4/4"]
    assert all(" ETA " in e for e in evals)
    assert any(e.startswith("epoch 2/2: 4/4 steps (100 %)") for e in err)
    first = next(o for o in captured.out.splitlines() if o.startswith("epoch 1/2: "))
    assert "samples/s), eval " in first and "| run ETA " in first


def test_base_install_without_tqdm_and_matplotlib(tmp_path):
    """The CLI where tqdm and matplotlib cannot be imported: it trains, writes the metrics, and says once each how
    to get the progress bar and the plot."""
    blocked = tmp_path / "blocked"
    for name in ("tqdm", "matplotlib"):
        (blocked / name).mkdir(parents=True)
        (blocked / name / "__init__.py").write_text(f"raise ImportError('no {name} (test)')\n")
    env = _env()
    env["PYTHONPATH"] = str(blocked) + os.pathsep + env["PYTHONPATH"]
    out = tmp_path / "run"
    proc = _run([sys.executable, RUNNER, "--epochs", "1", "--limit-train", "64", "--out", str(out)], env=env)
    assert proc.returncode == 0, proc.stderr
    assert "tqdm is not installed" in proc.stderr and "matplotlib is not installed" in proc.stderr
    assert json.loads((out / "metrics.json").read_text())["epochs"][0]["epoch"] == 1
    assert not (out / "curves.png").exists()


@pytest.mark.slow
def test_ddp_two_processes_match_single_process(tmp_path):
    """torchrun with 2 gloo processes == 1 process on the same global batches (2 epochs x 4 steps of 32).

    ``grad_rescale`` is off: its factors come from each rank's shard. Augmentation is off (per-rank RNG).
    Tolerance: float32 rounding of the gradient sums in another order (measured: identical losses, weights within
    1e-5 after 8 steps)."""
    common = FAST + ["--epochs", "2", "--no-augment", "--set", "grad_rescale=false"]
    env = _env()
    env["OMP_NUM_THREADS"] = "1"
    single = _run([sys.executable, RUNNER] + common + ["--out", str(tmp_path / "single")], env=env)
    assert single.returncode == 0, single.stderr
    ddp = _run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", RUNNER]
        + common
        + ["--out", str(tmp_path / "ddp")],
        env=env,
    )
    assert ddp.returncode == 0, ddp.stdout + ddp.stderr
    assert "x 2 processes" in ddp.stdout
    want = json.loads((tmp_path / "single" / "metrics.json").read_text())
    got = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    for g, w in zip(_no_timing(got), _no_timing(want), strict=True):
        for key in ("train_loss", "test_loss"):
            assert g[key] == pytest.approx(w[key], rel=1e-4), key
        for key in ("train_accuracy", "test_accuracy"):
            assert abs(g[key] - w[key]) <= 1 / 100, key
    w_single, w_ddp = _weights(tmp_path / "single" / "checkpoint.pt"), _weights(tmp_path / "ddp" / "checkpoint.pt")
    for k in w_single:
        torch.testing.assert_close(w_ddp[k], w_single[k], atol=1e-4, rtol=0)
    ckpt = checkpoint.load(tmp_path / "ddp" / "checkpoint.pt")
    assert ckpt["world_size"] == 2 and len(ckpt["rng"]) == 2
