"""The run's reports in ``--out``: ``config.json`` / ``metrics.json`` (atomic), ``curves.png`` (optional
matplotlib: without it one line says how to get it, and the metrics are already written), and the lines printed
per epoch and at the end. See docs/training.md."""

from __future__ import annotations

import io
import json
import shutil
import sys
from pathlib import Path
from typing import Any, Optional

from .._files import atomic_write
from .progress import duration

_told: list[bool] = []  # whether the missing-matplotlib line was printed (once per process)


class OutputError(RuntimeError):
    """A file of the run could not be written (a full disk, a quota, a folder turned read-only): one line naming the
    file and the space it needs. The file on disk is the previous complete one (every write is atomic)."""


def write_bytes(path: Path, data: bytes) -> None:
    """``data`` written atomically to ``path``; an OSError becomes :class:`OutputError` naming the path, the size
    and the free space."""
    try:
        atomic_write(path, lambda f: f.write(data))
    except OSError as exc:
        raise write_failed(path, len(data), exc) from None


def write_failed(path: Path, nbytes: int, exc: OSError) -> OutputError:
    """The :class:`OutputError` of a failed write of ``nbytes`` to ``path``: the path, the size, the free space."""
    try:
        free = f", {shutil.disk_usage(path.parent).free / 2**20:.1f} MiB free there"
    except OSError:
        free = ""
    return OutputError(f"cannot write {path} (it needs {nbytes / 2**20:.2f} MiB{free}): {exc.strerror or exc}")


def write_json(path: Path, obj: Any) -> None:
    """``obj`` as indented JSON, written atomically (:func:`write_bytes`)."""
    write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode())


def plot_curves(path: Path, epochs: list[dict[str, Any]], title: str) -> bool:
    """Loss and accuracy per epoch into ``path`` (Agg canvas, no pyplot state); False (after one line saying how
    to get it) when matplotlib is not installed."""
    try:  # imported here: matplotlib is optional and slow to import, and only the plot needs it
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        if not _told:
            _told.append(True)
            print(
                f"na_cuda.train: matplotlib is not installed: no {path.name} (metrics.json has the numbers; pip "
                "install matplotlib for the plot)",
                file=sys.stderr,
                flush=True,
            )
        return False
    x = [e["epoch"] for e in epochs]
    fig = Figure(figsize=(10, 4), layout="constrained")
    FigureCanvasAgg(fig)
    ax_loss, ax_acc = fig.subplots(1, 2)
    ax_loss.plot(x, [e["train_loss"] for e in epochs], "o-", label="train")
    ax_loss.plot(x, [e["test_loss"] for e in epochs], "s-", label="test")
    ax_loss.set(xlabel="epoch", ylabel="loss per sample", title="loss")
    ax_acc.plot(x, [100 * e["train_accuracy"] for e in epochs], "o-", label="train")
    ax_acc.plot(x, [100 * e["test_accuracy"] for e in epochs], "s-", label="test")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    buf = io.BytesIO()  # rendered first, so that a failed write can say how much space it needs
    fig.savefig(buf, format="png", dpi=100)
    write_bytes(path, buf.getvalue())
    return True


def epoch_line(row: dict[str, Any], epochs: int, eval_samples: int, eta_s: Optional[float]) -> str:
    """The line printed after an epoch: losses and accuracies, lr, training time with the training throughput
    (training samples per second of training time), evaluation time with its throughput, the run's ETA."""
    train_s, eval_s = row["train_seconds"], row["eval_seconds"]
    eta = "" if eta_s is None or row["epoch"] >= epochs else f" | run ETA {duration(eta_s)}"
    return (
        f"epoch {row['epoch']}/{epochs}: train loss {row['train_loss']:.4f} acc {100 * row['train_accuracy']:.2f}% "
        f"| test loss {row['test_loss']:.4f} acc {100 * row['test_accuracy']:.2f}% | lr {row['lr']:.3g} | train "
        f"{train_s:.1f} s ({row['samples_per_second']:.0f} samples/s), eval {eval_s:.1f} s "
        f"({eval_samples / max(eval_s, 1e-9):.0f} samples/s){eta}"
    )


def final_line(metrics: dict[str, Any], out: Path) -> str:
    m = metrics
    last = m["epochs"][-1]["test_accuracy"] if m["epochs"] else float("nan")
    best = m["best_test_accuracy"] if m["best_test_accuracy"] is not None else float("nan")
    return (
        f"test accuracy: {100 * last:.2f}% (best {100 * best:.2f}% at epoch {m['best_epoch']}); metrics in "
        f"{out / 'metrics.json'}"
    )
