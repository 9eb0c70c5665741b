"""`na_cuda.nn.convert`: a spikingjelly model switched to na_cuda's neuron (issue 8 item 5).

Converted with method="stbp", a spikingjelly CNN (Conv/BN/LIFNode/pool/Linear in SeqToANNContainer layers) gives
the same loss and the same input and weight gradients as the original reset before the forward (float64,
<= 1e-9), for LIFNode and IFNode, decay_input x hard/soft reset x detach_reset, ATan and Sigmoid surrogates (and
Rect / PiecewiseQuadratic); with method="na" it trains. Every setting without an exact equivalent raises with
the module's path. spikingjelly and snnTorch are optional (`make test` installs them without dependencies).
"""

from __future__ import annotations

import copy
import itertools

import pytest
import torch
from torch import nn

import na_cuda
from na_cuda.nn import LIF, convert

sj_neuron = pytest.importorskip(
    "spikingjelly.activation_based.neuron",
    reason="spikingjelly is not installed (pip install --no-deps spikingjelly==2.0.0 loguru)",
)
from spikingjelly.activation_based import functional as sj_functional  # noqa: E402
from spikingjelly.activation_based import layer as sj_layer  # noqa: E402
from spikingjelly.activation_based import surrogate as sj_surrogate  # noqa: E402


def _cnn(neuron) -> nn.Sequential:
    """A small spikingjelly CNN, float64: 1x8x8 images -> 5 classes. `neuron()` makes each spiking layer."""
    torch.manual_seed(0)
    net = nn.Sequential(
        sj_layer.SeqToANNContainer(nn.Conv2d(1, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6)),
        neuron(),
        sj_layer.SeqToANNContainer(nn.MaxPool2d(2)),
        sj_layer.SeqToANNContainer(nn.Conv2d(6, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)),
        neuron(),
        sj_layer.SeqToANNContainer(nn.AvgPool2d(2), nn.Flatten(), nn.Linear(8 * 2 * 2, 5)),
        neuron(),
    ).double()
    with torch.no_grad():  # drive the output layer hard enough to fire (the default init leaves it silent)
        net[5][2].weight.mul_(4.0)
        net[5][2].bias.fill_(1.0)
    return net


