"""Timing and machine-description helpers shared by the benchmarks (bench_lif.py, run.py).

Not a public module: the benchmark scripts put this folder on sys.path and import it as `_timing`.
"""
from __future__ import annotations

import os
import platform
import re
import shutil
import statistics
import subprocess
import time
from typing import Callable, Optional

import torch


def sync(device: str) -> None:
    """Wait for the device's queued work (CUDA); a no-op on the CPU."""
    if device == "cuda":
        torch.cuda.synchronize()


def time_calls(fn: Callable[[], object], device: str, min_time: float, max_reps: int, warmup: int = 2,
               slow_s: Optional[float] = None) -> list[float]:
    """Seconds of each timed call of `fn` after `warmup` warm-up calls (thread pool, allocator, caches).

    Repeats until `min_time` has passed or `max_reps` calls. `slow_s`: when the first warm-up call takes longer
    than this, one-time costs are negligible next to the call itself, so that call is kept as the only sample and
    no further calls are made (used for the slow pure-PyTorch reference, where a second call costs minutes).
    """
    for i in range(warmup):
        t0 = time.perf_counter()
        fn()
        sync(device)
        dt = time.perf_counter() - t0
        if i == 0 and slow_s is not None and dt > slow_s:
            return [dt]
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max_reps and (not times or time.perf_counter() - start < min_time):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return times


def timeit(fn: Callable[[], object], device: str, min_time: float, max_reps: int, warmup: int = 2,
           slow_s: Optional[float] = None) -> float:
    """Best (minimum) seconds per call of `time_calls`. The minimum, as Python's timeit recommends: on a shared
    2-core VM the spread comes from interference and from whether glibc served a large buffer from the heap or
    from fresh (page-faulting) mmap pages, not from the code under test."""
    return min(time_calls(fn, device, min_time, max_reps, warmup, slow_s))


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def copy_bandwidth(n: int, device: str, dtype: torch.dtype) -> float:
    """Bytes/s of a device-to-device copy of n elements (read + write counted)."""
    src = torch.rand(n, device=device).to(dtype)
    dst = torch.empty_like(src)
    t = timeit(lambda: dst.copy_(src), device, 0.3, 50)
    return 2 * n * src.element_size() / t


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
    info = {
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
    try:
        info["load_average"] = list(os.getloadavg())
    except OSError:
        info["load_average"] = None
    if device == "cuda":
        p = torch.cuda.get_device_properties(torch.cuda.current_device())
        info["gpu"] = {"name": p.name, "memory_GiB": round(p.total_memory / 2**30, 1),
                       "capability": f"{p.major}.{p.minor}", "multiprocessors": p.multi_processor_count}
    return info
