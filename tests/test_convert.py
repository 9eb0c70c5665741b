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
import warnings

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
    with pytest.warns(UserWarning, match=r"used at several places \(b \(= a.1\)\)"):
        out = convert(model)
    assert out is model and out["b"] is out["a"][1] and isinstance(out["b"], LIF)
    assert not out["b"].training
    root = convert(sj_neuron.LIFNode(tau=4.0, v_reset=None, step_mode="m"), method="stbp")
    assert isinstance(root, LIF) and root.neuron.v_reset is None and root.neuron.tau_m == 4.0


def _advice_cases():
    """(make the model, method, what the error says, apply its advice to the model): every refusal with advice."""

    def one(neuron, before=()):
        return lambda: nn.Sequential(*before, nn.Linear(3, 3), neuron())

    def set_attr(name, value):
        return lambda model: setattr(model[-1], name, value)

    return [
        (
            one(lambda: sj_neuron.LIFNode(step_mode="s")),
            "na",
            r"1 \(spikingjelly LIFNode\): step_mode='s'.*set_step_mode\(model, 'm'\)",
            lambda model: sj_functional.set_step_mode(model, "m"),
        ),
        (
            one(lambda: sj_neuron.LIFNode(step_mode="m", store_v_seq=True)),
            "na",
            r"store_v_seq=True.*model\[1\].store_v_seq = False",
            set_attr("store_v_seq", False),
        ),
        (
            one(lambda: sj_neuron.LIFNode(step_mode="m", surrogate_function=sj_surrogate.NonzeroSignLogAbs())),
            "stbp",
            "surrogate NonzeroSignLogAbs has no na_cuda equivalent under method='stbp'.*method='na' converts any",
            "na",
        ),
        (
            one(lambda: sj_neuron.LIFNode(step_mode="m", surrogate_function=sj_surrogate.PiecewiseLeakyReLU(c=0.1))),
            "stbp",
            r"surrogate PiecewiseLeakyReLU has c=0.1; only c=0.01 maps",
            "na",
        ),
        (
            one(lambda: sj_neuron.LIFNode(step_mode="m", surrogate_function=sj_surrogate.Sigmoid(spiking=False))),
            "na",
            r"Sigmoid\(spiking=False\) makes the neuron output a smooth activation.*spiking=True",
            lambda model: setattr(model[1].surrogate_function, "spiking", True),
        ),
        (
            one(
                lambda: sj_neuron.SimpleLIFNode(tau=2.0, decay_input=True, step_mode="m"),
                before=[sj_neuron.IFNode(step_mode="m")],
            ),
            "na",
            r"2 \(spikingjelly SimpleLIFNode\): no na_cuda equivalent.*strict=False",
            "strict=False",
        ),
        (
            one(lambda: _ChargeLIF(step_mode="m"), before=[sj_neuron.IFNode(step_mode="m")]),
            "na",
            r"2 \(spikingjelly _ChargeLIF\): it subclasses LIFNode and overrides neuronal_charge.*strict=False",
            "strict=False",
        ),
        (
            one(lambda: _StepLIF(step_mode="m"), before=[sj_neuron.IFNode(step_mode="m")]),
            "stbp",
            r"2 \(spikingjelly _StepLIF\): .*overrides multi_step_forward, single_step_functional_forward",
            "strict=False",
        ),
        (
            _multistep_neuron_in(sj_layer.MultiStepContainer),
            "na",
            r"0.1 \(spikingjelly LIFNode\): step_mode='m' inside a MultiStepContainer.*step_mode='s'",
            lambda model: setattr(model[0][1], "step_mode", "s"),
        ),
        (
            _multistep_neuron_in(sj_layer.SeqToANNContainer),
            "na",
            r"0.1 \(spikingjelly LIFNode\): step_mode='m' inside a SeqToANNContainer.*\[T\*B, \.\.\.\] as one step",
            lambda model: setattr(model[0][1], "step_mode", "s"),
        ),
    ]


def _multistep_neuron_in(container):
    def make():
        model = nn.Sequential(container(nn.Linear(3, 3), sj_neuron.LIFNode()))
        model[0][1].step_mode = "m"  # after the container's own check (e.g. a later set_step_mode on the neuron)
        return model

    return make


class _PlainLIF(sj_neuron.LIFNode):
    """A user's subclass that changes nothing of the dynamics: it converts."""

    def __init__(self, **kw):
        super().__init__(tau=3.0, **kw)


