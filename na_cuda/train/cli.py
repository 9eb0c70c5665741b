"""The command line of ``python -m na_cuda.train``: the parser, its argument types (public: the experiments'
CLIs use them too) and :func:`main`. See docs/training.md."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from typing import Any, Callable, Optional, Sequence

from ..rules import METHODS
from .config import COMPILE_MODES, FIDELITY, PRESETS, ConfigError, TrainConfig, lif_keywords, make_config, resume_config
from .distributed import DDP_TIMEOUT_S
from .loop import LossHook
from .recipe import DataError
from .session import run

__all__ = ["main", "build_parser", "positive_int", "nonneg_int", "positive_float", "device_arg", "int_at_least"]


def _parse_value(text: str) -> Any:
    """--set VALUE: JSON (numbers, true/false/null, [lists]) or a plain string."""
    lowered = {"true": True, "false": False, "none": None, "null": None}
    if text.lower() in lowered:
        return lowered[text.lower()]
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an int >= `minimum`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an int >= {minimum}; got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an int >= {minimum}; got {value}")
        return value

    return parse


positive_int = int_at_least(1)
nonneg_int = int_at_least(0)


def positive_float(text: str) -> float:
    """An argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0; got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a finite number > 0; got {text!r}")
    return value


def device_arg(text: str) -> str:
    """An argparse type: cpu, cuda or cuda:N (whether a GPU exists is checked when the run starts)."""
    if text.split(":")[0] not in ("cpu", "cuda") or (":" in text and not text.split(":", 1)[1].isdigit()):
        raise argparse.ArgumentTypeError(f"expected cpu, cuda or cuda:N; got {text!r}")
    return text


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m na_cuda.train``."""
    p = argparse.ArgumentParser(
        prog="python -m na_cuda.train",
        description="Train a spiking network with NA (or STBP / TSSL-BP). Without arguments: the digits demo.",
        epilog="Presets: "
        + "; ".join(
            f"{k}: {v['arch']}, {v['epochs']} epochs, batch {v['batch_size']}, lr {v['lr']:g}"
            for k, v in PRESETS.items()
        )
        + ". Any config field: --set FIELD=VALUE (e.g. --set dropout=0.2 --set padding=[1,0]).",
    )
    p.add_argument("--preset", choices=list(PRESETS), default=None, help="network and recipe (default: digits)")
    p.add_argument("--method", choices=list(METHODS), default=None, help="training rule (default: na)")
    p.add_argument(
        "--fidelity",
        choices=list(FIDELITY),
        default=None,
        help="paper (default: the paper's text) or released (the authors' code: clip 5, u > threshold, "
        "rounded rescale means, double-filtered target)",
    )
    p.add_argument("--epochs", type=positive_int, default=None)
    p.add_argument("--batch-size", type=positive_int, default=None, help="global batch size (split over ranks)")
    p.add_argument("--lr", type=positive_float, default=None)
    p.add_argument("--T", type=positive_int, default=None, help="time steps")
    p.add_argument("--device", type=device_arg, default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument("--data-dir", default=None, help="dataset directory (default: $NA_CUDA_DATA or ~/.cache/na_cuda)")
    p.add_argument("--out", default=None, help="output directory (default: runs/<preset>-<method>)")
    p.add_argument(
        "--model-nir",
        default=None,
        metavar="PATH",
        help="train the network of a NIR graph (.nir file, docs/nir.md; needs na_cuda[nir]) instead of the preset's "
        "arch; the trained graph is written to OUT/model.nir",
    )
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--overwrite", action="store_true", help="start afresh even if OUT holds a checkpoint")
    p.add_argument(
        "--limit-train",
        type=positive_int,
        default=None,
        metavar="K",
        help="train on a fixed random subset of K samples",
    )
    p.add_argument(
        "--na-window",
        type=positive_int,
        default=None,
        metavar="K",
        help="method na: re-simulate each neighbour for at most K steps (an approximation for long windows, "
        "docs/algorithm.md §3.8; default: exact NA)",
    )
    p.add_argument("--no-augment", action="store_true", help="no data augmentation")
    p.add_argument("--seed", type=nonneg_int, default=None)
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress display (a tqdm bar, or plain lines every 10 s without tqdm)",
    )
    p.add_argument(
        "--log-every",
        type=positive_int,
        default=None,
        metavar="STEPS",
        help="read the training statistics (progress, non-finite check, a distributed stop request) every STEPS "
        "steps; between reads a step never waits on the host (default 50)",
    )
    p.add_argument(
        "--compile",
        nargs="?",
        const="default",
        choices=list(COMPILE_MODES),
        default=None,
        metavar="MODE",
        help="torch.compile the network and the loss (MODE: default, reduce-overhead (CUDA graphs on a GPU), "
        "max-autotune, max-autotune-no-cudagraphs; default when given without MODE)",
    )
    p.add_argument(
        "--ddp-timeout",
        type=positive_float,
        default=DDP_TIMEOUT_S,
        metavar="SECONDS",
        help="distributed runs: how long a rank waits for a stopped or dead one before failing "
        f"(default {DDP_TIMEOUT_S:g})",
    )
    p.add_argument(
        "--set", action="append", default=[], metavar="FIELD=VALUE", help="override any config field (repeatable)"
    )
    return p


def main(
    argv: Optional[Sequence[str]] = None,
    *,
    datasets: Optional[tuple[Any, Any]] = None,
    loss_hook: Optional[LossHook] = None,
) -> int:
    """CLI entry point; returns the exit status: 2 for a bad argument (one line on stderr, nothing created on
    disk), 1 for missing data, a non-finite loss or a failed write (a full disk), 128 + signum when stopped.
    ``datasets`` and ``loss_hook``: see ``run`` (for tests)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.out is not None and not args.out.strip():  # "" would put every output into the current folder
        parser.error(f"argument --out: expected a folder path; got {args.out!r} (use --out . for the current folder)")
    explicit: dict[str, Any] = {}
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    for item in args.set:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            parser.error(f"argument --set: expected FIELD=VALUE; got {item!r}")
        if key not in names and key not in lif_keywords():
            known = ", ".join(sorted(names | set(lif_keywords())))
            parser.error(f"argument --set: unknown field {key!r}; fields: {known}")
        explicit[key] = _parse_value(text.strip())
    for name, value in (
        ("method", args.method),
        ("fidelity", args.fidelity),
        ("epochs", args.epochs),
        ("batch_size", args.batch_size),
        ("lr", args.lr),
        ("T", args.T),
        ("device", args.device),
        ("data_dir", args.data_dir),
        ("model_nir", args.model_nir),
        ("out", args.out),
        ("limit_train", args.limit_train),
        ("na_window", args.na_window),
        ("seed", args.seed),
        ("log_every", args.log_every),
        ("compile", args.compile),
    ):
        if value is not None:
            explicit[name] = value
    if args.no_augment:
        explicit["augment"] = False
    if args.no_progress:
        explicit["progress"] = False
    preset = args.preset or explicit.pop("preset", None) or "digits"
    try:
        if args.resume:
            if args.overwrite:
                raise ConfigError("--resume and --overwrite exclude each other")
            method = explicit.get("method", PRESETS[preset].get("method", "na"))
            out = explicit.get("out") or f"runs/{preset}-{method}"
            if args.preset is not None:
                explicit["preset"] = preset
            cfg = resume_config(out, explicit)
        else:
            cfg = make_config(preset, **explicit)
        return run(
            cfg,
            resume=args.resume,
            overwrite=args.overwrite,
            datasets=datasets,
            loss_hook=loss_hook,
            ddp_timeout=args.ddp_timeout,
        )
    except (ConfigError, DataError) as exc:  # one line, no traceback: a bad argument (2) or missing data (1)
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1
