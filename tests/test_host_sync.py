"""A training step never waits on the host (issue 18 part 2): the steps between two log points of
``na_cuda.train`` read nothing back from the device, and the network + loss compile as one graph.

A host sync is any data-dependent read of a tensor's values (``aten._local_scalar_dense``, value-dependent shapes,
``is_nonzero``, ``equal``, a device-to-host copy, ``tolist``, ``numpy``), recorded by a ``TorchDispatchMode``. On
the CPU two reads of tensors that stay on the host in a GPU run too are allowed where they happen: AdamW's step
counters and the batch positions' range check. With a GPU every read of a CUDA tensor counts."""

from __future__ import annotations

import json
import os
import sys
import traceback
from typing import Any

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from na_cuda import data, losses, train
from na_cuda.train import loop

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _fake_data import FakeDigits  # noqa: E402

aten = torch.ops.aten

#: Ops that read tensor values back to the host, or whose output shape depends on them.
DATA_DEPENDENT = {
    aten._local_scalar_dense.default,
    aten.item.default,
    aten.is_nonzero.default,
    aten.equal.default,
    aten.nonzero.default,
    aten.argwhere.default,
    aten.masked_select.default,
    aten.repeat_interleave.Tensor,
    aten._unique2.default,
    aten.unique_consecutive.default,
    aten.unique_dim.default,
    aten.bincount.default,
}
#: Ops that take index tensors: data-dependent when an index is boolean (a mask).
INDEXING = {aten.index.Tensor, aten.index_put.default, aten.index_put_.default, aten._index_put_impl_.default}
#: Host reads of tensors that stay on the host in a GPU run as well: (file fragment, function).
HOST_SIDE = (("torch/optim/", "_get_value"), ("na_cuda/data/dataset.py", "as_index"))


def _tensors(args: Any) -> list[torch.Tensor]:
    flat, _ = torch.utils._pytree.tree_flatten(args)
    return [a for a in flat if isinstance(a, torch.Tensor)]


class SyncRecorder(TorchDispatchMode):
    """Records the data-dependent reads while ``active``: (what, devices, whether in a host-side place, phase)."""

    def __init__(self) -> None:
        super().__init__()
        self.active = False
        self.phase = "step"
        self.events: list[tuple[str, tuple[str, ...], bool, str]] = []

    def record(self, what: str, tensors: list[torch.Tensor]) -> None:
        if not self.active:
            return
        frames = traceback.extract_stack()
        host_side = any(
            frag in f.filename.replace(os.sep, "/") and f.name == fn for f in frames for frag, fn in HOST_SIDE
        )
        self.events.append((what, tuple(sorted({t.device.type for t in tensors})), host_side, self.phase))

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        tensors = _tensors((args, kwargs))
        if func in DATA_DEPENDENT:
            self.record(str(func), tensors)
        elif func in INDEXING and any(t.dtype in (torch.bool, torch.uint8) for t in _tensors(args[1])):
            self.record(f"{func} with a boolean index", tensors)
        elif func in (aten._to_copy.default, aten.copy_.default):
            src = args[1] if func is aten.copy_.default else args[0]
            dst = args[0].device if func is aten.copy_.default else kwargs.get("device", src.device)
            if src.device.type != "cpu" and torch.device(dst).type == "cpu":
                self.record("device-to-host copy", [src])
        return func(*args, **kwargs)

    def syncs(self, phase: str = "step") -> list[tuple[str, tuple[str, ...], bool, str]]:
        """The events of ``phase`` that are host syncs: any read of a non-CPU tensor, CPU reads outside HOST_SIDE."""
        return [e for e in self.events if e[3] == phase and (any(d != "cpu" for d in e[1]) or not e[2])]


def _image_digits(train_split: bool, n: int) -> data.ImageDataset:
    """The fake digits as the real ``ImageDataset`` (uint8 storage, ``as_index``), to run the real batch path."""
    fake = FakeDigits(train_split, n)
    images = (fake.images * 16).round().to(torch.uint8)
    return data.ImageDataset("digits", train_split, images, fake.labels, num_classes=10, max_value=16)


