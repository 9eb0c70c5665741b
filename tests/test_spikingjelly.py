"""na_cuda.lif against its source: spikingjelly 2.0's multi-step LIFNode / IFNode (issue 8 item 4).

Float64, one layer of neurons: the same spikes (bit-equal) and, under STBP with the same surrogate, the same
input gradient (<= 1e-12 relative) for decay_input x hard/soft reset x detach_reset. spikingjelly is optional:
`make test` installs it without dependencies (its torchvision/torchaudio requirements could replace torch);
these tests skip where it is absent.
"""

from __future__ import annotations

import math

import pytest
import torch

import na_cuda

sj_neuron = pytest.importorskip(
    "spikingjelly.activation_based.neuron",
    reason="spikingjelly is not installed (pip install --no-deps spikingjelly==2.0.0 loguru)",
)
from spikingjelly.activation_based import surrogate as sj_surrogate  # noqa: E402

RESETS = [pytest.param(0.0, id="hard0"), pytest.param(-0.3, id="hard-0.3"), pytest.param(None, id="soft")]
SURROGATES = [  # spikingjelly surrogate -> (na_cuda surrogate, surrogate_alpha): the same derivative
    pytest.param(lambda: sj_surrogate.Sigmoid(alpha=4.0), ("sigmoid", 4.0), id="sigmoid"),
    pytest.param(lambda: sj_surrogate.ATan(alpha=2.0), ("atan", 2.0), id="atan"),
    pytest.param(lambda: sj_surrogate.ATan(alpha=3.0), ("atan", 3.0), id="atan3"),
]


def _input(T: int = 12, n: int = 400, seed: int = 0) -> torch.Tensor:
    """Drives mixing silent, regular and bursting neurons, with inhibitory (negative) steps."""
    g = torch.Generator().manual_seed(seed)
    rate = torch.rand(n, generator=g, dtype=torch.float64) * 1.6
    return rate * torch.rand(T, n, generator=g, dtype=torch.float64) * 1.4 - 0.2


def _run(node_or_fn, x: torch.Tensor, g: torch.Tensor):
    c = x.clone().requires_grad_(True)
    s = node_or_fn(c)
    (s * g).sum().backward()
    return s.detach(), c.grad


@pytest.mark.parametrize("node", ["lif", "if"])
@pytest.mark.parametrize("decay_input", [False, True])
@pytest.mark.parametrize("v_reset", RESETS)
@pytest.mark.parametrize("detach_reset", [False, True])
@pytest.mark.parametrize("make_sg,ours", SURROGATES)
def test_forward_and_stbp_gradient_equal_spikingjelly(node, decay_input, v_reset, detach_reset, make_sg, ours):
    if node == "if" and decay_input:
        pytest.skip("IFNode has no decay_input")
    tau = 3.0
    kw = dict(v_threshold=1.0, v_reset=v_reset, surrogate_function=make_sg(), detach_reset=detach_reset, step_mode="m")
    if node == "lif":
        ref = sj_neuron.LIFNode(tau=tau, decay_input=decay_input, **kw)
    else:
        ref = sj_neuron.IFNode(**kw)
    x = _input()
    x = x * 2.0 if decay_input else x  # decay_input scales the input by 1/tau: drive harder for spikes
    g = torch.randn(x.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    s_ref, gc_ref = _run(ref, x, g)
    surrogate, alpha = ours
    s, gc = _run(
        lambda c: na_cuda.lif(
            c,
            tau_m=tau if node == "lif" else math.inf,
            threshold=1.0,
            v_reset=v_reset,
            decay_input=decay_input,
            output="spike",
            method="stbp",
            surrogate=surrogate,
            surrogate_alpha=alpha,
            detach_reset=detach_reset,
        ),
        x,
        g,
    )
    assert 0.05 < s_ref.mean() < 0.6, "the input should make the neurons fire at mixed rates"
    assert torch.equal(s, s_ref)
    torch.testing.assert_close(gc, gc_ref, rtol=1e-12, atol=1e-12 * gc_ref.abs().max().item())


@pytest.mark.parametrize("v_reset", RESETS)
def test_state_starts_at_rest_like_a_reset_spikingjelly_neuron(v_reset):
    """na_cuda starts every call from rest (v = v_reset, or 0 under soft reset) as spikingjelly does right after
    functional.reset_net; a spikingjelly neuron that is not reset carries v into the next call."""
    ref = sj_neuron.LIFNode(tau=2.0, v_reset=v_reset, step_mode="m")
    x = _input(T=6, n=200, seed=3)
    ours = na_cuda.lif(x, tau_m=2.0, v_reset=v_reset, decay_input=True, output="spike", method="stbp")
    assert torch.equal(ours, ref(x))
    assert not torch.equal(ours, ref(x)), "without a reset spikingjelly continues from the last v"
    ref.reset()
    assert torch.equal(ours, ref(x))
