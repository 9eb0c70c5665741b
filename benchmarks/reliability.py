"""The benchmark suite's noise check: is this run's machine quiet enough for its numbers to mean something?

A run is *unreliable* when any of these holds (thresholds in THRESHOLDS, recorded in the JSON):

1. Load: the 1-minute load average from other processes, per core, at the start or at the end of the run is over
   `other_load_per_core` (0.5 on the CPU, 1.0 with a GPU, whose timings need only the host thread). At the end the
   run's own contribution is estimated and subtracted: its average number of busy threads (process CPU time / wall
   time) times the share of the last minute the run covered (1 - exp(-wall / 60 s), the load average's decay).
2. Copy bandwidth: the device-to-device copy (the suite's bandwidth yardstick) measured at the start and again at
   the end differs by more than `copy_drift` (the slower / the faster < 1 - copy_drift), or either is under
   `copy_vs_reference` of the unloaded reference figure for this machine, copy size and dtype
   (benchmarks/copy_reference.json, recorded with `run.py --save-copy-reference` on an idle machine, or given with
   `--copy-reference GBPS`). Without a reference the comparison is reported as not made (not a failure).
3. Spread: over the timed variants with at least `min_samples` repeats, the median relative IQR
   ((q3 - q1) / median) is over `median_rel_iqr`, or more than `noisy_fraction` of them are over `noisy_rel_iqr`.

An unreliable run still writes every table and plot, marked as such, and scores no goal (benchmarks/goals.py).
Test hook: NA_CUDA_BENCH_LOAD=<float> replaces os.getloadavg()'s 1-minute figure (both readings), so a test can
play a loaded machine without loading it; with the fake clock of _timing.py the reference is the fake copy rate.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from pathlib import Path
from typing import Any, Optional

from _timing import FAKE_COPY_BYTES_PER_S, fake_clock

LOAD_ENV = "NA_CUDA_BENCH_LOAD"
REFERENCE_FILE = Path(__file__).resolve().parent / "copy_reference.json"
THRESHOLDS: dict[str, Any] = {
    "other_load_per_core": {"cpu": 0.5, "cuda": 1.0},
    "copy_drift": 0.3,
    "copy_vs_reference": 0.6,
    "min_samples": 4,
    "median_rel_iqr": 0.10,
    "noisy_rel_iqr": 0.25,
    "noisy_fraction": 0.2,
}


def load_1min() -> Optional[float]:
    """The 1-minute load average (or the test hook's figure); None where the OS has none."""
    hook = os.environ.get(LOAD_ENV)
    if hook:
        try:
            return float(hook)
        except ValueError:
            raise SystemExit(f"{LOAD_ENV} must be a number (a load average to pretend); got {hook!r}") from None
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


class LoadProbe:
    """The load average at the start and at the end of a run, with the run's own share estimated at the end."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.cpu0 = _cpu_seconds()
        self.start = load_1min()
        try:
            self.start_all: Optional[list[float]] = list(os.getloadavg())
        except OSError:
            self.start_all = None

    def finish(self, cores: int) -> dict:
        """The load block of the JSON: readings, own-share estimate, other load per core at start and end."""
        wall = max(time.monotonic() - self.t0, 1e-6)
        busy = (_cpu_seconds() - self.cpu0) / wall
        own = busy * (1 - math.exp(-wall / 60.0))
        end = load_1min()
        other_end = None if end is None else max(0.0, end - own)
        return dict(
            cores=cores,
            start_1min=self.start,
            end_1min=end,
            start_all=self.start_all,
            own_estimate_end=own,
            other_per_core_start=None if self.start is None else self.start / cores,
            other_per_core_end=None if other_end is None else other_end / cores,
            injected=bool(os.environ.get(LOAD_ENV)),
        )


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def reference_key(device_name: str, dtype: str, elements: int) -> str:
    """The key of a copy-reference entry: the machine (as RESULTS.md names it), the dtype and the copy's size."""
    return f"{device_name} | {dtype} | {elements} elements"


def load_references(path: Path = REFERENCE_FILE) -> dict[str, dict]:
    """The recorded unloaded copy bandwidths, {reference_key: {"GBps", "how"}}; {} when the file is missing."""
    try:
        with open(path) as f:
            return json.load(f)["entries"]
    except FileNotFoundError:
        return {}


def find_reference(device_name: str, dtype: str, elements: int, given_GBps: Optional[float]) -> Optional[dict]:
    """The unloaded copy bandwidth to compare with: --copy-reference, the fake clock's rate, or the file's entry."""
    if given_GBps is not None:
        return dict(GBps=given_GBps, how="given on the command line (--copy-reference)")
    if fake_clock() is not None:
        return dict(GBps=FAKE_COPY_BYTES_PER_S / 1e9, how="the fake clock's copy rate (test hook)")
    return load_references().get(reference_key(device_name, dtype, elements))


def save_reference(device_name: str, dtype: str, elements: int, GBps: float, how: str) -> str:
    """Records an unloaded copy bandwidth in benchmarks/copy_reference.json; returns its key."""
    refs = load_references()
    key = reference_key(device_name, dtype, elements)
    refs[key] = dict(GBps=GBps, how=how)
    doc = dict(
        note="Unloaded device-copy bandwidth per machine, dtype and copy size: the noise check of benchmarks/run.py "
        "compares each run's copy bandwidth with it (benchmarks/reliability.py). Record with "
        "`python benchmarks/run.py [--quick] --save-copy-reference` on an otherwise idle machine.",
        entries=dict(sorted(refs.items())),
    )
    with open(REFERENCE_FILE, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    return key


def _copy_check(copy: dict, reasons: list[str]) -> dict:
    """Copy bandwidth at start vs end vs the reference (appends to `reasons`)."""
    out: dict[str, Any] = {}
    for dname, c in copy.items():
        start, end, ref = c["start_GBps"], c.get("end_GBps"), c.get("reference")
        entry: dict[str, Any] = dict(start_GBps=start, end_GBps=end, reference=ref)
        if end is not None:
            drift = 1 - min(start, end) / max(start, end)
            entry["drift"] = drift
            if drift > THRESHOLDS["copy_drift"]:
                reasons.append(
                    f"copy bandwidth ({dname}) moved by {100 * drift:.0f} % during the run ({start:.1f} GB/s at the "
                    f"start, {end:.1f} GB/s at the end; limit {100 * THRESHOLDS['copy_drift']:.0f} %)"
                )
        if ref is None:
            entry["vs_reference"] = None
            entry["note"] = "no unloaded reference for this machine and copy size (see --save-copy-reference)"
        else:
            worst = min(x for x in (start, end) if x is not None)
            entry["vs_reference"] = worst / ref["GBps"]
            if entry["vs_reference"] < THRESHOLDS["copy_vs_reference"]:
                reasons.append(
                    f"copy bandwidth ({dname}) {worst:.1f} GB/s is {100 * entry['vs_reference']:.0f} % of the unloaded "
                    f"reference {ref['GBps']:.1f} GB/s (limit {100 * THRESHOLDS['copy_vs_reference']:.0f} %)"
                )
        out[dname] = entry
    return out


def _spread_check(timed: list[dict], reasons: list[str]) -> dict:
    """Relative IQR across repeats over the timed variants (appends to `reasons`)."""
    used = [t for t in timed if t["n"] >= THRESHOLDS["min_samples"]]
    if not used:
        return dict(variants=0, note=f"no variant with >= {THRESHOLDS['min_samples']} repeats")
    iqrs = [t["rel_iqr"] for t in used]
    med = statistics.median(iqrs)
    noisy = sorted((t for t in used if t["rel_iqr"] > THRESHOLDS["noisy_rel_iqr"]), key=lambda t: -t["rel_iqr"])
    frac = len(noisy) / len(used)
    if med > THRESHOLDS["median_rel_iqr"]:
        reasons.append(
            f"timings spread: median relative IQR across repeats {100 * med:.0f} % over {len(used)} variants "
            f"(limit {100 * THRESHOLDS['median_rel_iqr']:.0f} %)"
        )
    if frac > THRESHOLDS["noisy_fraction"]:
        reasons.append(
            f"timings spread: {len(noisy)} of {len(used)} variants have a relative IQR over "
            f"{100 * THRESHOLDS['noisy_rel_iqr']:.0f} % (limit {100 * THRESHOLDS['noisy_fraction']:.0f} % of them)"
        )
    return dict(
        variants=len(used),
        median_rel_iqr=med,
        max_rel_iqr=max(iqrs),
        noisy_fraction=frac,
        noisiest=[dict(variant=t["variant"], rel_iqr=t["rel_iqr"]) for t in noisy[:5]],
    )


def assess(device: str, load: dict, copy: dict, timed: list[dict]) -> dict:
    """The JSON's `reliability` block: {"reliable", "reasons", "checks", "thresholds"}.

    `load`: LoadProbe.finish(); `copy`: {dtype: {"start_GBps", "end_GBps", "reference"}}; `timed`: every section's
    spread entries ({"variant", "n", "rel_iqr"})."""
    reasons: list[str] = []
    limit = THRESHOLDS["other_load_per_core"][device]
    for when in ("start", "end"):
        per_core = load[f"other_per_core_{when}"]
        if per_core is not None and per_core > limit:
            what = "the run's own share subtracted" if when == "end" else "before the run"
            reasons.append(
                f"machine loaded at the {when}: load average {load[f'{when}_1min']:.2f} on {load['cores']} cores, "
                f"{per_core:.2f} per core from other processes ({what}; limit {limit})"
            )
    checks = dict(load=load, copy=_copy_check(copy, reasons), spread=_spread_check(timed, reasons))
    return dict(reliable=not reasons, reasons=reasons, checks=checks, thresholds=THRESHOLDS)