def _count_syncs(monkeypatch, tmp_path, device: str, extra: list[str]) -> tuple[SyncRecorder, list[int]]:
    """Trains 2 epochs of 12 steps with a log point every 5 steps under a SyncRecorder that is active inside
    ``Run.train_epoch`` (phase "log" inside its log points); returns the recorder and the steps of the log
    points."""
    rec = SyncRecorder()
    log_points: list[int] = []
    read_interval, train_epoch = loop.Run._read_interval, loop.Run.train_epoch

    def logged(self, *args):  # type: ignore[no-untyped-def]
        rec.phase = "log"
        try:
            return read_interval(self, *args)
        finally:
            rec.phase = "step"
            log_points.append(self.step)

    def epoch(self, *args):  # type: ignore[no-untyped-def]
        rec.active = True
        try:
            return train_epoch(self, *args)
        finally:
            rec.active = False

    def reading(name: str):  # type: ignore[no-untyped-def]
        original = getattr(torch.Tensor, name)

        def wrapper(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            rec.record(f"Tensor.{name}", [self])
            return original(self, *args, **kwargs)

        return wrapper

    monkeypatch.setattr(loop.Run, "_read_interval", logged)
    monkeypatch.setattr(loop.Run, "train_epoch", epoch)
    for name in ("tolist", "numpy"):
        monkeypatch.setattr(torch.Tensor, name, reading(name))
    argv = ["--limit-train", "96", "--batch-size", "8", "--epochs", "2", "--log-every", "5", "--no-progress"]
    argv += ["--device", device, "--out", str(tmp_path / "run")] + extra
    with rec:
        rc = train.main(argv, datasets=(_image_digits(True, 96), _image_digits(False, 20)))
    assert rc == 0
    return rec, log_points


#: CUDA too where there is a GPU (marked ``cuda``: scripts/gpu_check.sh runs ``pytest -m cuda``).
DEVICES = ["cpu"] + ([pytest.param("cuda", marks=pytest.mark.cuda)] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_no_host_sync_between_log_points(monkeypatch, tmp_path, device):
    rec, log_points = _count_syncs(monkeypatch, tmp_path, device, [])
    assert rec.syncs() == []
    # The recorder is not blind: it saw the host-side reads it allows, and one read of the statistics per log point.
    assert any(e[2] for e in rec.events)
    assert log_points == [5, 10, 12, 5, 10, 12]
    assert len([e for e in rec.syncs("log") if e[0] == "Tensor.tolist"]) == len(log_points)


def test_the_recorder_sees_the_syncs_of_a_loss_with_label_check():
    """The label range check of the losses is a host read (one per call); ``check_labels=False`` has none."""
    out, y = torch.rand(5, 4, 10), torch.randint(10, (4,))
    rec = SyncRecorder()
    rec.active = True
    original = torch.Tensor.tolist
    try:
        torch.Tensor.tolist = lambda self, *a: (rec.record("Tensor.tolist", [self]), original(self, *a))[1]
        with rec:
            losses.sdt(out, y, check_labels=False)
            losses.spike_count(out, y, 5.0, 0.0, check_labels=False)
            losses.na_desired_spikes(y, 10, 5, check_labels=False)
            assert rec.syncs() == []
            losses.sdt(out, y)
    finally:
        torch.Tensor.tolist = original  # type: ignore[method-assign]
    assert len(rec.syncs()) == 1


def test_labels_are_checked_once_where_the_data_is_loaded(tmp_path, capsys):
    """A dataset label outside [0, classes) stops the run before anything is written (exit 1, one line)."""
    bad = FakeDigits(True, 64)
    bad.labels = bad.labels.clone()
    bad.labels[7] = 10
    out = tmp_path / "run"
    rc = train.main(["--epochs", "1", "--no-progress", "--out", str(out)], datasets=(bad, FakeDigits(False, 20)))
    assert rc == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the train split of digits: labels lie in [0, 10]" in err[0]
    assert not out.exists()


@pytest.mark.parametrize("method", ["na", "stbp", "tssl"])
def test_forward_and_loss_compile_as_one_graph(method):
    """``torch.compile(fullgraph=True)`` of the training step's network + loss (``loop.forward_loss``) has no
    graph break, and its outputs, loss and gradients equal the eager ones."""
    loss = "spike_count" if method == "tssl" else "van_rossum"
    cfg = train.make_config("digits", method=method, T=4, loss=loss, progress=False)
    x, y = torch.rand(4, 6, 1, 8, 8), torch.arange(6) % 10
    results = []
    for compiled in (False, True):
        torch._dynamo.reset()
        torch.manual_seed(0)
        net = train.model_from_config(cfg, (1, 8, 8))

        def step(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            out = net(x)  # noqa: B023  (called inside this iteration)
            return out, train.loss_sum(cfg, out, y, check_labels=False)

        fn = torch.compile(step, fullgraph=True) if compiled else step
        out, value = fn(x, y)
        value.backward()
        results.append((out.detach(), value.detach(), [p.grad.clone() for p in net.parameters()]))
    (out0, l0, g0), (out1, l1, g1) = results
    torch.testing.assert_close(out1, out0)
    torch.testing.assert_close(l1, l0)
    for a, b in zip(g1, g0):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_compile_flag_trains_without_host_syncs(monkeypatch, tmp_path):
    """``--compile``: the CLI's compiled step also reads nothing back between log points, and trains as eager does
    (the same metrics, bit for bit; NA with its gradient rescaling, evaluation eager in between)."""
    torch._dynamo.reset()
    rec, log_points = _count_syncs(monkeypatch, tmp_path / "compiled", "cpu", ["--compile"])
    assert rec.syncs() == []
    assert log_points == [5, 10, 12, 5, 10, 12]
    _count_syncs(monkeypatch, tmp_path / "eager", "cpu", [])
    got, want = ((tmp_path / k / "run" / "metrics.json").read_text() for k in ("compiled", "eager"))
    for g, w in zip(json.loads(got)["epochs"], json.loads(want)["epochs"], strict=True):
        for key in ("train_loss", "test_loss", "train_accuracy", "test_accuracy"):
            assert g[key] == w[key], key


def test_compile_flag_is_checked():
    assert train.make_config("digits", compile="reduce-overhead").compile == "reduce-overhead"
    with pytest.raises(train.ConfigError, match="--compile: must be null"):
        train.make_config("digits", compile="fast")
    with pytest.raises(train.ConfigError, match="--log-every: must be an int >= 1"):
        train.make_config("digits", log_every=0)
