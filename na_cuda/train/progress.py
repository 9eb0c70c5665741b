"""Progress of training and evaluation: a tqdm bar, or without tqdm a plain line every :data:`PLAIN_EVERY_S`
seconds (one line at the first use says how to get the bar); and the ETA of the whole run. See docs/training.md."""

from __future__ import annotations

import sys
import time
from typing import Any, Optional

try:
    from tqdm import tqdm
except ImportError:  # optional: the base install degrades to plain lines
    tqdm = None

PLAIN_EVERY_S = 10.0
_told: list[bool] = []  # whether the missing-tqdm line was printed (once per process)


def duration(seconds: float) -> str:
    """``seconds`` for people: "42 s", "3 min 05 s", "2 h 07 min"."""
    s = int(round(max(seconds, 0.0)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


class Progress:
    """Progress over ``total`` steps (``initial`` already done) labelled ``desc``, on stderr; nothing when not
    ``enabled``. ``update(n, **postfix)`` after each step, ``close()`` at the end (or use it as a context)."""

    def __init__(self, total: int, desc: str, *, initial: int = 0, enabled: bool = True, unit: str = "step") -> None:
        self.total, self.desc, self.done, self.unit = total, desc, initial, unit
        self.enabled = enabled
        self._bar = None
        if enabled and tqdm is not None:
            self._bar = tqdm(
                total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True, leave=False, file=sys.stderr
            )
        elif enabled and not _told:
            _told.append(True)
            print(
                "na_cuda.train: tqdm is not installed: progress as a plain line every "
                f"{PLAIN_EVERY_S:g} s (pip install tqdm for a progress bar)",
                file=sys.stderr,
                flush=True,
            )
        self._start = time.monotonic()
        self._initial = initial
        self._last = self._start

    def update(self, n: int = 1, **postfix: Any) -> None:
        self.done += n
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(n)
            if postfix:
                self._bar.set_postfix(**postfix)
            return
        now = time.monotonic()
        if now - self._last >= PLAIN_EVERY_S:
            self._last = now
            print(self.line(now, postfix), file=sys.stderr, flush=True)

    def line(self, now: float, postfix: dict[str, Any]) -> str:
        """The plain progress line: done/total, elapsed, ETA (from this session's rate), postfix values."""
        elapsed = now - self._start
        rate = (self.done - self._initial) / elapsed if elapsed > 0 else 0.0
        eta = duration((self.total - self.done) / rate) if rate > 0 else "?"
        extra = "".join(f", {k} {v}" for k, v in postfix.items())
        pct = 100 * self.done / self.total if self.total else 100.0
        return (
            f"{self.desc}: {self.done}/{self.total} {self.unit}s ({pct:.0f} %), {duration(elapsed)}, ETA {eta}{extra}"
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class RunClock:
    """The ETA of the whole run: the mean duration of the epochs completed in this process times those left."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs
        self._durations: list[float] = []

    def epoch_done(self, seconds: float) -> None:
        self._durations.append(seconds)

    def eta(self, completed: int) -> Optional[float]:
        """Seconds left after ``completed`` epochs; None before the first epoch of this process."""
        if not self._durations:
            return None
        return (self.epochs - completed) * sum(self._durations) / len(self._durations)
