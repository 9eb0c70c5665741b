"""The STBP surrogates: one table in C++ and one in Python that agree, and each surrogate with a peer equal to it.

- The C++ table (csrc/core/rules/surrogates.h, read through the library's ``na_cuda_surrogates``) lists the names of
  the Python table (na_cuda/surrogates.py) in the same order.
- Every surrogate with a spikingjelly class: ``convert`` of a ``LIFNode`` using it gives the same spikes and, under
  STBP, the same input gradient in float64 (1e-12 relative), on the reference and the native op.
- Every surrogate with an snnTorch factory: ``LIF.from_snntorch`` of a ``Leaky`` using it, the same (float64,
  1e-12 relative, with an upstream gradient that float32 holds exactly: snnTorch's spikes are float32; 1e-6 for
  its sigmoid, whose backward rounds to float32).
- The bounds of ``surrogate_alpha`` (q_pseudo_spike's q > 1) hold in Python and in the binding.
"""

from __future__ import annotations

import copy
import ctypes

import pytest
import torch
from helpers import needs_native
from torch import nn

import na_cuda
from na_cuda import surrogates
from na_cuda._backend import _NATIVE

BACKENDS = ["torch", pytest.param("native", marks=needs_native)]


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))


def _input(T: int, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    rate = torch.rand(n, generator=g, dtype=torch.float64) * 1.4
    return rate * torch.rand((T, n), generator=g, dtype=torch.float64) * 1.4 - 0.2


@needs_native
def test_the_cpp_table_lists_the_python_names_in_order():
    fn = _NATIVE.cpu.na_cuda_surrogates
    fn.restype = ctypes.c_char_p
    assert tuple(fn().decode().split(",")) == surrogates.SURROGATES


def _param(name: str) -> float:
    """The peer's parameter for twice the default alpha (a power-of-two scaling: the products snnTorch rounds to
    float32 stay exact)."""
    spec = surrogates.BY_NAME[name]
    return spec.alpha * 2.0 if spec.sj_alpha(2.0) == 2.0 else 1.0 / (spec.alpha * 2.0)


SJ = [s.name for s in surrogates.TABLE if s.spikingjelly]
SNN = [s.name for s in surrogates.TABLE if s.snntorch]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("v_reset", [0.0, None], ids=["hard", "soft"])
@pytest.mark.parametrize("name", SJ)
def test_converted_spikingjelly_surrogate_equals_its_peer(name, v_reset, backend):
    sj = pytest.importorskip("spikingjelly.activation_based", reason="spikingjelly is not installed")
    from spikingjelly.activation_based import functional as sj_functional
    from spikingjelly.activation_based import neuron as sj_neuron

    spec = surrogates.BY_NAME[name]
    fn = getattr(sj.surrogate, spec.spikingjelly)(**{spec.sj_param: _param(name)})
    node = sj_neuron.LIFNode(tau=2.5, v_reset=v_reset, surrogate_function=fn, detach_reset=False, step_mode="m")
    model = nn.Sequential(node).double()
    converted = na_cuda.nn.convert(copy.deepcopy(model), method="stbp", backend=backend)
    assert type(model[0]).__name__ == "LIFNode"
    lif = converted[0]
    assert lif.rule.surrogate == name
    x = _input(16, 40, seed=3) * 3.0  # decay_input: the input is scaled by 1/tau
    g = torch.randn(x.shape, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    xs, xl = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    sj_functional.reset_net(model)
    ys, yl = model(xs), converted(xl)
    (ys * g).sum().backward()
    (yl * g).sum().backward()
    assert torch.equal(yl, ys)
    assert 0.05 < float(ys.detach().mean()) < 0.95
    assert xs.grad.abs().max() > 0
    assert _rel(xl.grad, xs.grad) <= 1e-12


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mech", ["subtract", "zero"])
@pytest.mark.parametrize("name", SNN)
def test_from_snntorch_surrogate_equals_its_peer(name, mech, backend):
    snn = pytest.importorskip("snntorch", reason="snnTorch is not installed")
    from snntorch import surrogate as snn_surrogate

    spec = surrogates.BY_NAME[name]
    factory = getattr(snn_surrogate, spec.snntorch)
    sg = factory(**{spec.snn_param: _param(name)}) if spec.snn_param else factory()
    leaky = snn.Leaky(beta=0.85, threshold=0.8, reset_mechanism=mech, spike_grad=sg).double()
    lif = na_cuda.nn.LIF.from_snntorch(leaky, method="stbp", backend=backend).double()
    assert lif.rule.surrogate == name
    x = _input(16, 40, seed=5)
    # float32-exact upstream gradient: snnTorch's spikes are float32, so autograd rounds dL/dspk to float32
    g = torch.randn(x.shape, generator=torch.Generator().manual_seed(6)).double()
    xs, xl = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    mem = torch.zeros(x.shape[1:], dtype=x.dtype)
    outs = []
    for t in range(x.shape[0]):
        spk, mem = leaky(xs[t], mem)
        outs.append(spk)
    ys, yl = torch.stack(outs), lif(xl)
    (ys * g).sum().backward()
    (yl * g).sum().backward()
    assert torch.equal(yl, ys.double())
    assert xs.grad.abs().max() > 0
    # snnTorch's sigmoid rounds grad * slope to float32 in its backward (tests/test_peer_decay.py): 1e-6 there
    assert _rel(xl.grad, xs.grad) <= (1e-6 if name == "sigmoid" else 1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_q_pseudo_spike_needs_q_above_one(backend):
    with pytest.raises(ValueError, match=r"`surrogate_alpha` of 'q_pseudo_spike' must be > 1; got 1.0"):
        na_cuda.lif(torch.zeros(2, 3), method="stbp", surrogate="q_pseudo_spike", surrogate_alpha=1.0, backend=backend)


@needs_native
def test_the_binding_checks_the_bound_and_names_every_surrogate():
    args = (torch.zeros(2, 3), 5.0, 2.0, 1.0, 0.0, False, False, "spike")
    with pytest.raises(RuntimeError, match=r"`surrogate_alpha` of \"q_pseudo_spike\" must be a finite float > 1"):
        torch.ops.na_cuda.lif_stbp(*args, "q_pseudo_spike", 0.5, True)
    with pytest.raises(RuntimeError, match=r"must be one of \"rect\", .*\"straight_through_estimator\"; got \"x\""):
        torch.ops.na_cuda.lif_stbp(*args, "x", 1.0, True)
