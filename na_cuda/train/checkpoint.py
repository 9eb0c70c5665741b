"""The training checkpoint file (``checkpoint.pt`` of ``python -m na_cuda.train``): written atomically, carrying a
SHA-256 of its content that is checked on load, and a schema check of every field.

Layout and payload fields (:data:`FIELDS`): docs/training.md, "The checkpoint file".
"""

from __future__ import annotations

import hashlib
import io
import math
import random
import re
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .._files import atomic_write
from .report import write_failed

FILENAME = "checkpoint.pt"
FORMAT = 2
_MAGIC = b"na_cuda-checkpoint"
_HEADER = re.compile(rb"^na_cuda-checkpoint (\d+) sha256=([0-9a-f]{64}) bytes=(\d+)\n")
_MAX_HEADER = 160
FIELDS = ("config", "model", "optimizer", "scheduler", "epoch", "step", "partial", "metrics", "rng", "world_size")
PARTIAL_KEYS = ("loss", "correct", "n", "seconds")
EPOCH_KEYS = (
    "epoch",
    "train_loss",
    "train_accuracy",
    "test_loss",
    "test_accuracy",
    "lr",
    "seconds",
    "samples_per_second",
)
# Rows written since the train/eval split of the epoch time; checked when present (older rows lack them).
OPTIONAL_EPOCH_KEYS = ("train_seconds", "eval_seconds")
RNG_KEYS = ("torch", "python", "numpy", "augment")


class CheckpointError(ValueError):
    """A checkpoint file that is damaged, not a na_cuda checkpoint, or holds an invalid field (one line)."""


