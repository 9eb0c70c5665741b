"""Section 2 of the suite: the peer, spikingjelly's multi-step LIF, against na_cuda's NA and STBP.

spikingjelly's `LIFNode(tau, decay_input=False, v_reset=0.0, step_mode="m")` (STBP with its own fastest
implementation on the device), forward+backward on the neuron op's shapes, against na_cuda's NA and STBP with the
same output (spikes) and surrogate (sigmoid, slope 4), all four timed interleaved per (dtype, T) and compared per
repeat. First checks that the two neurons agree (forward spikes, and STBP gradients with detach_reset on and off).
Skipped with a message when spikingjelly is not importable (`pip install spikingjelly`, see docs/benchmarks.md).
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable

import torch

import na_cuda

from _timing import ratio_stats, summarise
from sections.common import dtype_of, spread_entries, time_variants

TAU_M = 5.0


class SpikingJellyLIF:
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
        kw = dict(
            tau=float(tau_m),
            decay_input=False,
            v_threshold=1.0,
            v_reset=0.0,
            surrogate_function=surrogate.Sigmoid(alpha=4.0),
            detach_reset=detach_reset,
            step_mode="m",
        )
        self.backend = None
        self.node: Any = None
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


def bench_peer(plan: dict, device: str) -> dict:
    """The section's result: availability, the agreement check, rows per (dtype, T) with per-repeat ratios."""
    try:
        import spikingjelly  # noqa: F401
        from spikingjelly.activation_based import neuron  # noqa: F401
    except Exception as exc:  # noqa: BLE001
        msg = (
            f"spikingjelly is not importable ({type(exc).__name__}: {exc}); skipped. Install it with "
            "`pip install --no-deps spikingjelly==2.0.0 loguru` (see docs/benchmarks.md)"
        )
        print("  " + msg, flush=True)
        return dict(available=False, message=msg, timed=[])
    sj = SpikingJellyLIF(device, TAU_M, detach_reset=True)
    print(f"  spikingjelly {sj.version}, LIFNode implementation: {sj.backend}", flush=True)
    out: dict[str, Any] = dict(
        available=True,
        version=sj.version,
        implementation=sj.backend,
        backend_errors=sj.errors,
        check=_peer_check(plan, device, TAU_M),
    )
    print(f"  forward/gradient check: {json.dumps(out['check'])}", flush=True)
    ours: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        "na": lambda x: na_cuda.lif(x, method="na", output="spike", backend="native", tau_m=TAU_M),
        "na_psc": lambda x: na_cuda.lif(x, method="na", backend="native", tau_m=TAU_M),
        "stbp": lambda x: na_cuda.lif(
            x,
            method="stbp",
            output="spike",
            surrogate="sigmoid",
            surrogate_alpha=4.0,
            detach_reset=True,
            backend="native",
            tau_m=TAU_M,
        ),
    }
    rows, timed = [], []
    N = plan["N"]
    for dname in plan["dtypes"]:
        dtype = dtype_of(dname)
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
            fns = {"spikingjelly": run(sj), **{name: run(f) for name, f in ours.items()}}
            try:
                samples, _ = time_variants(fns, device, plan["repeats"], plan["slow_repeats"], plan["slot_s"])
            except Exception as exc:  # noqa: BLE001  (a spikingjelly implementation that fails at this size)
                row["spikingjelly_error"] = f"{type(exc).__name__}: {exc}"
                rows.append(row)
                continue
            timed += [dict(e, variant=f"peer {e['variant']} {dname} T={T}") for e in spread_entries(samples)]
            sj_t = samples["spikingjelly"]
            row["spikingjelly_fwd_bwd_s"] = summarise(sj_t)["median"]
            row["spikingjelly_fwd_bwd_stats"] = summarise(sj_t)
            for name in ours:
                st = summarise(samples[name])
                ratio = ratio_stats(samples[name], sj_t)
                label = "na_native_psc" if name == "na_psc" else f"{name}_native"
                row[f"{label}_fwd_bwd_s"] = st["median"]
                row[f"{label}_fwd_bwd_stats"] = st
                row[f"{label}_over_spikingjelly"] = ratio and ratio["median"]
                row[f"{label}_over_spikingjelly_stats"] = ratio
            rows.append(row)
            print(
                f"  T={T:3d} {dname}: spikingjelly {row['spikingjelly_fwd_bwd_s'] * 1e3:8.2f} ms   "
                f"NA/sj {row['na_native_over_spikingjelly']:5.2f}x   "
                f"STBP/sj {row['stbp_native_over_spikingjelly']:5.2f}x",
                flush=True,
            )
    out["rows"] = rows
    out["timed"] = timed
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
        "NA's timing uses output='spike' here; na_native_psc_over_spikingjelly is NA with its default PSC output, "
        "timed in the same interleaved repeats",
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
        sj = SpikingJellyLIF(device, tau_m, detach_reset=dr)
        x1 = c.clone().requires_grad_(True)
        s1 = sj(x1)
        s1.backward(gout)
        x2 = c.clone().requires_grad_(True)
        s2 = na_cuda.lif(
            x2,
            tau_m=tau_m,
            output="spike",
            method="stbp",
            surrogate="sigmoid",
            surrogate_alpha=4.0,
            detach_reset=dr,
            backend="native",
        )
        s2.backward(gout)
        differ = s1.float() != s2.float()
        same_neuron = ~differ.any(0)
        g1, g2 = x1.grad, x2.grad
        assert g1 is not None and g2 is not None  # both inputs require grad and took part
        scale = g2.abs().max().clamp_min(1e-30)
        gd = ((g1 - g2).abs()[:, same_neuron].max() / scale).item() if same_neuron.any() else None
        key = "detach_reset" if dr else "no_detach_reset"
        if dr:
            res["spike_rate"] = s2.float().mean().item()
            res["forward_mismatched_spikes"] = int(differ.sum().item())
            res["forward_mismatched_neurons"] = int((~same_neuron).sum().item())
        res[f"stbp_grad_max_rel_diff_{key}"] = gd
    res["note"] = (
        "forward: na_cuda output='spike' vs spikingjelly spikes; gradient: na_cuda method='stbp', "
        "surrogate='sigmoid', alpha 4, vs spikingjelly's Sigmoid(alpha=4), max |difference| / max |grad| "
        "over neurons whose spike trains agree"
    )
    return res
