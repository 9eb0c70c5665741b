"""The project's benchmark suite: neuron op, spikingjelly peer, end-to-end MNIST training step, saved memory.

    python benchmarks/run.py [--quick] [--device cpu|cuda] [--out DIR] [--sections op,peer,e2e,memory]

Writes DIR/results.json, DIR/RESULTS.md (machine, goals met / missed, tables) and the plots DIR/neuron_op.png,
DIR/fig7_epoch_time.png and DIR/memory.png. Nothing is asserted: the goals are reported as measured ratios.

1. Neuron op (`op`): `na_cuda.lif` forward and forward+backward (autograd with an upstream gradient) for every
   method (na, stbp, tssl) x backend (native, torch = the pure-PyTorch reference) x T in {5, 10, 20, 30, 50} x
   dtype (float32; bfloat16 on a GPU, native only) on N neurons. Reports neuron-steps/s and the effective
   bandwidth (forward: 2 tensor passes per neuron-step, read c and write y; forward+backward: 5, adding read c,
   read dL/dy, write dL/dc) as a fraction of a device-to-device copy measured in the same run. The reference is
   skipped where one call is predicted (from the previous T, scaling as T^2) to take longer than --ref-max-s;
   the JSON lists what was skipped and why.
2. Peer (`peer`): spikingjelly's multi-step `LIFNode(tau, decay_input=False, v_reset=0.0, step_mode="m")` (STBP
   with its own fastest implementation on the device), forward+backward on the same shapes, against na_cuda's
   NA and STBP with the same output (spikes) and surrogate (sigmoid, slope 4). First checks that the two neurons
   agree (forward spikes, and STBP gradients with detach_reset on and off). Skipped with a message when
   spikingjelly is not importable (`pip install spikingjelly`, see README).
3. End to end (`e2e`): one training iteration of the MNIST preset network (15C5-P2-40C5-P2-300-10, batch 64,
   built by `na_cuda.train.model_from_config`) as `python -m na_cuda.train` does it: normalise + encode the
   batch, forward, summed loss, zero_grad, backward, clip_grad_norm_, the host sync of the step statistics, AdamW
   step, weight clamp. The batch is synthetic (scikit-learn's 8x8 digits scaled into 28x28, else random
   strokes) and already on the device; augmentation is left out. T in {5, 10, 20}, every method and backend.
   Peak memory per iteration: on CUDA `torch.cuda.max_memory_allocated` minus the memory allocated before the
   step; on the CPU (no allocator statistics) the bytes saved for backward (saved_tensors_hooks, unique storages,
   parameters excluded) and the growth of the process's peak RSS over the step (Linux VmHWM, reset through
   /proc/self/clear_refs after malloc_trim). Per-epoch time = per-iteration x 938 (60000 / 64), plotted next to
   the paper's figure 7 (Titan Xp).
4. Memory (`memory`): bytes saved for backward by one LIF layer, measured with saved_tensors_hooks, per method and
   backend, as a number of input-sized tensors (bytes / (N * T * element size)).
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import json
import math
import os
import re
import sys
import time
import traceback
from collections import defaultdict
from typing import Any, Callable, Optional

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import na_cuda  # noqa: E402
from na_cuda import losses, train  # noqa: E402
from _timing import copy_bandwidth, machine_info, median, sync, time_calls  # noqa: E402

METHODS = ("na", "stbp", "tssl")
BACKENDS = ("native", "torch")
PASSES_FWD = 2
PASSES_FWD_BWD = 5
ITERS_PER_EPOCH = 938  # MNIST: 60000 training images / batch 64, rounded up
# Figure 7 of the NA paper (per-epoch training time on MNIST, one Titan Xp), read off the bars, seconds.
PAPER_FIG7 = {"stbp": {5: 28, 10: 56, 20: 100}, "na": {5: 36, 10: 97, 20: 320}, "tssl": {5: 42, 10: 86, 20: 175}}
METHOD_LABEL = {"na": "NA", "stbp": "STBP", "tssl": "TSSL-BP"}
TOP_LEVEL_KEYS = ("meta", "config", "neuron_op", "peer", "end_to_end", "memory", "goals")


# ----------------------------------------------------------------------------------------------------------------
# Configuration per mode and device
# ----------------------------------------------------------------------------------------------------------------
def make_plan(mode: str, device: str, args: argparse.Namespace) -> dict:
    """Sizes and repetition counts. `mode`: "full" or "quick" (the CI smoke run, ~35 s on a 2-core CPU)."""
    gpu = device == "cuda"
    if mode == "full":
        # CPU N = 2^18: every buffer up to T = 30 stays under glibc's 32 MB mmap threshold (no page faults per
        # allocation, see README); GPU N = 2^22: N*T >= 2^24 from T = 4 (the bandwidth goal's size).
        plan = dict(N=2**22 if gpu else 2**18, Ts=[5, 10, 20, 30, 50], min_time=1.0, max_reps=30, ref_max_s=30.0,
                    e2e_Ts=[5, 10, 20], e2e_batch=64, e2e_ref_Ts=[5, 10, 20], e2e_min_time=3.0, e2e_max_reps=30,
                    mem_N=2**14, mem_Ts=[5, 20], check_N=2**12)
    else:  # quick
        plan = dict(N=2**20 if gpu else 2**14, Ts=[5, 10, 20, 30, 50], min_time=0.1, max_reps=5, ref_max_s=1.0,
                    e2e_Ts=[5, 10, 20], e2e_batch=64, e2e_ref_Ts=[5], e2e_min_time=1.0, e2e_max_reps=8,
                    mem_N=2**12, mem_Ts=[5, 20], check_N=2**10)
    if args.N is not None:
        plan["N"] = args.N
    if args.ref_max_s is not None:
        plan["ref_max_s"] = args.ref_max_s
    plan["dtypes"] = ["float32", "bfloat16"] if gpu else ["float32"]
    plan["mode"] = mode
    return plan


def _dtype(name: str) -> torch.dtype:
    return getattr(torch, name)


# ----------------------------------------------------------------------------------------------------------------
# 1. Neuron op
# ----------------------------------------------------------------------------------------------------------------
def bench_neuron_op(plan: dict, device: str, copy_bw: dict) -> dict:
    N, rows, skipped = plan["N"], [], []
    last_ref: dict[tuple, tuple[int, float]] = {}  # (method, dtype) -> (T, seconds of one fwd+bwd call)
    for dname in plan["dtypes"]:
        dtype = _dtype(dname)
        for T in plan["Ts"]:
            g = torch.Generator().manual_seed(T)
            c = (torch.rand(T, N, generator=g) * 0.9).to(device=device, dtype=dtype)
            grad = torch.randn(T, N, generator=g).to(device=device, dtype=dtype)
            for method in METHODS:
                for backend in BACKENDS:
                    if backend == "torch":
                        if dname != "float32":
                            continue  # the reference computes in float32 anyway; timed in float32 only
                        prev = last_ref.get((method, dname))
                        if prev is not None:
                            predicted = prev[1] * (T / prev[0]) ** 2
                            if predicted > plan["ref_max_s"]:
                                skipped.append(dict(method=method, backend=backend, dtype=dname, T=T, N=N,
                                                    reason=f"predicted {predicted:.1f} s per forward+backward call "
                                                           f"(from T={prev[0]}, scaling as T^2) > --ref-max-s "
                                                           f"{plan['ref_max_s']:g} s"))
                                print(f"  skip reference {method} T={T}: {skipped[-1]['reason']}", flush=True)
                                continue
                    kw = dict(method=method, backend=backend)

                    def fwd() -> torch.Tensor:
                        with torch.no_grad():
                            return na_cuda.lif(c, **kw)

                    def fwd_bwd() -> None:
                        x = c.detach().requires_grad_(True)
                        na_cuda.lif(x, **kw).backward(grad)

                    slow = 1.0 if backend == "torch" else None
                    oom = None
                    try:
                        tf = time_calls(fwd, device, plan["min_time"], plan["max_reps"], slow_s=slow)
                        tfb = time_calls(fwd_bwd, device, plan["min_time"], plan["max_reps"], slow_s=slow)
                    except Exception as exc:  # noqa: BLE001
                        if not _is_oom(exc):
                            raise
                        oom = f"out of memory ({type(exc).__name__})"
                    if oom is not None:  # outside the except block: the traceback's tensors are released
                        skipped.append(dict(method=method, backend=backend, dtype=dname, T=T, N=N, reason=oom))
                        print(f"  skip {method} {backend} T={T}: {oom}", flush=True)
                        _free(device)
                        continue
                    t_f, t_fb = min(tf), min(tfb)
                    if backend == "torch":
                        last_ref[(method, dname)] = (T, t_fb)
                    steps, esz = N * T, c.element_size()
                    bw_f = PASSES_FWD * steps * esz / t_f
                    bw_fb = PASSES_FWD_BWD * steps * esz / t_fb
                    rows.append(dict(method=method, backend=backend, dtype=dname, T=T, N=N, fwd_s=t_f, fwd_bwd_s=t_fb,
                                     fwd_reps=len(tf), fwd_bwd_reps=len(tfb), fwd_steps_per_s=steps / t_f,
                                     fwd_bwd_steps_per_s=steps / t_fb, fwd_GBps=bw_f / 1e9, fwd_bwd_GBps=bw_fb / 1e9,
                                     fwd_frac_of_copy=bw_f / copy_bw[dname],
                                     fwd_bwd_frac_of_copy=bw_fb / copy_bw[dname]))
                    print(f"  {method:5s} {backend:6s} {dname:8s} T={T:3d} N={N}: fwd {t_f * 1e3:9.2f} ms  "
                          f"fwd+bwd {t_fb * 1e3:9.2f} ms  {steps / t_fb / 1e9:7.3f} Gstep/s  "
                          f"{100 * bw_fb / copy_bw[dname]:5.1f}% of copy", flush=True)
            del c, grad
    for r in rows:
        if r["backend"] != "native":
            continue
        ref = _find(rows, method=r["method"], backend="torch", dtype="float32", T=r["T"])
        stbp = _find(rows, method="stbp", backend="native", dtype=r["dtype"], T=r["T"])
        same = ref is not None and r["dtype"] == "float32"
        r["speedup_vs_reference_fwd_bwd"] = ref["fwd_bwd_s"] / r["fwd_bwd_s"] if same else None
        r["speedup_vs_reference_fwd"] = ref["fwd_s"] / r["fwd_s"] if same else None
        r["time_vs_stbp_native"] = r["fwd_bwd_s"] / stbp["fwd_bwd_s"] if stbp else None
    return dict(N=N, rows=rows, skipped=skipped,
                note="times are the minimum over repeated calls after warm-ups (a reference call slower than 1 s "
                     "is timed once); bandwidth counts 2 (forward) / 5 (forward+backward) tensor passes per "
                     "neuron-step at the input's element size")


def _is_oom(exc: BaseException) -> bool:
    oom = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", ())
    return isinstance(exc, (MemoryError, oom)) or "out of memory" in str(exc).lower()


def _free(device: str) -> None:
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()


def _find(rows: list[dict], **kv: Any) -> Optional[dict]:
    return next((r for r in rows if all(r.get(k) == v for k, v in kv.items())), None)


# ----------------------------------------------------------------------------------------------------------------
# 2. spikingjelly
# ----------------------------------------------------------------------------------------------------------------
class _SJ:
    """A spikingjelly multi-step LIF node configured as our neuron, whatever spikingjelly's API version."""

    def __init__(self, device: str, tau_m: float, detach_reset: bool) -> None:
        import spikingjelly
        from spikingjelly.activation_based import neuron, surrogate

        self.version = getattr(spikingjelly, "__version__", None)
        if self.version is None:
            try:
                from importlib.metadata import version

                self.version = version("spikingjelly")
            except Exception:  # noqa: BLE001
                self.version = "unknown"
        kw = dict(tau=float(tau_m), decay_input=False, v_threshold=1.0, v_reset=0.0,
                  surrogate_function=surrogate.Sigmoid(alpha=4.0), detach_reset=detach_reset, step_mode="m")
        self.backend = None
        self.node = None
        # spikingjelly <= 0.0.0.0.14 takes `backend=`; 2.x selects its implementation itself (on CUDA: its CUDA
        # kernels, then Triton, then torch; env SJ_LIF_CUDA_IMPLEMENTATION), the CPU runs its torch code.
        candidates = ("cupy", "triton", "torch") if device == "cuda" else ("torch",)
        errors = []
        for b in candidates:
            try:
                node = neuron.LIFNode(backend=b, **kw).to(device)
                node.reset()
                node(torch.rand(2, 8, device=device))  # probe that the backend actually runs here
                self.node, self.backend = node, b
                break
            except TypeError as exc:
                if "backend" in str(exc):
                    break  # spikingjelly 2.x: no backend argument
                errors.append(f"{b}: {exc}")
            except Exception as exc:  # noqa: BLE001  (e.g. cupy missing)
                errors.append(f"{b}: {type(exc).__name__}: {exc}")
        if self.node is None:
            self.node = neuron.LIFNode(**kw).to(device)
            self.node.reset()
            self.node(torch.rand(2, 8, device=device))
            self.backend = "auto: " + self._selected(device)
        self.errors = errors

    @staticmethod
    def _selected(device: str) -> str:
        if device != "cuda":
            return "cpu (torch code)"
        try:
            from spikingjelly._ops.lif import _selection

            chosen = [s.name for s in _selection._selections.values() if s is not None and hasattr(s, "name")]
            env = os.environ.get("SJ_LIF_CUDA_IMPLEMENTATION", "auto")
            return f"{chosen[0] if chosen else 'unknown'} (SJ_LIF_CUDA_IMPLEMENTATION={env})"
        except Exception:  # noqa: BLE001
            return "unknown"

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.node.reset()  # spikingjelly neurons keep v between calls; ours simulate every window from rest
        return self.node(x)