def rng_state(aug_gen: torch.Generator, device: torch.device) -> dict[str, Any]:
    """This process's RNG states (torch, Python, NumPy, the augmentation generator, CUDA on a GPU): the ``rng``
    entry of one rank, so that a resumed run draws the same numbers as an uninterrupted one."""
    np_state = np.random.get_state(legacy=True)
    if not isinstance(np_state, tuple):  # the dict form: the global RandomState was given another bit generator
        raise TypeError(f"numpy's global RNG is not MT19937 ({np_state.get('bit_generator')}); cannot save its state")
    state = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *map(float, np_state[2:])],
        "augment": aug_gen.get_state(),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], aug_gen: torch.Generator, device: torch.device) -> None:
    """Restore what :func:`rng_state` saved (a checked ``rng`` entry)."""
    torch.set_rng_state(state["torch"])
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    np.random.set_state(_numpy_state(state["numpy"]))
    aug_gen.set_state(state["augment"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def check_rng_state(state: dict[str, Any], aug_gen: torch.Generator, path: Path, rank: int) -> None:
    """Raise CheckpointError unless every part of ``state`` (a checked ``rng`` entry) can be restored: each is
    applied to a scratch generator of its kind first (a malformed state used to fail with a traceback)."""
    parts: list[tuple[str, Callable[[], Any]]] = [
        ("torch", lambda: torch.Generator().set_state(state["torch"])),
        (
            "python",
            lambda: random.Random().setstate((state["python"][0], tuple(state["python"][1]), state["python"][2])),
        ),
        ("numpy", lambda: np.random.RandomState().set_state(_numpy_state(state["numpy"]))),
        ("augment", lambda: torch.Generator(device=aug_gen.device).set_state(state["augment"])),
    ]
    for key, restore in parts:
        try:
            restore()
        except Exception as exc:  # whatever the generator objects to: one line naming the part
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CheckpointError(f"{path}: field `rng[{rank}].{key}` is not a valid RNG state: {first}") from None


def _numpy_state(np_state: Any) -> tuple:
    name, keys, pos, has_gauss, cached = np_state
    return (name, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(cached))


def check_fit(ckpt: dict[str, Any], optimizer: Any, scheduler: Any, cfg: Any, path: Path) -> None:
    """The optimizer and scheduler states of a checked checkpoint against this run: ``optimizer`` and
    ``scheduler`` are the run's fresh ones (their parameters and hyperparameters come from the config ``cfg``).
    Raises CheckpointError naming the field. A re-signed file (a valid digest over edited values) used to be
    accepted (lr = 100, gamma = NaN) or to fail later with a traceback (a wrong-shape moment, a non-integer step).
    """
    epoch = ckpt["epoch"]
    for name, t in ckpt["model"].items():
        _require(
            not t.is_floating_point() or bool(t.isfinite().all()), path, f"model.{name}", "finite values", "NaN/inf"
        )
    lr = float(cfg.lr)
    for _ in range(epoch):  # ExponentialLR's own recursion: lr <- lr * gamma once per finished epoch
        lr *= cfg.lr_gamma
    opt, fresh = ckpt["optimizer"], optimizer.state_dict()
    groups = opt["param_groups"]
    _require(len(groups) == len(fresh["param_groups"]), path, "optimizer.param_groups", "one group", len(groups))
    params: dict[int, torch.Tensor] = {}
    for i, (g, f) in enumerate(zip(groups, fresh["param_groups"])):
        field = f"optimizer.param_groups[{i}]"
        got = g.get("lr")
        _require(
            _num(got) and math.isclose(got, lr, rel_tol=1e-9),
            path,
            f"{field}.lr",
            f"the config's lr after {epoch} epoch(s), {lr:.6g} (--lr {cfg.lr:g}, --set lr_gamma={cfg.lr_gamma:g})",
            got,
        )
        for key in ("initial_lr", "betas", "eps", "weight_decay", "params"):
            want = f.get(key)
            have = g.get(key)
            same = (
                list(have) == list(want)
                if isinstance(want, (list, tuple)) and isinstance(have, (list, tuple))
                else have == want
            )
            _require(same, path, f"{field}.{key}", f"{want!r} (this run's config and network)", have)
        params.update(zip(f["params"], optimizer.param_groups[i]["params"]))
    for index, st in opt["state"].items():
        field = f"optimizer.state[{index!r}]"
        _require(index in params, path, field, f"the state of a parameter index in [0, {len(params)})", index)
        p = params[index]
        _require(
            isinstance(st, dict) and sorted(st) == ["exp_avg", "exp_avg_sq", "step"],
            path,
            field,
            "an AdamW state {'step', 'exp_avg', 'exp_avg_sq'}",
            st,
        )
        step = st["step"]
        value = float(step) if isinstance(step, torch.Tensor) and step.numel() == 1 else step
        _require(
            _num(value) and value >= 1 and float(value).is_integer(), path, f"{field}.step", "an integer >= 1", step
        )
        for key in ("exp_avg", "exp_avg_sq"):
            t = st[key]
            ok = isinstance(t, torch.Tensor) and t.shape == p.shape and t.dtype == p.dtype and bool(t.isfinite().all())
            _require(
                ok and (key == "exp_avg" or bool((t >= 0).all())),
                path,
                f"{field}.{key}",
                f"a finite {p.dtype} tensor of the parameter's shape {tuple(p.shape)}"
                + (" (>= 0)" if key == "exp_avg_sq" else ""),
                (tuple(t.shape), t.dtype) if isinstance(t, torch.Tensor) else t,
            )
    sched, fresh_sched = ckpt["scheduler"], scheduler.state_dict()
    needed = ["_last_lr", "_step_count", "base_lrs", "gamma", "last_epoch"]
    _require(all(k in sched for k in needed), path, "scheduler", f"an ExponentialLR state with {needed}", sorted(sched))
    checks = {
        "gamma": (sched["gamma"] == cfg.lr_gamma, f"the config's lr_gamma {cfg.lr_gamma!r}"),
        "last_epoch": (sched["last_epoch"] == epoch and _int(sched["last_epoch"]), f"{epoch} (epochs completed)"),
        "base_lrs": (sched["base_lrs"] == fresh_sched["base_lrs"], f"{fresh_sched['base_lrs']!r}"),
        "_step_count": (_int(sched["_step_count"]) and sched["_step_count"] == epoch + 1, f"{epoch + 1}"),
    }
    for key, (ok, what) in checks.items():
        _require(bool(ok), path, f"scheduler.{key}", what, sched[key])
    last = sched.get("_last_lr")
    _require(
        isinstance(last, list)
        and len(last) == len(groups)
        and all(_num(v) and math.isclose(v, lr, rel_tol=1e-9) for v in last),
        path,
        "scheduler._last_lr",
        f"[{lr:.6g}] (the optimizer's lr)",
        last,
    )


def _parts(payload: dict[str, Any]) -> tuple[bytes, memoryview]:
    buf = io.BytesIO()
    torch.save(payload, buf)
    body = buf.getbuffer()
    header = b"%s %d sha256=%s bytes=%d\n" % (_MAGIC, FORMAT, hashlib.sha256(body).hexdigest().encode(), len(body))
    return header, body


def encode(payload: dict[str, Any]) -> bytes:
    """The file's bytes for ``payload``: the header with the digest, then ``torch.save(payload)``."""
    header, body = _parts(payload)
    return header + bytes(body)


def save(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` atomically (a reader sees the old or the new file); an OSError (a full disk)
    becomes ``report.OutputError`` naming the path and the size."""
    header, body = _parts(payload)

    def write(f: Any) -> None:  # header and body apart: no copy of a large payload
        f.write(header)
        f.write(body)

    try:
        atomic_write(path, write)
    except OSError as exc:
        raise write_failed(path, len(header) + len(body), exc) from None


def load(path: Path) -> dict[str, Any]:
    """Read, verify (digest, then every field) and return the payload of checkpoint ``path`` (tensors on the CPU);
    raises CheckpointError with one line saying what is wrong."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot be read: {exc}") from None
    m = _HEADER.match(data[:_MAX_HEADER])
    if m is None:
        if data.startswith(b"PK"):  # a bare torch.save zip: format 1, written before the digest existed
            raise CheckpointError(
                f"{path}: was written by an older na_cuda (checkpoint format 1, without a digest) "
                "and cannot be verified; start afresh (--overwrite) or use another --out"
            )
        raise CheckpointError(f"{path}: is not a na_cuda checkpoint (no '{_MAGIC.decode()}' header)")
    fmt, digest, size = int(m[1]), m[2].decode(), int(m[3])
    if fmt != FORMAT:
        raise CheckpointError(f"{path}: has checkpoint format {fmt}; this na_cuda reads format {FORMAT}")
    body = data[m.end() :]
    if len(body) != size:
        raise CheckpointError(
            f"{path}: is truncated or extended: {len(body)} bytes after the header, the header says {size}"
        )
    actual = hashlib.sha256(body).hexdigest()
    if actual != digest:
        raise CheckpointError(f"{path}: is damaged: its content has SHA-256 {actual}, the header says {digest}")
    try:
        payload = torch.load(io.BytesIO(body), map_location="cpu", weights_only=True)
    except Exception as exc:  # the digest matched, so the writer stored something torch cannot read back
        raise CheckpointError(f"{path}: cannot be unpickled: {type(exc).__name__}: {exc}") from None
    check(payload, path)
    return payload


def _fail(path: Path, field: str, what: str, value: Any) -> CheckpointError:
    text = repr(value)
    return CheckpointError(
        f"{path}: field `{field}` must be {what}; got {text[:80] + '...' if len(text) > 80 else text}"
    )


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _require(ok: bool, path: Path, field: str, what: str, value: Any) -> None:
    if not ok:
        raise _fail(path, field, what, value)


def check(ckpt: Any, path: Path) -> None:
    """The schema of every field (types, ranges and the consistency between them); raises CheckpointError. The
    config's values and the fit of the state dicts to the network are checked by the trainer."""
    _require(isinstance(ckpt, dict), path, "<top level>", "a dict", type(ckpt).__name__)
    missing = [k for k in FIELDS if k not in ckpt]
    extra = [k for k in ckpt if k not in FIELDS]
    if missing or extra:
        raise CheckpointError(f"{path}: fields missing: {missing or 'none'}; unknown fields: {extra or 'none'}")
    _require(
        isinstance(ckpt["config"], dict) and all(isinstance(k, str) for k in ckpt["config"]),
        path,
        "config",
        "a dict of config fields",
        ckpt["config"],
    )
    _require(
        isinstance(ckpt["model"], dict)
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in ckpt["model"].items()),
        path,
        "model",
        "a state dict (names -> tensors)",
        ckpt["model"],
    )
    opt = ckpt["optimizer"]
    _require(
        isinstance(opt, dict)
        and isinstance(opt.get("state"), dict)
        and isinstance(opt.get("param_groups"), list)
        and all(isinstance(g, dict) for g in opt["param_groups"]),
        path,
        "optimizer",
        "an optimizer state dict ({'state': dict, 'param_groups': [dict, ...]})",
        opt,
    )
    _require(isinstance(ckpt["scheduler"], dict), path, "scheduler", "a scheduler state dict", ckpt["scheduler"])
    epoch, step = ckpt["epoch"], ckpt["step"]
    _require(_int(epoch) and epoch >= 0, path, "epoch", "an int >= 0 (epochs completed)", epoch)
    _require(_int(step) and step >= 0, path, "step", "an int >= 0 (steps completed in the epoch)", step)
    partial = ckpt["partial"]
    _require(
        isinstance(partial, dict)
        and sorted(partial) == sorted(PARTIAL_KEYS)
        and all(_num(partial[k]) for k in PARTIAL_KEYS)
        and all(partial[k] >= 0 for k in PARTIAL_KEYS[1:]),
        path,
        "partial",
        f"a dict of finite numbers {PARTIAL_KEYS} (correct, n, seconds >= 0)",
        partial,
    )
    _require(
        (step == 0) == (partial["n"] == 0) and partial["correct"] <= partial["n"],
        path,
        "partial",
        f"sums of the {step} completed step(s) (n = 0 exactly when step = 0, correct <= n)",
        partial,
    )
    _check_metrics(ckpt["metrics"], epoch, path)
    world, rng = ckpt["world_size"], ckpt["rng"]
    _require(_int(world) and world >= 1, path, "world_size", "an int >= 1", world)
    _require(
        isinstance(rng, list) and len(rng) == world, path, "rng", f"a list of {world} RNG state(s), one per rank", rng
    )
    for i, state in enumerate(rng):
        _require(
            isinstance(state, dict)
            and all(k in state for k in RNG_KEYS)
            and all(isinstance(state[k], torch.Tensor) and state[k].dtype == torch.uint8 for k in ("torch", "augment"))
            and isinstance(state["python"], (list, tuple))
            and len(state["python"]) == 3
            and isinstance(state["numpy"], (list, tuple))
            and len(state["numpy"]) == 5,
            path,
            f"rng[{i}]",
            f"an RNG state dict with {RNG_KEYS}",
            state,
        )


def _check_metrics(metrics: Any, epoch: int, path: Path) -> None:
    _require(
        isinstance(metrics, dict) and isinstance(metrics.get("epochs"), list),
        path,
        "metrics",
        "a dict with an 'epochs' list",
        metrics,
    )
    rows = metrics["epochs"]
    _require(len(rows) == epoch, path, "metrics.epochs", f"one row per completed epoch ({epoch})", f"{len(rows)} rows")
    for i, row in enumerate(rows):
        _require(
            isinstance(row, dict)
            and all(k in row and _num(row[k]) for k in EPOCH_KEYS)
            and row["epoch"] == i + 1
            and all(_num(row[k]) and row[k] >= 0 for k in OPTIONAL_EPOCH_KEYS if k in row),
            path,
            f"metrics.epochs[{i}]",
            f"a row of finite numbers {EPOCH_KEYS} with epoch = {i + 1} (and optionally {OPTIONAL_EPOCH_KEYS} >= 0)",
            row,
        )
        for key, ok, what in (
            ("train_accuracy", 0 <= row["train_accuracy"] <= 1, "a number in [0, 1]"),
            ("test_accuracy", 0 <= row["test_accuracy"] <= 1, "a number in [0, 1]"),
            ("train_loss", row["train_loss"] >= 0, "a number >= 0 (every loss is)"),
            ("test_loss", row["test_loss"] >= 0, "a number >= 0 (every loss is)"),
            ("lr", row["lr"] > 0, "a number > 0"),
            ("seconds", row["seconds"] >= 0, "a number >= 0"),
            ("samples_per_second", row["samples_per_second"] >= 0, "a number >= 0"),
        ):
            _require(ok, path, f"metrics.epochs[{i}].{key}", what, row[key])
    best, best_epoch = metrics.get("best_test_accuracy"), metrics.get("best_epoch")
    if epoch == 0:
        _require(
            best is None and best_epoch is None, path, "metrics.best_epoch", "null before the first epoch", best_epoch
        )
    else:
        accuracies = [row["test_accuracy"] for row in rows]
        top = max(accuracies)
        _require(best == top, path, "metrics.best_test_accuracy", f"the rows' best test_accuracy {top!r}", best)
        first = accuracies.index(top) + 1
        _require(
            best_epoch == first, path, "metrics.best_epoch", f"{first} (the first epoch with the best)", best_epoch
        )