class _ChargeLIF(sj_neuron.LIFNode):
    def neuronal_charge(self, x):  # meant to change the dynamics (spikingjelly <= 0.0.0.14 style)
        self.v = self.v + x


class _StepLIF(sj_neuron.LIFNode):
    def single_step_functional_forward(self, inputs, states, **kwargs):
        return super().single_step_functional_forward((inputs[0] * 2.0,), states, **kwargs)

    def multi_step_forward(self, x_seq, *args, **kwargs):
        return super().multi_step_forward(x_seq * 2.0, *args, **kwargs)


@pytest.mark.parametrize("case", range(len(_advice_cases())))
def test_every_refusal_names_the_module_and_its_advice_works(case):
    make, method, match, advice = _advice_cases()[case]
    with pytest.raises(ValueError, match=match):
        convert(make(), method=method)
    model, kwargs = make(), {"method": method}
    if advice == "na":
        kwargs["method"] = "na"
    elif advice == "strict=False":
        kwargs["strict"] = False
    else:
        advice(model)
    if advice == "strict=False":
        with pytest.warns(UserWarning, match=r"strict=False\): skipped 1 neuron"):
            out, report = convert(model, return_report=True, **kwargs)
        assert [p for p, _, _ in report.skipped] == ["2"] and [p for p, _, _ in report.converted] == ["0"]
        assert isinstance(out[0], LIF) and not isinstance(out[2], LIF)  # the skipped neuron stays as it was
    else:
        out = convert(model, **kwargs)
        assert sum(isinstance(m, LIF) for m in out.modules()) == 1


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: sj_neuron.ILIFNode(step_mode="m"), "subclasses LIFNode and overrides multi_step_forward"),
        (
            lambda: sj_neuron.LIAFNode(act=nn.ReLU(), threshold_related=False, step_mode="m"),
            "subclasses LIFNode and overrides single_step_functional_forward",
        ),
        (lambda: sj_neuron.SimpleLIFNode(tau=2.0, decay_input=True, step_mode="m"), "no na_cuda equivalent"),
        (lambda: sj_neuron.PSN(T=4), "no na_cuda equivalent"),
    ],
)
def test_spikingjelly_neurons_without_a_mapper_are_refused(make, match):
    """spikingjelly's own LIFNode subclasses and other neuron families (issue 17: none may pass silently)."""
    with pytest.raises(ValueError, match=match):
        convert(nn.Sequential(nn.Identity(), make()))


def test_subclass_that_overrides_nothing_converts_exactly():
    model = nn.Sequential(sj_layer.SeqToANNContainer(nn.Linear(4, 5)), _PlainLIF(step_mode="m")).double()
    out = convert(copy.deepcopy(model), method="stbp")
    assert isinstance(out[1], LIF) and out[1].neuron.tau_m == 3.0
    x = torch.rand(6, 3, 4, dtype=torch.float64) * 4.0
    sj_functional.reset_net(model)
    assert torch.equal(out(x), model(x)) and model(x).sum() > 0


def test_hooks_refused_until_removed():
    model = nn.Sequential(sj_neuron.LIFNode(step_mode="m"))
    handle = model[0].register_forward_hook(lambda *a: None)
    with pytest.raises(ValueError, match=r"0 .*_forward_hooks.*handle.remove\(\)"):
        convert(model)
    handle.remove()
    assert isinstance(convert(model)[0], LIF)


def test_hooks_on_an_unwrapped_container_refused_until_removed():
    model = nn.Sequential(sj_layer.MultiStepContainer(sj_neuron.LIFNode()))
    handle = model[0].register_forward_pre_hook(lambda *a: None)
    with pytest.raises(ValueError, match=r"0.0 .*its MultiStepContainer \(unwrapped\) has _forward_pre_hooks"):
        convert(model)
    handle.remove()
    assert isinstance(convert(model)[0], LIF)


def test_neuron_precision_refused_until_removed():
    model = nn.Sequential(sj_neuron.LIFNode(step_mode="m"))
    model[0]._neuron_precision = ("bf16", "fp32", "fp32")  # what spikingjelly's precision API sets
    with pytest.raises(ValueError, match=r"neuron precision.*model\[0\]._neuron_precision = None"):
        convert(model)
    model[0]._neuron_precision = None
    assert isinstance(convert(model)[0], LIF)