def bench_peer(plan: dict, device: str, op: Optional[dict]) -> dict:
    try:
        import spikingjelly  # noqa: F401
        from spikingjelly.activation_based import neuron  # noqa: F401
    except Exception as exc:  # noqa: BLE001
        msg = (f"spikingjelly is not importable ({type(exc).__name__}: {exc}); skipped. Install it with "
               "`pip install --no-deps spikingjelly==2.0.0 loguru` (see README)")
        print("  " + msg, flush=True)
        return dict(available=False, message=msg)
    tau_m = 5.0
    sj = _SJ(device, tau_m, detach_reset=True)
    print(f"  spikingjelly {sj.version}, LIFNode implementation: {sj.backend}", flush=True)
    out: dict[str, Any] = dict(available=True, version=sj.version, implementation=sj.backend,
                               backend_errors=sj.errors, check=_peer_check(plan, device, tau_m))
    print(f"  forward/gradient check: {json.dumps(out['check'])}", flush=True)
    ours = {
        "na": dict(method="na", output="spike", backend="native", tau_m=tau_m),
        "stbp": dict(method="stbp", output="spike", surrogate="sigmoid", surrogate_alpha=4.0, detach_reset=True,
                     backend="native", tau_m=tau_m),
    }
    rows = []
    N = plan["N"]
    for dname in plan["dtypes"]:
        dtype = _dtype(dname)
        for T in plan["Ts"]:
            g = torch.Generator().manual_seed(100 + T)
            c = (torch.rand(T, N, generator=g) * 0.9).to(device=device, dtype=dtype)
            grad = torch.randn(T, N, generator=g).to(device=device, dtype=dtype)

            def run(f: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[], None]:
                def call() -> None:
                    x = c.detach().requires_grad_(True)
                    f(x).backward(grad)
                return call

            row: dict[str, Any] = dict(dtype=dname, T=T, N=N)
            try:
                row["spikingjelly_fwd_bwd_s"] = min(time_calls(run(sj), device, plan["min_time"], plan["max_reps"]))
            except Exception as exc:  # noqa: BLE001
                row["spikingjelly_error"] = f"{type(exc).__name__}: {exc}"
                rows.append(row)
                continue
            for name, kw in ours.items():
                row[f"{name}_native_fwd_bwd_s"] = min(time_calls(run(lambda x, kw=kw: na_cuda.lif(x, **kw)), device,
                                                               plan["min_time"], plan["max_reps"]))
                row[f"{name}_native_over_spikingjelly"] = (row[f"{name}_native_fwd_bwd_s"]
                                                           / row["spikingjelly_fwd_bwd_s"])
            psc = _find(op["rows"], method="na", backend="native", dtype=dname, T=T) if op else None
            row["na_native_psc_over_spikingjelly"] = psc["fwd_bwd_s"] / row["spikingjelly_fwd_bwd_s"] if psc else None
            rows.append(row)
            print(f"  T={T:3d} {dname}: spikingjelly {row['spikingjelly_fwd_bwd_s'] * 1e3:8.2f} ms   "
                  f"NA/sj {row['na_native_over_spikingjelly']:5.2f}x   "
                  f"STBP/sj {row['stbp_native_over_spikingjelly']:5.2f}x",
                  flush=True)
    out["rows"] = rows
    out["differences"] = [
        "same forward: u = (1 - 1/tau_m) v + c, spike when u >= 1, hard reset to 0 (spikingjelly with "
        "decay_input=False, v_reset=0.0, v_threshold=1.0; it computes v - v/tau + x, which can differ from ours in "
        "the last bit and so, rarely, flip a spike exactly at the threshold)",
        "spikingjelly outputs spikes; na_cuda outputs the PSC by default (output='psc', the NA paper's model): the "
        "comparison uses output='spike'",
        "surrogate: spikingjelly's default is Sigmoid(alpha=4), na_cuda's STBP default is rect (width 1): the "
        "comparison uses surrogate='sigmoid', surrogate_alpha=4 (the same function)",
        "detach_reset: spikingjelly defaults to False, na_cuda to True: the timing uses True for both; the check "
        "covers both",
        "spikingjelly's nodes are stateful (v persists between calls until reset()); na_cuda's are stateless (each "
        "call simulates the window from rest): the benchmark calls reset() before every spikingjelly call",
        "spikingjelly keeps its state in float32; what it saves for backward is measured in the memory section "
        "(on the CPU its torch code is recorded by autograd step by step: 2 input-sized tensors), na_cuda saves "
        "the input c only",
        "NA's timing uses output='spike' here; na_native_psc_over_spikingjelly uses the neuron-op section's PSC-output "
        "NA time",
    ]
    return out