def _data(T: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(T, 6, 1, 8, 8, generator=g, dtype=torch.float64) * 3.0
    return x, torch.randint(0, 5, (6,), generator=g)


def _loss_and_grads(model: nn.Module, x: torch.Tensor, labels: torch.Tensor):
    """Cross-entropy of the firing rates; the loss, d loss / d x and every parameter's gradient."""
    model.zero_grad()
    x = x.clone().requires_grad_(True)
    spikes = model(x)
    loss = nn.functional.cross_entropy(spikes.mean(0) * 4.0, labels)
    loss.backward()
    return loss.detach(), x.grad, [p.grad.clone() for p in model.parameters()], spikes.detach()


def _assert_same(before, after, tol=1e-9):
    (loss_b, gx_b, gw_b, s_b), (loss_a, gx_a, gw_a, s_a) = before, after
    assert torch.equal(s_a, s_b)
    assert 0.0 < s_b.mean() < 0.95, "the data should make the output neurons fire, not saturate"
    assert abs(loss_a - loss_b) <= tol * abs(loss_b)
    for ga, gb in zip([gx_a] + gw_a, [gx_b] + gw_b):
        assert gb.abs().max() > 0
        torch.testing.assert_close(ga, gb, rtol=tol, atol=tol * gb.abs().max().item())


SURROGATES = {
    "atan": lambda: sj_surrogate.ATan(alpha=2.0),
    "sigmoid": lambda: sj_surrogate.Sigmoid(alpha=4.0),
    "rect": lambda: sj_surrogate.Rect(alpha=0.8),
    "quadratic": lambda: sj_surrogate.PiecewiseQuadratic(alpha=1.25),
}
CASES = [
    ("LIFNode", d, r, dr, sg)
    for d, r, dr, sg in itertools.product([False, True], [0.0, None], [False, True], ["atan", "sigmoid"])
]
CASES += [
    ("IFNode", False, r, dr, sg) for r, dr, sg in itertools.product([0.0, None], [False, True], ["atan", "sigmoid"])
]
CASES += [("LIFNode", False, -0.2, False, "rect"), ("IFNode", False, 0.0, True, "quadratic")]


@pytest.mark.parametrize("kind,decay_input,v_reset,detach_reset,sg", CASES)
def test_converted_cnn_has_the_same_loss_and_gradients(kind, decay_input, v_reset, detach_reset, sg):
    def neuron():
        kw = dict(
            v_threshold=1.0,
            v_reset=v_reset,
            surrogate_function=SURROGATES[sg](),
            detach_reset=detach_reset,
            step_mode="m",
        )
        if kind == "LIFNode":
            return sj_neuron.LIFNode(tau=2.5, decay_input=decay_input, **kw)
        return sj_neuron.IFNode(**kw)

    model = _cnn(neuron)
    converted = convert(copy.deepcopy(model), method="stbp")
    lifs = [m for m in converted.modules() if isinstance(m, LIF)]
    assert len(lifs) == 3 and not any(type(m).__name__ == kind for m in converted.modules())
    T = 4 + CASES.index((kind, decay_input, v_reset, detach_reset, sg)) % 5  # T = 4..8 across the cases
    x, labels = _data(T)
    x = x * 2.0 if decay_input else x  # decay_input scales the input by 1/tau
    sj_functional.reset_net(model)  # spikingjelly keeps v between calls; na_cuda.nn.LIF starts at rest
    before = _loss_and_grads(model, x, labels)
    _assert_same(before, _loss_and_grads(converted, x, labels))
    # twice: the converted model needs no reset between batches (each call starts at rest)
    sj_functional.reset_net(model)
    _assert_same(_loss_and_grads(model, x, labels), _loss_and_grads(converted, x, labels))


def test_converted_to_na_trains_on_random_data():
    model = convert(_cnn(lambda: sj_neuron.LIFNode(tau=2.0, step_mode="m")), method="na", backend="torch")
    assert all(type(m.rule).__name__ == "NA" for m in model.modules() if isinstance(m, LIF))
    x, labels = _data(5, seed=2)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    losses = []
    for _ in range(8):
        loss = _loss_and_grads(model, x, labels)[0]
        losses.append(loss.item())
        opt.step()
    assert losses[-1] < 0.8 * losses[0], losses


def test_conversion_keeps_sharing_structure_and_mode():
    shared = sj_neuron.IFNode(step_mode="m")
    model = nn.ModuleDict({"a": nn.Sequential(nn.Identity(), shared), "b": shared}).eval()
    out = convert(model)
    assert out is model and out["b"] is out["a"][1] and isinstance(out["b"], LIF)
    assert not out["b"].training
    root = convert(sj_neuron.LIFNode(tau=4.0, v_reset=None, step_mode="m"), method="stbp")
    assert isinstance(root, LIF) and root.neuron.v_reset is None and root.neuron.tau_m == 4.0


@pytest.mark.parametrize(
    "make,method,match",
    [
        (lambda: sj_neuron.LIFNode(step_mode="s"), "na", r"1 \(spikingjelly LIFNode\): step_mode='s'"),
        (lambda: sj_neuron.ParametricLIFNode(step_mode="m"), "na", r"1 \(spikingjelly ParametricLIFNode\).*learnable"),
        (lambda: sj_neuron.LIFNode(step_mode="m", store_v_seq=True), "na", "store_v_seq=True"),
        (
            lambda: sj_neuron.LIFNode(step_mode="m", surrogate_function=sj_surrogate.SoftSign()),
            "stbp",
            "surrogate SoftSign has no na_cuda equivalent",
        ),
        (
            lambda: sj_neuron.LIFNode(step_mode="m", surrogate_function=sj_surrogate.Sigmoid(spiking=False)),
            "stbp",
            "not a spiking spikingjelly surrogate",
        ),
    ],
)
def test_unmappable_settings_raise_with_the_module_path(make, method, match):
    model = nn.Sequential(nn.Linear(3, 3), make())
    with pytest.raises(ValueError, match=match):
        convert(model, method=method)


def test_other_errors_name_the_setting():
    def model():
        return nn.Sequential(sj_neuron.LIFNode(step_mode="m", surrogate_function=sj_surrogate.SoftSign()))

    assert isinstance(convert(model(), method="na")[0], LIF)  # NA uses no surrogate: any one converts
    hooked = model()
    hooked[0].register_forward_hook(lambda *a: None)
    with pytest.raises(ValueError, match="0 .*_forward_hooks"):
        convert(hooked)
    precise = model()
    precise[0]._neuron_precision = ("bf16", "fp32", "fp32")  # what spikingjelly's precision API sets
    with pytest.raises(ValueError, match="neuron precision"):
        convert(precise)
    with pytest.raises(TypeError, match="tau_m come from each converted neuron"):
        convert(model(), tau_m=3.0)
    with pytest.raises(TypeError, match="detach_reset, surrogate come from"):
        convert(model(), method="stbp", surrogate="atan", detach_reset=True)
    with pytest.raises(TypeError, match=r"cannot convert 0 \(spikingjelly LIFNode\).*clipp"):
        convert(model(), clipp=3.0)
    with pytest.raises(ValueError, match="`method` must be 'na' or 'stbp'"):
        convert(model(), method="tssl")
    with pytest.raises(ValueError, match="found no spikingjelly LIFNode or IFNode"):
        convert(nn.Linear(2, 2))
    with pytest.raises(TypeError, match="must be a torch.nn.Module"):
        convert("model")


try:
    import snntorch as snn
except ImportError:
    snn = None
needs_snntorch = pytest.mark.skipif(snn is None, reason="snnTorch is not installed (pip install --no-deps snntorch)")


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(beta=0.75), "subtracts the threshold a step late"),
        (dict(beta=1.0), r"exactly na_cuda.nn.LIF\(v_reset=None, tau_m=inf"),
        (dict(beta=0.75, reset_mechanism="zero"), r"exactly na_cuda.nn.LIF\(v_reset=0.0, tau_m=4.0"),
        (dict(beta=0.75, learn_beta=True), "no na_cuda equivalent either"),
        (dict(beta=0.75, reset_mechanism="none"), "reset_mechanism='none'"),
    ],
)
@needs_snntorch
def test_snntorch_leaky_raises_saying_why(kw, match):
    model = nn.Sequential(nn.Linear(2, 2), snn.Leaky(**kw))
    with pytest.raises(ValueError, match=r"cannot convert 1 \(snnTorch Leaky\): snnTorch neurons are single-step"):
        convert(model)
    with pytest.raises(ValueError, match=match):
        convert(model)