def _sj_vs_converted(model, x, method="stbp"):
    """Outputs and d(out * w)/dx of the spikingjelly model (reset first) and of its conversion, float64."""
    converted = convert(copy.deepcopy(model), method=method)
    w = torch.randn_like(model(x.clone()))
    results = []
    for m in (model, converted):
        sj_functional.reset_net(m)
        xx = x.clone().requires_grad_(True)
        out = m(xx)
        (out * w).sum().backward()
        results.append((out.detach(), xx.grad))
    return converted, results


def test_multistep_container_is_unwrapped_exactly():
    torch.manual_seed(0)
    model = nn.Sequential(
        sj_layer.MultiStepContainer(
            nn.Linear(4, 6), sj_neuron.LIFNode(tau=2.5), nn.Linear(6, 5), sj_neuron.IFNode(v_reset=None)
        ),
        sj_layer.MultiStepContainer(sj_neuron.LIFNode(decay_input=False)),
    ).double()
    converted, ((o1, g1), (o2, g2)) = _sj_vs_converted(model, torch.rand(7, 3, 4, dtype=torch.float64) * 3.0)
    assert isinstance(converted[1], LIF) and isinstance(converted[0][1], LIF) and isinstance(converted[0][3], LIF)
    assert type(converted[0][0]) is sj_layer.MultiStepContainer  # the Linear is still stepped by a container
    assert torch.equal(o1, o2) and 0 < o1.mean() < 1
    torch.testing.assert_close(g2, g1, rtol=1e-12, atol=1e-12)


def test_neuron_in_seq_to_ann_container_is_one_step():
    """In a SeqToANNContainer a single-step neuron runs one step on [T*B, ...]: converted to a one-step LIF."""
    torch.manual_seed(1)
    model = nn.Sequential(sj_layer.SeqToANNContainer(nn.Linear(4, 6), sj_neuron.LIFNode(tau=2.0))).double()
    converted, ((o1, g1), (o2, g2)) = _sj_vs_converted(model, torch.rand(5, 3, 4, dtype=torch.float64) * 6.0)
    assert sum(isinstance(m, LIF) for m in converted.modules()) == 1
    assert torch.equal(o1, o2) and 0 < o1.mean() < 1
    torch.testing.assert_close(g2, g1, rtol=1e-12, atol=1e-12)


def test_neuron_in_a_recurrent_container_is_refused_with_the_container():
    """spikingjelly's recurrent/time-last containers step their content themselves, and set_step_mode leaves it
    alone: the refusal names the container (not set_step_mode), and strict=False keeps it."""
    cell = sj_layer.ElementWiseRecurrentContainer(sj_neuron.LIFNode(), element_wise_function=lambda x, y: x + y)
    model = nn.Sequential(sj_neuron.IFNode(step_mode="m"), sj_layer.MultiStepContainer(cell))
    with pytest.raises(
        ValueError,
        match=r"1.0.sub_module \(spikingjelly LIFNode\): it is inside "
        r"ElementWiseRecurrentContainer at 1.0, .*strict=False",
    ):
        convert(model)
    with pytest.warns(UserWarning, match="skipped 1 neuron"):
        out = convert(model, strict=False)
    assert isinstance(out[0], LIF) and out[1][0] is cell and type(cell.sub_module) is sj_neuron.LIFNode


def test_strict_false_report_and_verbose(capsys):
    skip = sj_neuron.SimpleLIFNode(tau=2.0, decay_input=True, step_mode="m")
    model = nn.Sequential(sj_neuron.IFNode(step_mode="m"), nn.Linear(2, 2), skip)
    with pytest.warns(UserWarning, match="SimpleLIFNode"):
        out, report = convert(model, strict=False, verbose=True, return_report=True)
    assert out is model and isinstance(model[0], LIF) and model[2] is skip
    assert report.converted == [("0", "IFNode", model[0])]
    assert [(p, t) for p, t, _ in report.skipped] == [("2", "SimpleLIFNode")]
    printed = capsys.readouterr().out
    assert "converted 1, skipped 1" in printed and "converted 0 (IFNode) -> LIF" in printed
    with pytest.raises(TypeError, match="`strict` must be True or False"):
        convert(model, strict="no")


