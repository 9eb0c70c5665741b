"""Timing, statistics and machine-description helpers shared by the benchmarks (run.py and its sections,
bench_lif.py).

Not a public module: the benchmark scripts put this folder on sys.path and import it as `_timing`.

Every comparison in the suite is measured *interleaved* (`interleaved`): the compared variants take turns within
each repeat, so that a burst of load from another process slows all of them in the same repeat instead of one of
them for a whole measurement. Each variant then has one sample per repeat (`summarise` gives min / median /
quartiles) and a ratio of two variants is computed per repeat from the pair of samples of that repeat
(`ratio_stats`), then summarised the same way.

Test hook: with NA_CUDA_BENCH_FAKE_TIMER=clean or =noisy the functions under test are not called and every
measurement returns a synthetic duration (`FakeClock`): "clean" is steady (1 % jitter), "noisy" varies by a
log-normal factor (sigma 0.6) per call, which the noise check must flag. It lets the tests drive the reliability
logic in seconds without loading the machine.
"""

from __future__ import annotations

import math
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import time
import zlib
from typing import Any, Callable, Optional, Sequence

import torch

FAKE_TIMER_ENV = "NA_CUDA_BENCH_FAKE_TIMER"
FAKE_COPY_BYTES_PER_S = 20e9  # the fake clock's (clean) copy bandwidth; reliability.py uses it as the reference


def sync(device: str) -> None:
    """Wait for the device's queued work (CUDA); a no-op on the CPU."""
    if device == "cuda":
        torch.cuda.synchronize()


class FakeClock:
    """Synthetic durations for the tests (see the module docstring). A key's base duration is fixed by a hash of
    the key, so ratios between variants are stable; copies (`copy_bytes`) run at FAKE_COPY_BYTES_PER_S."""

    def __init__(self, mode: str) -> None:
        if mode not in ("clean", "noisy"):
            raise ValueError(f"{FAKE_TIMER_ENV} must be 'clean' or 'noisy'; got {mode!r}")
        self.mode = mode
        self.calls: dict[str, int] = {}

    def seconds(self, key: str, copy_bytes: Optional[int] = None) -> float:
        i = self.calls.get(key, 0)
        self.calls[key] = i + 1
        base = (
            copy_bytes / FAKE_COPY_BYTES_PER_S if copy_bytes else 1e-3 * (1 + (zlib.crc32(key.encode()) % 1000) / 250)
        )
        if self.mode == "clean":
            return base * (1 + 0.01 * ((i % 3) - 1))
        return base * math.exp(0.6 * random.Random(zlib.crc32(key.encode()) + 7919 * i).gauss(0, 1))


def fake_clock() -> Optional[FakeClock]:
    """The test hook's clock when NA_CUDA_BENCH_FAKE_TIMER is set (one per process, so call counts persist)."""
    mode = os.environ.get(FAKE_TIMER_ENV)
    if not mode:
        return None
    global _FAKE
    if _FAKE is None or _FAKE.mode != mode:
        _FAKE = FakeClock(mode)
    return _FAKE


_FAKE: Optional[FakeClock] = None


def measure(fn: Callable[[], object], device: str, key: str, calls: int = 1, copy_bytes: Optional[int] = None) -> float:
    """Mean seconds per call of `calls` back-to-back calls of `fn` (device work included: synchronised before and
    after). `key` names the variant for the fake clock of the tests."""
    fake = fake_clock()
    if fake is not None:
        return fake.seconds(key, copy_bytes)
    sync(device)
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    sync(device)
    return (time.perf_counter() - t0) / calls


def interleaved(
    fns: dict[str, Callable[[], object]],
    device: str,
    repeats: int,
    slot_s: float,
    warmup: int = 2,
    slow_s: Optional[float] = None,
    slow_repeats: int = 3,
    first_s: Optional[dict[str, float]] = None,
) -> dict[str, list[float]]:
    """Seconds per call of every variant in `fns`, one sample per repeat, the variants alternating within each
    repeat (variant order rotated by one each repeat, so none is always first after a switch).

    After `warmup` calls each (thread pool, allocator, caches; `first_s` gives the time of a first call already
    made by the caller, which then counts as one of them), a variant whose calls are shorter than `slot_s` is
    called back to back until its slot lasts about `slot_s` (the sample is the mean per call: timer resolution and
    per-call jitter average out). A variant whose first call took longer than `slow_s` (the slow pure-PyTorch
    reference: a call can cost many seconds) skips the other warm-ups and takes part in the first `slow_repeats`
    repeats only; its samples still pair with the other variants' samples of the same repeats.
    """
    names = list(fns)
    inner: dict[str, int] = {}
    limit: dict[str, int] = {}
    for name in names:
        given = first_s is not None and name in first_s
        t = first_s[name] if first_s is not None and given else measure(fns[name], device, name)
        slow = slow_s is not None and t > slow_s
        for _ in range(0 if slow else max(0, warmup - 1)):
            t = min(t, measure(fns[name], device, name))
        inner[name] = max(1, min(10_000, round(slot_s / max(t, 1e-9))))
        limit[name] = min(repeats, slow_repeats) if slow else repeats
    samples: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        order = names[r % len(names) :] + names[: r % len(names)] if names else []
        for name in order:
            if r < limit[name]:
                samples[name].append(measure(fns[name], device, name, inner[name]))
    return samples