@needs_snntorch
def test_snntorch_zero_reset_equivalent_is_exact():
    """The LIF that the Leaky(reset_mechanism="zero") message names computes what the Leaky loop computes:
    same spikes, same STBP gradient (snnTorch's spikes are float32, so its gradients pass through float32)."""
    leaky = snn.Leaky(beta=0.75, reset_mechanism="zero")
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(10, 300, generator=g, dtype=torch.float64) * 1.5).requires_grad_(True)
    w = torch.randn(10, 300, generator=g, dtype=torch.float64)
    mem, spikes = leaky.reset_mem(), []
    for t in range(x.shape[0]):
        spk, mem = leaky(x[t], mem)
        spikes.append(spk)
    ref = torch.stack(spikes)
    (ref * w).sum().backward()
    grad_ref, x.grad = x.grad, None
    ours = na_cuda.lif(
        x,
        tau_m=4.0,
        threshold=1.0,
        v_reset=0.0,
        strict_threshold=True,
        detach_reset=True,
        output="spike",
        method="stbp",
        surrogate="atan",
        surrogate_alpha=2.0,
    )
    (ours * w).sum().backward()
    assert torch.equal(ours, ref.double()) and 0.05 < ref.mean() < 0.6
    torch.testing.assert_close(x.grad, grad_ref, rtol=1e-6, atol=1e-6)