@pytest.mark.parametrize(
    "method,options,error,match",
    [
        ("stbp", dict(clip=3.0), TypeError, "`clip` is an option of method='na'.*convert with method='na'"),
        ("stbp", dict(dist_power=1), TypeError, "`dist_power` is an option of method='na'"),
        ("stbp", dict(grad_rescale=None), TypeError, "grad_rescale is NA's layer-wise"),
        ("na", dict(surrogate="atan"), TypeError, "`surrogate` is STBP's.*comes from each neuron"),
        ("na", dict(detach_reset=False), TypeError, "`detach_reset` is STBP's, which method='na' would ignore"),
        ("na", dict(strict_threshold=True), ValueError, r"strict_threshold=True changes the forward.*v >= v_thr"),
        ("stbp", dict(strict_threshold=True), ValueError, "strict_threshold=True changes the forward"),
        ("na", dict(tau_s=3.0), TypeError, "tau_s is the PSC time constant.*no effect"),
        ("na", dict(first_order="taylor"), TypeError, "first_order only changes NA's gradient of a PSC"),
        ("na", dict(clipp=3.0), TypeError, "unknown rule option `clipp`; method='na' takes dist_power, clip"),
        ("na", dict(tau_m=3.0), TypeError, "tau_m come from each converted neuron"),
        ("stbp", dict(surrogate="atan", detach_reset=True), TypeError, "detach_reset, surrogate come from"),
    ],
)
def test_rule_options_checked_against_the_method_and_the_forward(method, options, error, match):
    def model():
        return nn.Sequential(sj_neuron.LIFNode(step_mode="m"))

    with pytest.raises(error, match=match) as e:
        convert(model(), method=method, **options)
    assert isinstance(convert(model(), method=method)[0], LIF)  # the advice "leave it out" works
    if "or convert with method='na'" in str(e.value):
        assert isinstance(convert(model(), method="na", **options)[0], LIF)  # and so does the other one


def test_accepted_rule_options_reach_the_lif():
    rescale = na_cuda.nn.GradRescale()
    lif = convert(sj_neuron.LIFNode(step_mode="m"), dist_power=1, clip=3.0, backend="torch", grad_rescale=rescale)
    assert lif.rule.dist_power == 1 and lif.rule.clip == 3.0 and lif.backend == "torch" and lif.grad_rescale is rescale
    assert convert(sj_neuron.LIFNode(step_mode="m"), strict_threshold=False).neuron.strict_threshold is False
    assert convert(sj_neuron.LIFNode(step_mode="m"), method="stbp", backend="torch").backend == "torch"


def test_strict_threshold_would_change_the_forward():
    """Why strict_threshold=True is refused: spikingjelly fires on v == threshold (issue 17: [1,1,1] vs [0,1,0])."""
    x = torch.ones(3, 1, dtype=torch.float64)
    sj = sj_neuron.IFNode(step_mode="m")
    assert sj(x).flatten().tolist() == [1.0, 1.0, 1.0]
    assert convert(sj_neuron.IFNode(step_mode="m"))(x).flatten().tolist() == [1.0, 1.0, 1.0]


def test_converted_lif_speaks_spikingjelly_step_mode_protocol():
    model = convert(nn.Sequential(sj_layer.Linear(4, 3, step_mode="m"), sj_neuron.LIFNode(step_mode="m")))
    assert model[1].step_mode == "m"
    sj_functional.set_step_mode(model, "m")  # a no-op for the LIF
    with pytest.raises(ValueError, match=r"nn.LIF is multi-step only.*got step_mode='s'.*set_step_mode\(model, 'm'\)"):
        sj_functional.set_step_mode(model, "s")  # issue 17: this silently ran the LIF across the batch
    sj_functional.set_step_mode(model, "m")  # the way out
    x = torch.rand(5, 8, 4) * 3
    out = model(x)
    sj_functional.reset_net(model)  # calls LIF.reset(), a no-op
    model[1].reset()
    assert torch.equal(model(x), out) and out.shape == (5, 8, 3)


def test_reset_net_after_convert_resets_dropout():
    """layer.Dropout keeps its mask until reset_net: the converted model still needs reset_net in the loop."""
    model = nn.Sequential(sj_layer.Dropout(0.5, step_mode="m"), sj_neuron.IFNode(step_mode="m"))
    sj_functional.reset_net(model)  # fills spikingjelly's reset cache with the old neuron
    model = convert(model).train()
    model(torch.ones(3, 4, 6))
    with pytest.raises(RuntimeError):  # the frozen mask does not fit a new batch size
        model(torch.ones(3, 5, 6))
    sj_functional.reset_net(model)
    assert model(torch.ones(3, 5, 6)).shape == (3, 5, 6)


