"""Learnable time constants and snnTorch against their sources (issue 17 items 1 and 2; docs/convert.md).

- spikingjelly 2.0's ``ParametricLIFNode``: the converted LIF gives the same spikes and, under STBP, the same input
  and ``w`` gradients in float64 (1e-12 relative), for decay_input x hard/soft reset x detach_reset;
- snnTorch 1.0's ``Leaky`` loop: ``LIF.from_snntorch`` gives the same spikes and membranes and, under STBP, the same
  input and ``beta`` gradients (float64, 1e-10 relative; 1e-6 for snnTorch's sigmoid, which rounds to float32) for
  every reset_mechanism, fixed/learnable, scalar/per-neuron beta and surrogate.

Both peers are optional (``make test`` installs them with ``--no-deps``); the tests skip without them."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from helpers import needs_native
from torch import nn

import na_cuda


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))


def _input(T: int, shape: tuple, seed: int, drive: float = 1.4) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    rate = torch.rand(shape, generator=g, dtype=torch.float64) * drive
    return rate * torch.rand((T, *shape), generator=g, dtype=torch.float64) * 1.4 - 0.2


BACKENDS = ["torch", pytest.param("native", marks=needs_native)]


# ---------------------------------------------------------------------------------------------------------------
# spikingjelly ParametricLIFNode


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("decay_input", [True, False])
@pytest.mark.parametrize("v_reset", [0.0, -0.2, None], ids=["hard0", "hard-0.2", "soft"])
@pytest.mark.parametrize("detach_reset", [False, True])
def test_plif_equals_spikingjelly(backend, decay_input, v_reset, detach_reset):
    neuron = pytest.importorskip("spikingjelly.activation_based.neuron", reason="spikingjelly is not installed")
    from spikingjelly.activation_based import surrogate

    src = neuron.ParametricLIFNode(
        init_tau=2.5,
        decay_input=decay_input,
        v_reset=v_reset,
        detach_reset=detach_reset,
        surrogate_function=surrogate.ATan(alpha=2.0),
        step_mode="m",
    ).double()
    with torch.no_grad():
        src.w.fill_(0.3)  # a trained value, not the initial one
    lif = na_cuda.nn.convert(copy.deepcopy(src), method="stbp", backend=backend)
    assert isinstance(lif, na_cuda.nn.LIF) and lif.w.dtype == torch.float64 and float(lif.w.detach()) == 0.3
    x = _input(12, (3, 40), seed=4)
    g = torch.randn(x.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    outs = []
    for m in (src, lif):
        xi = x.clone().requires_grad_(True)
        y = m(xi)
        (y * g).sum().backward()
        outs.append((y.detach(), xi.grad, m.w.grad.detach().clone()))
        if m is src:
            src.reset()
    (ys, gs, ws), (yl, gl, wl) = outs
    assert torch.equal(ys, yl)
    assert _rel(gl, gs) < 1e-12
    assert _rel(wl, ws) < 1e-12


def test_plif_mapper_under_na_trains_w():
    neuron = pytest.importorskip("spikingjelly.activation_based.neuron", reason="spikingjelly is not installed")
    src = nn.Sequential(nn.Linear(16, 16), neuron.ParametricLIFNode(init_tau=2.0, step_mode="m"))
    lif = na_cuda.nn.convert(src, method="na")[1]
    assert lif.learn_decay == "sigmoid" and lif.rule.name == "na"
    lif(_input(8, (16,), seed=2).float()).sum().backward()
    assert lif.w.grad is not None and torch.isfinite(lif.w.grad)


# ---------------------------------------------------------------------------------------------------------------
# snnTorch Leaky

snn = pytest.importorskip("snntorch", reason="snnTorch is not installed (pip install --no-deps snntorch==1.0.0)")
from snntorch import surrogate as snn_surrogate  # noqa: E402

SNN_SURROGATES = {
    "default": (lambda: None, 1e-10),  # snnTorch's default spike_grad: atan(alpha=2)
    "atan3": (lambda: snn_surrogate.atan(alpha=3.0), 1e-10),
    "fast_sigmoid": (lambda: snn_surrogate.fast_sigmoid(slope=10), 1e-10),
    "sigmoid": (lambda: snn_surrogate.sigmoid(slope=5), 1e-6),  # snnTorch rounds grad * slope to float32
}


def _leaky(beta, mech, learn, sg):
    return snn.Leaky(beta=beta.clone(), threshold=0.8, reset_mechanism=mech, learn_beta=learn, spike_grad=sg()).double()


def _snntorch_loop(leaky, x: torch.Tensor, output: str) -> torch.Tensor:
    mem = torch.zeros(x.shape[1:], dtype=x.dtype)
    outs = []
    for t in range(x.shape[0]):
        spk, mem = leaky(x[t], mem)
        outs.append(spk if output == "spike" else mem)
    return torch.stack(outs)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("output", ["spike", "membrane"])
@pytest.mark.parametrize("sg", list(SNN_SURROGATES))
@pytest.mark.parametrize("per_neuron", [False, True], ids=["scalar", "per-neuron"])
@pytest.mark.parametrize("learn", [False, True], ids=["fixed", "learn_beta"])
@pytest.mark.parametrize("mech", ["subtract", "zero", "none"])
def test_from_snntorch_equals_leaky_loop(mech, learn, per_neuron, sg, output, backend):
    make_sg, tol = SNN_SURROGATES[sg]
    beta = torch.linspace(0.3, 0.95, 10, dtype=torch.float64) if per_neuron else torch.tensor(0.9, dtype=torch.float64)
    x = _input(20, (4, 10), seed=6, drive=1.0)
    # snnTorch's spikes are float32 ((x > 0).float()), so autograd rounds dL/dspk to float32: an upstream gradient
    # that float32 holds exactly keeps the comparison at float64 precision
    g = torch.randn(x.shape, generator=torch.Generator().manual_seed(2)).double()
    src = _leaky(beta, mech, learn, make_sg)
    lif = na_cuda.nn.LIF.from_snntorch(src, method="stbp", output=output, backend=backend).double()
    xs, xl = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ys = _snntorch_loop(src, xs, output)
    yl = lif(xl)
    (ys * g).sum().backward()
    (yl * g).sum().backward()
    assert torch.equal(yl, ys.double())  # the same spikes / the same membrane potentials, bit for bit
    assert _rel(xl.grad, xs.grad) < tol
    if learn:
        assert lif.beta.shape == src.beta.shape
        assert _rel(lif.beta.grad, src.beta.grad) < tol


def test_from_snntorch_float32_within_rounding():
    src = snn.Leaky(beta=0.95)  # the tutorials' default: subtract, atan
    lif = na_cuda.nn.LIF.from_snntorch(src)
    x = _input(25, (8, 32), seed=3, drive=0.8).float()
    xs, xl = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ys, yl = _snntorch_loop(src, xs, "spike"), lif(xl)
    ys.sum().backward()
    yl.sum().backward()
    assert torch.equal(ys, yl)
    assert _rel(xl.grad, xs.grad) < 1e-5


def test_from_snntorch_mapping_and_na():
    src = snn.Leaky(beta=torch.rand(6), learn_beta=True, reset_mechanism="zero", spike_grad=snn_surrogate.sigmoid())
    lif = na_cuda.nn.LIF.from_snntorch(src, method="na")
    p = lif.params
    assert p["v_reset"] == 0.0 and p["strict_threshold"] and p["method"] == "na"
    assert lif.learn_decay == "beta" and torch.equal(lif.beta.detach(), src.beta.detach())
    lif(torch.rand(5, 3, 6)).sum().backward()
    assert lif.beta.grad.shape == (6,)
    tut = na_cuda.nn.LIF.from_snntorch(snn.Leaky(beta=0.5))
    assert tut.params["reset_mechanism"] == "subtract" and tut.params["surrogate"] == "atan"
    assert math.isclose(tut.neuron.tau_m, 2.0) and not list(tut.parameters())


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: snn.Leaky(beta=0.9, learn_threshold=True), "learn_threshold"),
        (lambda: snn.Leaky(beta=0.9, threshold=torch.ones(3)), "per-neuron threshold"),
        (lambda: snn.Leaky(beta=0.9, inhibition=True), "inhibition"),
        (lambda: snn.Leaky(beta=0.9, reset_delay=False), "reset_delay"),
        (lambda: snn.Leaky(beta=0.9, graded_spikes_factor=2.0), "graded"),
        (lambda: snn.Leaky(beta=0.9, spike_grad=snn_surrogate.spike_rate_escape()), "no na_cuda equivalent under"),
        (lambda: snn.Leaky(beta=0.9, surrogate_disable=True), "surrogate_disable"),
        (lambda: snn.Synaptic(alpha=0.9, beta=0.8), "expected an snntorch.Leaky"),
        (lambda: snn.Leaky(beta=0.9, init_hidden=True, output=True), r"init_hidden=True with output=True.*\(spk, mem"),
    ],
)
def test_from_snntorch_refuses_with_the_reason(make, match):
    with pytest.raises(ValueError, match=match):
        na_cuda.nn.LIF.from_snntorch(make())


def test_from_snntorch_na_takes_any_surrogate_and_membrane_is_stbp_only():
    src = snn.Leaky(beta=0.9, spike_grad=snn_surrogate.spike_rate_escape())
    assert na_cuda.nn.LIF.from_snntorch(src, method="na").rule.name == "na"
    with pytest.raises(ValueError, match='output="membrane" is refused by method="na"'):
        na_cuda.nn.LIF.from_snntorch(snn.Leaky(beta=0.9), method="na", output="membrane")


@pytest.mark.parametrize(
    "method,options,exc,match",
    [
        ("stbp", dict(threshold=2.0), TypeError, "threshold come from each converted neuron"),
        ("stbp", dict(strict_threshold=False), TypeError, "strict_threshold come from"),
        ("na", dict(reset_mechanism="zero"), TypeError, "reset_mechanism come from"),
        ("stbp", dict(decay=0.5), TypeError, "decay come from"),
        ("stbp", dict(learn_decay="beta"), TypeError, "learn_decay come from"),
        ("stbp", dict(surrogate="atan"), TypeError, "surrogate come from"),
        ("stbp", dict(clip=3.0), TypeError, "`clip` is an option of method='na'"),
        ("stbp", dict(grad_rescale=None), TypeError, "grad_rescale is NA's"),
        ("na", dict(surrogate="atan"), TypeError, "`surrogate` is STBP's"),
        ("na", dict(tau_s=3.0), TypeError, "tau_s is the PSC time constant"),
        ("na", dict(first_order="taylor"), TypeError, "first_order only changes"),
        ("na", dict(dist_powr=1), TypeError, "unknown rule option `dist_powr`"),
        ("stbp", dict(output="psc"), ValueError, "`output` must be 'spike'"),
    ],
)
def test_from_snntorch_refuses_options_that_break_equivalence_or_are_ignored(method, options, exc, match):
    """The Leaky's own settings come from it, other rules' options would be ignored: refused as convert does."""
    with pytest.raises(exc, match=match):
        na_cuda.nn.LIF.from_snntorch(snn.Leaky(beta=0.9), method=method, **options)
    assert na_cuda.nn.LIF.from_snntorch(snn.Leaky(beta=0.9), method="na", clip=3.0, dist_power=1).rule.clip == 3.0
    lif = na_cuda.nn.LIF.from_snntorch(snn.Leaky(beta=0.9, init_hidden=True), backend="torch")  # spk only: equal
    assert lif.backend == "torch" and lif.neuron.output == "spike"
