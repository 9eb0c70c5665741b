"""Section 4 of the suite: bytes saved for backward by one LIF layer, and the memory helpers the end-to-end
section shares (saved-bytes counter, peak memory of one step).

Bytes saved for backward are measured with torch.autograd.graph.saved_tensors_hooks, per method and backend, as
a number of input-sized tensors (bytes / (N * T * element size)).
"""

from __future__ import annotations

import ctypes
import functools
import gc
import re
from collections import defaultdict
from typing import Any, Callable, Optional

import torch

import na_cuda

from sections.common import BACKENDS, METHODS, dtype_of
from sections.peer import SpikingJellyLIF


class SavedBytes:
    """Counts the bytes autograd saves for backward (saved_tensors_hooks), one count per storage; tensors whose
    storage belongs to `exclude` (the parameters) are left out. `layer` tags what is saved while it is set."""

    def __init__(self, exclude: tuple = ()) -> None:
        self.exclude = {p.untyped_storage().data_ptr() for p in exclude}
        self.seen: set = set()
        self.total = 0
        self.by_layer: dict[str, int] = defaultdict(int)
        self.layer = "-"
        self._ctx = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        try:
            st = t.untyped_storage()
            key, nbytes = (st.data_ptr(), str(t.device)), st.nbytes()
        except Exception:  # noqa: BLE001  (tensors without storage)
            key, nbytes = (id(t), str(t.device)), t.numel() * t.element_size()
        if key[0] not in self.exclude and key not in self.seen:
            self.seen.add(key)
            self.total += nbytes
            self.by_layer[self.layer] += nbytes
        return t

    def __enter__(self) -> SavedBytes:
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._ctx.__exit__(*exc)


def _malloc_trim() -> None:
    """Return freed heap pages to the OS, so that the peak-RSS growth of the next step is its own."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _proc_kb(field: str) -> Optional[int]:
    try:
        with open("/proc/self/status") as f:
            m = re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.M)
        return int(m.group(1)) if m else None
    except OSError:
        return None


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_memory(step: Callable[[], None], device: str) -> dict:
    """Peak memory of one call of `step` beyond what was in use before it."""
    gc.collect()
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        step()
        torch.cuda.synchronize()
        return dict(
            kind="cuda max_memory_allocated - memory_allocated before the step",
            peak_bytes=torch.cuda.max_memory_allocated() - base,
            peak_allocated_bytes=torch.cuda.max_memory_allocated(),
        )
    _malloc_trim()
    if not _reset_peak_rss():
        step()
        return dict(kind="unavailable (no /proc/self/clear_refs)", peak_bytes=None)
    rss0 = _proc_kb("VmRSS")
    step()
    hwm = _proc_kb("VmHWM")
    if rss0 is None or hwm is None:
        return dict(kind="unavailable", peak_bytes=None)
    return dict(
        kind="peak RSS (VmHWM) growth over the step, after malloc_trim",
        peak_bytes=(hwm - rss0) * 1024,
        rss_before_bytes=rss0 * 1024,
    )


def bench_memory(plan: dict, device: str, with_peer: bool) -> dict:
    """The section's result: bytes saved for backward per (method, backend, dtype, T); spikingjelly's node too
    when `with_peer` and importable. Measured, not timed: no spread (`timed` is empty)."""
    rows = []
    N = plan["mem_N"]
    for dname in plan["dtypes"]:
        dtype = dtype_of(dname)
        for T in plan["mem_Ts"]:
            c0 = (torch.rand(T, N) * 0.9).to(device=device, dtype=dtype)
            cands: list[tuple[str, str, Callable[[torch.Tensor], torch.Tensor]]] = [
                (m, b, functools.partial(na_cuda.lif, method=m, backend=b)) for m in METHODS for b in BACKENDS
            ]
            if with_peer:
                try:
                    sj = SpikingJellyLIF(device, 5.0, detach_reset=True)
                    cands.append(("stbp (spike out)", f"spikingjelly {sj.backend}", sj))
                except Exception:  # noqa: BLE001
                    pass
            for method, backend, f in cands:
                x = c0.detach().requires_grad_(True)
                with SavedBytes() as counter:
                    y = f(x)
                y.sum().backward()
                unit = N * T * c0.element_size()
                rows.append(
                    dict(
                        method=method,
                        backend=backend,
                        dtype=dname,
                        T=T,
                        N=N,
                        saved_bytes=counter.total,
                        input_sized_tensors=counter.total / unit,
                        bytes_per_neuron_step=counter.total / (N * T),
                    )
                )
    return dict(
        rows=rows,
        timed=[],
        note="one LIF layer, input c [T, N] requiring grad; bytes saved for backward counted with "
        "torch.autograd.graph.saved_tensors_hooks (unique storages, measured, not computed); "
        "input_sized_tensors = bytes / (N * T * element size of c). The saved input c counts.",
    )