def test_other_errors_name_the_setting():
    with pytest.raises(ValueError, match="`method` must be 'na' or 'stbp'"):
        convert(nn.Sequential(sj_neuron.LIFNode(step_mode="m")), method="tssl")
    with pytest.raises(ValueError, match="found no spikingjelly neuron"):
        convert(nn.Linear(2, 2))
    with pytest.raises(TypeError, match="must be a torch.nn.Module"):
        convert("model")
    with pytest.raises(ValueError, match=r"cannot convert LIFNode \(spikingjelly LIFNode\): step_mode='s'"):
        convert(sj_neuron.LIFNode(step_mode="s"))


try:
    import snntorch as snn
except ImportError:
    snn = None
needs_snntorch = pytest.mark.skipif(snn is None, reason="snnTorch is not installed (pip install --no-deps snntorch)")


@pytest.mark.parametrize("kw", [dict(beta=0.75), dict(beta=0.75, learn_beta=True), dict(beta=1.0)])
@needs_snntorch
def test_snntorch_leaky_names_from_snntorch_with_pasteable_code(kw):
    model = nn.Sequential(nn.Linear(2, 2), snn.Leaky(**kw))
    with warnings.catch_warnings(), pytest.raises(ValueError, match=r"1 \(snnTorch Leaky\): snnTorch neurons") as e:
        warnings.simplefilter("error")  # issue 17: learn_beta=True printed torch's tensor-to-scalar warning
        convert(model)
    code = 'lif = na_cuda.nn.LIF.from_snntorch(model[1], method="stbp")'
    assert code in str(e.value) and 'method="na"' in str(e.value)
    if hasattr(LIF, "from_snntorch"):  # the advice works: the pasted code builds the neuron
        namespace = {"na_cuda": na_cuda, "model": model}
        exec(code, namespace)
        assert isinstance(namespace["lif"], LIF)
    with pytest.warns(UserWarning, match="skipped 1 neuron"):
        assert convert(model, strict=False) is model


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


@pytest.mark.parametrize("kind", ["LIFNode", "ParametricLIFNode"])
@pytest.mark.parametrize("strict", [True, False])
def test_a_neuron_used_twice_becomes_one_lif_at_both_places(kind, strict):
    """named_children() yields a module once: the second use of a shared neuron was left unconverted."""
    n = getattr(sj_neuron, kind)(step_mode="m")
    model = nn.Sequential(n, nn.Identity(), n, nn.Sequential(n))
    with pytest.warns(UserWarning, match=r"used at several places \(2 \(= 0\), 3.0 \(= 0\)\).*carries the neuron's v"):
        out, report = convert(model, strict=strict, return_report=True)
    assert isinstance(out[0], LIF) and out[2] is out[0] and out[3][0] is out[0]
    assert [path for path, _, _ in report.converted] == ["0"]
    assert report.shared == [("2", "0"), ("3.0", "0")]
    assert "shared    2: the same module as 0" in str(report)
    assert len(list(out.parameters())) == (1 if kind == "ParametricLIFNode" else 0)  # one w, still shared
    s = getattr(sj_neuron, kind)(step_mode="s")
    inside = sj_layer.MultiStepContainer(s, nn.Identity(), s)
    with pytest.warns(UserWarning, match="used at several places"):
        out, report = convert(nn.Sequential(inside), return_report=True)
    assert not any(_is_sj(m) for m in out.modules()) and report.shared == [("0.2", "0.0")]


def _is_sj(m: nn.Module) -> bool:
    return type(m).__module__.startswith("spikingjelly.activation_based.neuron")


def test_convert_is_idempotent():
    model = convert(_cnn(lambda: sj_neuron.LIFNode(step_mode="m")))
    again, report = convert(model, return_report=True)
    assert again is model and report.converted == [] and report.skipped == []
    lif = LIF()
    assert convert(lif) is lif


def test_meta_plif_names_the_module_and_the_fix():
    with torch.device("meta"):
        model = nn.Sequential(nn.Linear(2, 2), sj_neuron.ParametricLIFNode(step_mode="m"))
    with pytest.raises(ValueError, match=r"cannot convert 1 .*w is on the meta device.*to_empty"):
        convert(model)