def summarise(xs: Sequence[float]) -> dict[str, float]:
    """min, quartiles, median, max, count and relative IQR ((q3 - q1) / median) of repeated samples."""
    s = sorted(xs)
    if not s:
        raise ValueError("summarise: no samples")
    if len(s) >= 2:
        q1, _, q3 = statistics.quantiles(s, n=4, method="inclusive")
    else:
        q1 = q3 = s[0]
    med = statistics.median(s)
    return dict(min=s[0], q1=q1, median=med, q3=q3, max=s[-1], n=len(s), rel_iqr=(q3 - q1) / med if med else 0.0)


def ratio_stats(num: Sequence[float], den: Sequence[float]) -> Optional[dict[str, float]]:
    """Summary of num[i] / den[i] over the repeats both have (interleaved pairs; see `interleaved`)."""
    pairs = [a / b for a, b in zip(num, den) if b > 0]
    return summarise(pairs) if pairs else None


def copy_bandwidth(n: int, device: str, dtype: torch.dtype, repeats: int = 9) -> dict[str, float]:
    """Bytes/s of a device-to-device copy of n elements (read + write counted), summarised over `repeats`
    samples of about 20 ms each (`summarise` of bytes/s, so "min" is the slowest sample)."""
    src = torch.rand(n, device=device).to(dtype)
    dst = torch.empty_like(src)
    nbytes = 2 * n * src.element_size()
    key = f"copy {dtype} {n}"
    t = min(measure(lambda: dst.copy_(src), device, key, copy_bytes=nbytes) for _ in range(2))
    calls = max(1, min(1000, round(0.02 / max(t, 1e-9))))
    return summarise([nbytes / measure(lambda: dst.copy_(src), device, key, calls, nbytes) for _ in range(repeats)])


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux, else platform.processor())."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _first_line(cmd: list[str]) -> Optional[str]:
    if shutil.which(cmd[0]) is None:
        return None
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    lines = [ln.strip() for ln in out.splitlines() if ln.strip()]
    return lines[0] if lines else None


def compilers() -> dict[str, Optional[str]]:
    """Compiler versions: the one torch was built with (from torch.__config__.show()), the C++ compiler and nvcc
    on PATH (what `pip install --no-build-isolation .` would use)."""
    built = None
    m = re.search(r"(GCC|Clang|MSVC)[^\n]*?(\d+(\.\d+)+)", torch.__config__.show())
    if m:
        built = f"{m.group(1)} {m.group(2)}"
    nvcc = None
    if shutil.which("nvcc"):
        try:
            out = subprocess.run(["nvcc", "--version"], capture_output=True, text=True, timeout=20).stdout
            rel = re.search(r"release [^\n]*", out)
            nvcc = rel.group(0) if rel else out.strip().splitlines()[-1]
        except (OSError, subprocess.SubprocessError):
            pass
    cxx = os.environ.get("CXX", "c++")
    return {"torch_built_with": built, "cxx": _first_line([cxx, "--version"]), "nvcc": nvcc}


def machine_info(device: str) -> dict:
    """What ran the benchmark: host, OS, CPU model and cores, GPU, torch, compilers."""
    info: dict[str, Any] = {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "compilers": compilers(),
        "gpu": None,
    }
    if device == "cuda":
        p = torch.cuda.get_device_properties(torch.cuda.current_device())
        info["gpu"] = {
            "name": p.name,
            "memory_GiB": round(p.total_memory / 2**30, 1),
            "capability": f"{p.major}.{p.minor}",
            "multiprocessors": p.multi_processor_count,
        }
    return info