def _peer_check(plan: dict, device: str, tau_m: float) -> dict:
    """Forward spikes and STBP gradients of spikingjelly vs na_cuda (native), float32, on one random input."""
    g = torch.Generator().manual_seed(7)
    T, N = 20, plan["check_N"]
    c = (torch.randn(T, N, generator=g) * 0.6 + 0.35).to(device)
    gout = torch.randn(T, N, generator=g).to(device)
    res: dict[str, Any] = dict(T=T, N=N)
    for dr in (True, False):
        sj = _SJ(device, tau_m, detach_reset=dr)
        x1 = c.clone().requires_grad_(True)
        s1 = sj(x1)
        s1.backward(gout)
        x2 = c.clone().requires_grad_(True)
        s2 = na_cuda.lif(x2, tau_m=tau_m, output="spike", method="stbp", surrogate="sigmoid", surrogate_alpha=4.0,
                         detach_reset=dr, backend="native")
        s2.backward(gout)
        differ = (s1.float() != s2.float())
        same_neuron = ~differ.any(0)
        scale = x2.grad.abs().max().clamp_min(1e-30)
        gd = ((x1.grad - x2.grad).abs()[:, same_neuron].max() / scale).item() if same_neuron.any() else None
        key = "detach_reset" if dr else "no_detach_reset"
        if dr:
            res["spike_rate"] = s2.float().mean().item()
            res["forward_mismatched_spikes"] = int(differ.sum().item())
            res["forward_mismatched_neurons"] = int((~same_neuron).sum().item())
        res[f"stbp_grad_max_rel_diff_{key}"] = gd
    res["note"] = ("forward: na_cuda output='spike' vs spikingjelly spikes; gradient: na_cuda method='stbp', "
                   "surrogate='sigmoid', alpha 4, vs spikingjelly's Sigmoid(alpha=4), max |difference| / max |grad| "
                   "over neurons whose spike trains agree")
    return res


# ----------------------------------------------------------------------------------------------------------------
# Memory measurement helpers
# ----------------------------------------------------------------------------------------------------------------
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

    def __enter__(self) -> "SavedBytes":
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._ctx.__exit__(*exc)


def _malloc_trim() -> None:
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
        return dict(kind="cuda max_memory_allocated - memory_allocated before the step",
                    peak_bytes=torch.cuda.max_memory_allocated() - base,
                    peak_allocated_bytes=torch.cuda.max_memory_allocated())
    _malloc_trim()
    if not _reset_peak_rss():
        step()
        return dict(kind="unavailable (no /proc/self/clear_refs)", peak_bytes=None)
    base = _proc_kb("VmRSS")
    step()
    hwm = _proc_kb("VmHWM")
    if base is None or hwm is None:
        return dict(kind="unavailable", peak_bytes=None)
    return dict(kind="peak RSS (VmHWM) growth over the step, after malloc_trim", peak_bytes=(hwm - base) * 1024,
                rss_before_bytes=base * 1024)


# ----------------------------------------------------------------------------------------------------------------
# 3. End to end
# ----------------------------------------------------------------------------------------------------------------
def synthetic_mnist(batch: int, device: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, 1, 28, 28] images in [0, 1] and labels: scikit-learn's 8x8 digits upsampled to 20x20 and centred in
    28x28 like MNIST; random strokes if scikit-learn is missing."""
    g = torch.Generator().manual_seed(seed)
    try:
        from na_cuda import data

        ds = data.load("digits", train=True)
        idx = torch.randint(len(ds), (batch,), generator=g)
        x, y = ds.batch(idx, "cpu")
        x = torch.nn.functional.interpolate(x.float(), size=(20, 20), mode="bilinear", align_corners=False)
        x = torch.nn.functional.pad(x, (4, 4, 4, 4)).clamp(0, 1)
        return x.to(device), y.to(device)
    except Exception:  # noqa: BLE001
        x = torch.zeros(batch, 1, 28, 28)
        for b in range(batch):
            r = torch.randint(6, 22, (2,), generator=g)
            x[b, 0, r[0] - 2:r[0] + 2, 4:24] = 1.0
            x[b, 0, 4:24, r[1] - 2:r[1] + 2] = 1.0
        return x.to(device), torch.randint(10, (batch,), generator=g).to(device)


class _TrainStep:
    """One iteration of `na_cuda.train` (`_Run.train_epoch`) on a fixed batch, single process."""

    def __init__(self, method: str, backend: str, T: int, batch: int, device: str) -> None:
        self.cfg = train.make_config("mnist", method=method, T=T, backend=backend, device=device, progress=False)
        torch.manual_seed(0)
        self.net = train.model_from_config(self.cfg, (1, 28, 28)).to(device)
        self.params = [p for p in self.net.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(self.params, lr=self.cfg.lr, betas=tuple(self.cfg.betas),
                                     weight_decay=self.cfg.weight_decay)
        self.x, self.y = synthetic_mnist(batch, device)
        self.device = device
        self.phases: Optional[dict[str, float]] = None  # set to a dict to record per-phase seconds

    def _mark(self, name: str, t0: float) -> float:
        if self.phases is None:
            return t0
        sync(self.device)
        t1 = time.perf_counter()
        self.phases[name] = self.phases.get(name, 0.0) + t1 - t0
        return t1

    def __call__(self) -> None:
        from na_cuda import data

        cfg = self.cfg
        t = time.perf_counter()
        xin = data.encode_static(data.normalize(self.x, "mnist"), cfg.T, cfg.tau_s)
        out = self.net(xin)
        loss = train.loss_sum(cfg, out, self.y)
        t = self._mark("forward", t)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        t = self._mark("backward", t)
        gnorm = torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip)
        correct = (losses.spike_count_predictions(out) == self.y).sum()
        stats = torch.stack([loss.detach().double(), correct.double(), gnorm.double()]).tolist()  # the CLI's sync
        if not all(math.isfinite(v) for v in stats):
            raise RuntimeError(f"non-finite loss/gradient norm {stats}")
        self.opt.step()
        self.net.clamp_weights_(cfg.weight_clip)
        self._mark("optimizer", t)

    def saved_bytes(self) -> dict:
        """One iteration under saved_tensors_hooks: bytes saved for backward, total and per top-level layer."""
        counter = SavedBytes(exclude=tuple(self.params))
        inputs: dict[str, int] = {}

        def pre_hook(name: str) -> Callable:
            def hook(mod: nn.Module, inp: tuple) -> None:
                counter.layer = name
                inputs[name] = inp[0].numel() * inp[0].element_size()
            return hook

        handles = []
        for i, m in enumerate(self.net):
            name = f"{i}:{type(m.module).__name__ if hasattr(m, 'module') else type(m).__name__}"
            handles.append(m.register_forward_pre_hook(pre_hook(name)))
        handles.append(self.net.register_forward_hook(lambda *a: setattr(counter, "layer", "loss")))
        try:
            with counter:
                self()
        finally:
            for h in handles:
                h.remove()
        lif = {k: counter.by_layer.get(k, 0) / v for k, v in inputs.items() if k.endswith(":LIF")}
        return dict(total=counter.total, by_layer=dict(counter.by_layer), input_bytes=inputs,
                    lif_input_sized_tensors=lif)


def bench_e2e(plan: dict, device: str) -> dict:
    rows: list[dict] = []
    skipped: list[dict] = []
    for T in plan["e2e_Ts"]:
        for method in METHODS:
            for backend in BACKENDS:
                if backend == "torch" and T not in plan["e2e_ref_Ts"]:
                    continue
                step = _TrainStep(method, backend, T, plan["e2e_batch"], device)
                slow = 1.0 if backend == "torch" else None
                oom = None
                try:
                    times = time_calls(step, device, plan["e2e_min_time"],
                                       plan["e2e_max_reps"] if backend == "native" else min(plan["e2e_max_reps"], 3),
                                       warmup=2 if backend == "native" else 1, slow_s=slow)
                except Exception as exc:  # noqa: BLE001
                    if not _is_oom(exc):
                        raise
                    oom = f"out of memory ({type(exc).__name__})"
                if oom is not None:
                    skipped.append(dict(method=method, backend=backend, T=T, reason=oom))
                    print(f"  skip T={T} {method} {backend}: {oom}", flush=True)
                    del step
                    _free(device)
                    continue
                row = dict(method=method, backend=backend, T=T, batch=plan["e2e_batch"], iter_s_median=median(times),
                           iter_s_min=min(times), reps=len(times))
                row["epoch_s"] = row["iter_s_median"] * ITERS_PER_EPOCH
                saved: dict = {}
                row["peak"] = peak_memory(lambda: saved.update(step.saved_bytes()), device)
                row["saved_bytes"] = saved["total"]
                row["saved_bytes_by_layer"] = saved["by_layer"]
                row["layer_input_bytes"] = saved["input_bytes"]
                row["lif_saved_input_sized_tensors"] = saved["lif_input_sized_tensors"]
                if backend == "native":
                    step.phases = {}
                    n = 3
                    for _ in range(n):
                        step()
                    row["phases_s"] = {k: v / n for k, v in step.phases.items()}
                    step.phases = None
                rows.append(row)
                pk = row["peak"]["peak_bytes"]
                print(f"  T={T:3d} {method:5s} {backend:6s}: {row['iter_s_median'] * 1e3:9.1f} ms/iter (median of "
                      f"{len(times)}), {row['epoch_s']:8.1f} s/epoch, saved {saved['total'] / 2**20:7.1f} MiB, peak "
                      f"{'-' if pk is None else f'{pk / 2**20:.1f} MiB'}", flush=True)
                del step
                gc.collect()
    for r in rows:
        stbp = _find(rows, method="stbp", backend=r["backend"], T=r["T"])
        ref = _find(rows, method=r["method"], backend="torch", T=r["T"])
        r["time_vs_stbp_same_backend"] = r["iter_s_median"] / stbp["iter_s_median"] if stbp else None
        r["speedup_vs_reference"] = (ref["iter_s_median"] / r["iter_s_median"]
                                     if ref and r["backend"] == "native" else None)
    return dict(rows=rows, skipped=skipped, iters_per_epoch=ITERS_PER_EPOCH, paper_fig7_titan_xp_s=PAPER_FIG7,
                note="per iteration: normalise + PSC-encode the batch, forward, loss (van Rossum, summed), zero_grad, "
                     "backward, clip_grad_norm_(1), host sync of loss/accuracy/grad norm, AdamW step, clamp to "
                     "[-4, 4]; NA with the released layer-wise gradient rescaling (the CLI's default). Synthetic "
                     "batch already on the device, no augmentation. iter_s_median over the timed iterations (a "
                     "reference iteration slower than 1 s is timed once). saved_bytes: bytes saved for backward "
                     "(saved_tensors_hooks, unique storages, parameters excluded). peak: see its 'kind'.")


# ----------------------------------------------------------------------------------------------------------------
# 4. Saved memory of one LIF layer
# ----------------------------------------------------------------------------------------------------------------
def bench_memory(plan: dict, device: str, with_peer: bool) -> dict:
    rows = []
    N = plan["mem_N"]
    for dname in plan["dtypes"]:
        dtype = _dtype(dname)
        for T in plan["mem_Ts"]:
            c0 = (torch.rand(T, N) * 0.9).to(device=device, dtype=dtype)
            cands: list[tuple[str, str, Callable[[torch.Tensor], torch.Tensor]]] = [
                (m, b, lambda x, m=m, b=b: na_cuda.lif(x, method=m, backend=b)) for m in METHODS for b in BACKENDS]
            if with_peer:
                try:
                    sj = _SJ(device, 5.0, detach_reset=True)
                    cands.append(("stbp (spike out)", f"spikingjelly {sj.backend}", sj))
                except Exception:  # noqa: BLE001
                    pass
            for method, backend, f in cands:
                x = c0.detach().requires_grad_(True)
                with SavedBytes() as counter:
                    y = f(x)
                y.sum().backward()
                unit = N * T * c0.element_size()
                rows.append(dict(method=method, backend=backend, dtype=dname, T=T, N=N, saved_bytes=counter.total,
                                 input_sized_tensors=counter.total / unit,
                                 bytes_per_neuron_step=counter.total / (N * T)))
    return dict(rows=rows, note="one LIF layer, input c [T, N] requiring grad; bytes saved for backward counted with "
                                "torch.autograd.graph.saved_tensors_hooks (unique storages, measured, not computed); "
                                "input_sized_tensors = bytes / (N * T * element size of c). The saved input c counts.")


# ----------------------------------------------------------------------------------------------------------------
# Goals
# ----------------------------------------------------------------------------------------------------------------
def evaluate_goals(res: dict, device: str) -> list[dict]:
    op = res.get("neuron_op") or {}
    oprows = op.get("rows", [])
    e2e = (res.get("end_to_end") or {}).get("rows", [])
    peer = res.get("peer") or {}
    mem = (res.get("memory") or {}).get("rows", [])
    goals = []

    def add(name: str, value: Optional[float], ok: Optional[bool], fmt: str, detail: str = "",
            comparable: bool = True) -> None:
        status = "not measured" if value is None else ("met" if ok else "missed") if comparable else "not comparable"
        goals.append(dict(goal=name, value=value, shown=(fmt.format(value) if value is not None else "not measured"),
                          status=status, detail=detail))

    def speedup(T: int) -> Optional[float]:
        r = _find(oprows, method="na", backend="native", dtype="float32", T=T)
        return r.get("speedup_vs_reference_fwd_bwd") if r else None

    def e2e_ratio(T: int) -> Optional[float]:
        r = _find(e2e, method="na", backend="native", T=T)
        return r.get("time_vs_stbp_same_backend") if r else None

    na_mem = [r["input_sized_tensors"] for r in mem if r["method"] == "na" and r["backend"] == "native"]
    na_mem += [v for r in e2e if r["method"] == "na" and r["backend"] == "native"
               for v in r.get("lif_saved_input_sized_tensors", {}).values()]
    mem_val = max(na_mem) if na_mem else None
    N = op.get("N")
    if device == "cpu":
        for T, target in ((5, 30), (20, 100)):
            v = speedup(T)
            add(f"NA-native forward+backward >= {target}x the reference at T={T} (neuron op, N={N})", v,
                v is not None and v >= target, "{:.1f}x")
        sj = _find(peer.get("rows", []), dtype="float32", T=5)
        v = sj.get("na_native_over_spikingjelly") if sj else None
        add("NA-native faster than spikingjelly's LIF (STBP, torch) at T=5 (time ratio < 1)", v,
            v is not None and v < 1, "{:.2f}x", "" if peer.get("available", False) else "spikingjelly not importable")
        v = e2e_ratio(5)
        add("end-to-end MNIST iteration NA-native <= 1.3x STBP-native at T=5", v, v is not None and v <= 1.3, "{:.2f}x")
    else:
        for T in (5, 10, 20):
            r = _find(oprows, method="na", backend="native", dtype="float32", T=T)
            ok_size = r is not None and r["N"] * T >= 2**24
            v = r["fwd_bwd_frac_of_copy"] if r else None
            add(f"NA-native forward+backward >= 70% of copy bandwidth at T={T} (fp32, N*T >= 2^24)", v,
                v is not None and v >= 0.7, "{:.0%}", "" if ok_size else "N*T < 2^24 in this run", comparable=ok_size)
        for T, target in ((5, 1.15), (20, 1.5)):
            v = e2e_ratio(T)
            add(f"end-to-end MNIST iteration NA-native <= {target}x STBP-native at T={T}", v,
                v is not None and v <= target, "{:.2f}x")
        r = _find(e2e, method="na", backend="native", T=5)
        v = r.get("speedup_vs_reference") if r else None
        add("end-to-end NA-native >= 20x the reference per iteration at T=5", v, v is not None and v >= 20, "{:.1f}x")
    add("saved memory of NA-native <= 1 input-sized tensor per layer", mem_val, mem_val is not None and mem_val <= 1.0,
        "{:.2f}", "max over the single-layer measurements and the MNIST network's LIF layers")
    return goals


# ----------------------------------------------------------------------------------------------------------------
# Report: RESULTS.md and plots
# ----------------------------------------------------------------------------------------------------------------
def _ms(s: Optional[float]) -> str:
    if s is None:
        return "-"
    return f"{s * 1e3:.2f}" if s < 0.1 else f"{s * 1e3:.1f}" if s < 10 else f"{s * 1e3:.0f}"


def _x(v: Optional[float], nd: int = 2) -> str:
    return "-" if v is None else f"{v:.{nd}f}x"


def write_markdown(res: dict, path: str) -> None:
    meta, plan = res["meta"], res["config"]
    m = meta["machine"]
    L: list[str] = []
    L.append(f"# na_cuda benchmarks ({meta['device']}, {plan['mode']} run)\n")
    L.append(f"Written by `python benchmarks/run.py{' --quick' if plan['mode'] == 'quick' else ''} --device "
             f"{meta['device']}` on {meta['date']}, {meta['wall_s']:.0f} s. Ratios are comparable within this "
             "run; absolute times on a shared VM vary between runs.\n")
    L.append("| machine | |\n| --- | --- |")
    gpu = m.get("gpu")
    comp = m["compilers"]
    for k, v in (("host", f"{m['hostname']} ({m['platform']})"), ("CPU", m["cpu_model"]),
                 ("cores", f"{m['cpu_count']} logical, torch threads {m['torch_threads']}"),
                 ("load average at start", ", ".join(f"{x:.2f}" for x in (m["load_average"] or []))),
                 ("GPU", f"{gpu['name']} ({gpu['memory_GiB']} GiB, sm {gpu['capability']})" if gpu else "none"),
                 ("python / torch", f"{m['python']} / {m['torch']} (CUDA {m['torch_cuda']})"),
                 ("compilers",
                  f"torch built with {comp['torch_built_with']}; c++: {comp['cxx']}; nvcc: {comp['nvcc']}"),
                 ("na_cuda.backends()", "`" + json.dumps(meta["backends"]) + "`"),
                 ("copy bandwidth (same run)", ", ".join(f"{k}: {v:.1f} GB/s" for k, v in meta["copy_GBps"].items()))):
        L.append(f"| {k} | {v} |")
    L.append("")
    L.append("## Goals\n")
    L.append("| goal | measured | |\n| --- | --- | --- |")
    for gl in res["goals"]:
        detail = f" ({gl['detail']})" if gl["detail"] else ""
        L.append(f"| {gl['goal']} | {gl['shown']} | {gl['status']}{detail} |")
    L.append("")

    op = res.get("neuron_op")
    if op and op.get("rows"):
        L.append(f"## 1. Neuron op (`na_cuda.lif`, N = {op['N']}, forward+backward unless noted)\n")
        L.append("Times in ms (minimum of repeated calls). Speed-up = reference / native. % copy = effective bandwidth "
                 "(5 tensor passes per neuron-step) / device copy bandwidth.\n")
        for dname in plan["dtypes"]:
            L.append(f"**{dname}**\n")
            L.append("| T | " + " | ".join(f"{METHOD_LABEL[mm]} native | {METHOD_LABEL[mm]} ref | speed-up"
                                              for mm in METHODS)
                     + " | NA / STBP | NA Gstep/s | NA % copy | NA fwd ms |")
            L.append("|---" * (1 + 3 * len(METHODS) + 4) + "|")
            for T in plan["Ts"]:
                cells = [str(T)]
                for mm in METHODS:
                    nat = _find(op["rows"], method=mm, backend="native", dtype=dname, T=T)
                    ref = _find(op["rows"], method=mm, backend="torch", dtype="float32", T=T)
                    fp32 = dname == "float32"
                    cells += [_ms(nat["fwd_bwd_s"]) if nat else "-",
                              _ms(ref["fwd_bwd_s"]) if ref and fp32 else "skipped" if fp32 else "-",
                              _x(nat.get("speedup_vs_reference_fwd_bwd"), 1) if nat else "-"]
                na = _find(op["rows"], method="na", backend="native", dtype=dname, T=T)
                cells += [_x(na["time_vs_stbp_native"]) if na else "-",
                          f"{na['fwd_bwd_steps_per_s'] / 1e9:.3f}" if na else "-",
                          f"{100 * na['fwd_bwd_frac_of_copy']:.0f}%" if na else "-", _ms(na["fwd_s"]) if na else "-"]
                L.append("| " + " | ".join(cells) + " |")
            L.append("")
        if op["skipped"]:
            L.append("Skipped: " + "; ".join(f"{s['method']} reference at T={s['T']} ({s['reason']})"
                                             for s in op["skipped"]) + ".\n")
        L.append("![neuron op](neuron_op.png)\n")

    peer = res.get("peer")
    if peer is not None:
        L.append("## 2. Peer: spikingjelly\n")
        if not peer.get("available"):
            L.append(peer["message"] + "\n")
        else:
            ck = peer["check"]
            L.append(f"spikingjelly {peer['version']}, LIFNode implementation `{peer['implementation']}`. Ratios are "
                     "time / spikingjelly's forward+backward (< 1: na_cuda faster), all with spike output; "
                     "STBP with the sigmoid surrogate (slope 4) and detach_reset=True on both sides.\n")
            L.append(f"Check (T={ck['T']}, N={ck['N']}, spike rate {ck['spike_rate']:.3f}): forward spikes differing "
                     f"{ck['forward_mismatched_spikes']} (neurons {ck['forward_mismatched_neurons']}); "
                     "STBP gradient max "
                     f"relative difference {ck['stbp_grad_max_rel_diff_detach_reset']:.2g} (detach_reset) / "
                     f"{ck['stbp_grad_max_rel_diff_no_detach_reset']:.2g} (no detach).\n")
            L.append("| dtype | T | spikingjelly ms | NA native ms | NA / sj | NA (psc) / sj | STBP native ms | "
                     "STBP / sj |")
            L.append("|---|---|---|---|---|---|---|---|")
            for r in peer["rows"]:
                if "spikingjelly_error" in r:
                    L.append(f"| {r['dtype']} | {r['T']} | error: {r['spikingjelly_error']} | | | | | |")
                    continue
                L.append(f"| {r['dtype']} | {r['T']} | {_ms(r['spikingjelly_fwd_bwd_s'])} | "
                         f"{_ms(r['na_native_fwd_bwd_s'])} "
                         f"| {_x(r['na_native_over_spikingjelly'])} | {_x(r['na_native_psc_over_spikingjelly'])} "
                         f"| {_ms(r['stbp_native_fwd_bwd_s'])} | {_x(r['stbp_native_over_spikingjelly'])} |")
            L.append("\nHow the two neurons differ:\n")
            L += [f"- {d}" for d in peer["differences"]]
            L.append("")

    e2e = res.get("end_to_end")
    if e2e and e2e.get("rows"):
        L.append(f"## 3. End to end: MNIST preset network, batch {plan['e2e_batch']}\n")
        L.append(e2e["note"] + "\n")
        L.append("| T | method | backend | ms / iter | s / epoch (x938) | paper s / epoch (Titan Xp) | / STBP | "
                 "speed-up vs ref | forward / backward / optimiser ms | saved MiB | peak MiB |")
        L.append("|---|---|---|---|---|---|---|---|---|---|---|")
        for r in e2e["rows"]:
            ph = r.get("phases_s")
            pk = r["peak"]["peak_bytes"]
            paper = PAPER_FIG7.get(r["method"], {}).get(r["T"])
            L.append(f"| {r['T']} | {METHOD_LABEL[r['method']]} | {r['backend']} | {_ms(r['iter_s_median'])} | "
                     f"{r['epoch_s']:.1f} | {paper if paper is not None else '-'} | "
                     f"{_x(r['time_vs_stbp_same_backend'])} | "
                     f"{_x(r['speedup_vs_reference'], 1)} | "
                     f"{' / '.join(_ms(ph.get(k)) for k in ('forward', 'backward', 'optimizer')) if ph else '-'} | "
                     f"{r['saved_bytes'] / 2**20:.1f} | {'-' if pk is None else f'{pk / 2**20:.1f}'} |")
        L.append("\nBytes saved for backward per layer of the network (MiB; LIF rows also as input-sized tensors, "
                 "i.e. / the bytes of the layer's input):\n")
        sel = [r for r in e2e["rows"] if r["T"] == min(plan["e2e_Ts"])]
        layers = list(sel[0]["layer_input_bytes"]) if sel else []
        L.append("| T | method | backend | " + " | ".join(layers) + " |")
        L.append("|---" * (3 + len(layers)) + "|")
        for r in sel:
            cells = []
            for k in layers:
                mib = r["saved_bytes_by_layer"].get(k, 0) / 2**20
                ratio = r["lif_saved_input_sized_tensors"].get(k)
                cells.append(f"{mib:.2f}" + (f" ({ratio:.2f})" if ratio is not None else ""))
            L.append(f"| {r['T']} | {METHOD_LABEL[r['method']]} | {r['backend']} | " + " | ".join(cells) + " |")
        kinds = sorted({r["peak"]["kind"] for r in e2e["rows"]})
        L.append(f"\nPeak memory: {'; '.join(kinds)}.\n")
        L.append("![figure 7](fig7_epoch_time.png)\n")

    mem = res.get("memory")
    if mem and mem.get("rows"):
        L.append("## 4. Bytes saved for backward by one LIF layer\n")
        L.append(mem["note"] + "\n")
        L.append("| method | backend | dtype | T | N | saved bytes | bytes / neuron-step | input-sized tensors |")
        L.append("|---|---|---|---|---|---|---|---|")
        for r in mem["rows"]:
            L.append(f"| {r['method']} | {r['backend']} | {r['dtype']} | {r['T']} | {r['N']} | {r['saved_bytes']} | "
                     f"{r['bytes_per_neuron_step']:.1f} | {r['input_sized_tensors']:.2f} |")
        L.append("\n![memory](memory.png)\n")
    with open(path, "w") as f:
        f.write("\n".join(L))


def _plt():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        return plt
    except ImportError:
        print("matplotlib not installed: no plots (pip install matplotlib)")
        return None


def plot_neuron_op(res: dict, path: str) -> None:
    plt = _plt()
    op = res.get("neuron_op")
    if plt is None or not op or not op.get("rows"):
        return
    rows = [r for r in op["rows"] if r["dtype"] == "float32"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = {"na": "C0", "stbp": "C1", "tssl": "C2"}
    for ax, key, title in ((axes[0], "fwd_s", "forward"), (axes[1], "fwd_bwd_s", "forward + backward")):
        for mm in METHODS:
            for backend, style in (("native", "-o"), ("torch", "--s")):
                pts = sorted((r["T"], r[key]) for r in rows if r["method"] == mm and r["backend"] == backend)
                if pts:
                    ax.plot([p[0] for p in pts], [p[1] * 1e3 for p in pts], style, color=colors[mm],
                            label=f"{METHOD_LABEL[mm]} {'native' if backend == 'native' else 'reference (torch)'}")
        peer = res.get("peer") or {}
        if key == "fwd_bwd_s" and peer.get("available"):
            pts = sorted((r["T"], r["spikingjelly_fwd_bwd_s"]) for r in peer["rows"]
                         if r["dtype"] == "float32" and "spikingjelly_fwd_bwd_s" in r)
            if pts:
                ax.plot([p[0] for p in pts], [p[1] * 1e3 for p in pts], ":^", color="k",
                        label="spikingjelly LIFNode (STBP, spike out)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ts = sorted({r["T"] for r in rows})
        ax.set_xticks(ts)
        ax.set_xticklabels([str(t) for t in ts])
        ax.minorticks_off()
        ax.set_xlabel("time steps T")
        ax.set_ylabel("ms per call")
        ax.set_title(f"LIF op {title}, N = {op['N']}, fp32, {res['meta']['device']}")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_fig7(res: dict, path: str) -> None:
    plt = _plt()
    e2e = res.get("end_to_end")
    if plt is None or not e2e or not e2e.get("rows"):
        return
    import numpy as np

    dev = res["meta"]["device_name"]
    Ts = [5, 10, 20]
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.2))
    width = 0.13
    colors = {"stbp": "C1", "na": "C0", "tssl": "C2"}
    order = ("stbp", "na", "tssl")
    ours = {(r["method"], r["T"]): r["epoch_s"] for r in e2e["rows"] if r["backend"] == "native"}
    for ax, normalise in ((axes[0], False), (axes[1], True)):
        i = 0
        for mm in order:
            for src in ("paper", "ours"):
                vals = []
                for T in Ts:
                    if src == "paper":
                        v, base = PAPER_FIG7[mm][T], PAPER_FIG7["stbp"][T]
                    else:
                        v, base = ours.get((mm, T)), ours.get(("stbp", T))
                    vals.append(np.nan if v is None or (normalise and base is None) else (v / base if normalise else v))
                x = np.arange(len(Ts)) + (i - 2.5) * width
                label = f"{METHOD_LABEL[mm]}, " + ("paper, Titan Xp" if src == "paper" else f"na_cuda, {dev}")
                ax.bar(x, vals, width, color=colors[mm], alpha=0.45 if src == "paper" else 0.95,
                       hatch="//" if src == "paper" else None, edgecolor="k", linewidth=0.5, label=label)
                i += 1
        ax.set_xticks(np.arange(len(Ts)))
        ax.set_xticklabels([f"T = {T}" for T in Ts])
        if normalise:
            ax.set_ylabel("time per epoch / STBP's (same source)")
            ax.axhline(1.0, color="k", lw=0.6)
            ax.set_title("relative to STBP")
        else:
            ax.set_ylabel("seconds per epoch (MNIST, 938 iterations of batch 64)")
            ax.set_yscale("log")
            ax.set_title("figure 7 of the NA paper vs na_cuda (native kernels)")
        ax.grid(axis="y", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_memory(res: dict, path: str) -> None:
    plt = _plt()
    mem = res.get("memory")
    if plt is None or not mem or not mem.get("rows"):
        return
    T = max(r["T"] for r in mem["rows"])
    rows = [r for r in mem["rows"] if r["T"] == T and r["dtype"] == "float32"]
    fig, ax = plt.subplots(figsize=(7.5, 0.35 * len(rows) + 1.4))
    labels = ["spikingjelly LIFNode" if r["backend"].startswith("spikingjelly")
              else f"{METHOD_LABEL[r['method']]} {'reference' if r['backend'] == 'torch' else r['backend']}"
              for r in rows]
    ax.barh(range(len(rows)), [r["input_sized_tensors"] for r in rows], color="C0")
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(labels, fontsize=8)
    ax.invert_yaxis()
    ax.axvline(1.0, color="k", lw=0.6)
    ax.set_xlabel("input-sized tensors (saved bytes / input bytes, measured)")
    ax.set_title(f"bytes saved for backward, one LIF layer, T = {T}, N = {rows[0]['N'] if rows else '-'}, fp32",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ----------------------------------------------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------------------------------------------
def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    ap.add_argument("--quick", action="store_true",
                    help="small shapes and few repetitions (CI smoke run, ~35 s on 2 CPU cores)")
    ap.add_argument("--out", default="bench_out")
    ap.add_argument("--sections", default="op,peer,e2e,memory", help="comma-separated subset of op,peer,e2e,memory")
    ap.add_argument("--N", type=int, default=None, help="neurons of the neuron-op and peer benchmarks")
    ap.add_argument("--ref-max-s", type=float, default=None,
                    help="skip the reference where one call is predicted to take longer (seconds)")
    args = ap.parse_args(argv)
    device = args.device
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA GPU visible")
    if not na_cuda.backends()["cpu" if device == "cpu" else "cuda"]:
        raise SystemExit(f"na_cuda has no native kernel for {device}; build it first (see README)")
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(sections) - {"op", "peer", "e2e", "memory"}
    if unknown:
        raise SystemExit(f"--sections: unknown {sorted(unknown)}; choose from op, peer, e2e, memory")
    mode = "quick" if args.quick else "full"
    plan = make_plan(mode, device, args)
    os.makedirs(args.out, exist_ok=True)
    t_start = time.time()
    machine = machine_info(device)
    print(f"na_cuda benchmarks, {mode} run on {device} ({machine['cpu_model']}, {machine['cpu_count']} cores, load "
          f"{machine['load_average']}), output {args.out}", flush=True)
    copy_elems = plan["N"] * max(plan["Ts"])
    copy_bw = {d: copy_bandwidth(copy_elems, device, _dtype(d)) for d in plan["dtypes"]}
    res: dict[str, Any] = {k: None for k in TOP_LEVEL_KEYS}
    res["config"] = plan
    res["meta"] = dict(device=device, device_name=(machine["gpu"]["name"] if machine["gpu"]
                                                   else f"{machine['cpu_model']}, {machine['cpu_count']} cores"),
                       machine=machine, backends=na_cuda.backends(), na_cuda=na_cuda.__version__,
                       copy_GBps={k: v / 1e9 for k, v in copy_bw.items()}, copy_elements=copy_elems,
                       date=time.strftime("%Y-%m-%d %H:%M:%S %Z"), sections=sections, errors={})
    steps = (("op", "neuron_op", lambda: bench_neuron_op(plan, device, copy_bw)),
             ("peer", "peer", lambda: bench_peer(plan, device, res["neuron_op"])),
             ("e2e", "end_to_end", lambda: bench_e2e(plan, device)),
             ("memory", "memory", lambda: bench_memory(plan, device, "peer" in sections)))
    for short, key, fn in steps:
        if short not in sections:
            continue
        print(f"[{key}]", flush=True)
        t0 = time.time()
        try:
            res[key] = fn()
        except Exception as exc:  # noqa: BLE001  (report the section's failure, keep the others)
            traceback.print_exc()
            res["meta"]["errors"][key] = f"{type(exc).__name__}: {exc}"
        if res[key] is not None:
            res[key]["section_wall_s"] = time.time() - t0
    res["goals"] = evaluate_goals(res, device)
    res["meta"]["wall_s"] = time.time() - t_start
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(res, f, indent=1)
    write_markdown(res, os.path.join(args.out, "RESULTS.md"))
    plot_neuron_op(res, os.path.join(args.out, "neuron_op.png"))
    plot_fig7(res, os.path.join(args.out, "fig7_epoch_time.png"))
    plot_memory(res, os.path.join(args.out, "memory.png"))
    print("\ngoals:")
    for gl in res["goals"]:
        print(f"  {gl['status']:>12s}  {gl['shown']:>12s}  {gl['goal']}")
    print(f"wrote {args.out}/results.json, RESULTS.md and plots in {res['meta']['wall_s']:.0f} s")
    return 1 if res["meta"]["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
