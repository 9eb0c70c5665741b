"""Public API: argument errors, backend selection, modules, torch.library opcheck and torch.compile."""

from __future__ import annotations

import copy
import inspect
import io
import math
import threading
import warnings

import pytest
import torch
from helpers import DEVICES, METHOD_CASES, case_id, make_grad, make_input, needs_native, params
from torch import nn

import na_cuda
from na_cuda import NA, LifParams, reference
from na_cuda.nn import LIF, SeqToANN, enable_grad_rescale


# --------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(tau_m=0.99), ValueError, "tau_m"),
        (dict(tau_m=0.5), ValueError, "tau_m"),
        (dict(tau_m=math.nan), ValueError, "tau_m"),
        (dict(tau_s=0.9), ValueError, "tau_s"),
        (dict(threshold=0.0), ValueError, "threshold"),
        (dict(threshold=-1.0), ValueError, "threshold"),
        (dict(threshold=math.inf), ValueError, "threshold"),
        (dict(threshold="1"), TypeError, "threshold"),
        (dict(clip=0.0), ValueError, "clip"),
        (dict(clip=math.inf), ValueError, "clip"),
        (dict(dist_power=2), ValueError, "dist_power"),
        (dict(dist_power=0), ValueError, "dist_power"),
        (dict(dist_power=3.0), ValueError, "dist_power"),
        (dict(dist_power=True), ValueError, "dist_power"),
        (dict(method="bptt"), ValueError, "method"),
        (dict(output="voltage"), ValueError, "output"),
        (dict(first_order="second"), ValueError, "first_order"),
        (dict(backend="cupy"), ValueError, "backend"),
        (dict(method="stbp", surrogate="gauss"), ValueError, "surrogate"),
        (dict(method="stbp", surrogate_alpha=0.0), ValueError, "surrogate_alpha"),
        (dict(method="stbp", surrogate_alpha=-1.0), ValueError, "surrogate_alpha"),
        (dict(method="stbp", detach_reset=1), TypeError, "detach_reset"),
        (dict(method="tssl", output="spike"), ValueError, "tssl"),
    ],
)
def test_bad_arguments_raise_naming_the_argument(kwargs, exc, match):
    c = torch.rand(3, 4)
    with pytest.raises(exc, match=match):
        na_cuda.lif(c, **kwargs)
    with pytest.raises(exc, match=match):
        na_cuda.nn.LIF(**kwargs)


@pytest.mark.parametrize(
    "c,exc,match",
    [
        (torch.tensor(1.0), ValueError, "0-dim"),
        (torch.zeros(0, 4), ValueError, "T = c.shape\\[0\\] >= 1"),
        (torch.zeros(3, 4, dtype=torch.int64), TypeError, "float"),
        (torch.zeros(3, 4, dtype=torch.bool), TypeError, "float"),
        ([1.0, 2.0], TypeError, "torch.Tensor"),
    ],
)
def test_bad_input_tensor(c, exc, match):
    with pytest.raises(exc, match=match):
        na_cuda.lif(c)


@needs_native
def test_direct_op_calls_are_checked_in_cpp():
    c = torch.rand(3, 4)
    with pytest.raises(RuntimeError, match="tau_m"):
        torch.ops.na_cuda.lif_na(c, 0.5, 2.0, 1.0, 0.0, False, False, "psc", "paper", 3, 10.0)
    with pytest.raises(RuntimeError, match="surrogate"):
        torch.ops.na_cuda.lif_stbp(c, 5.0, 2.0, 1.0, 0.0, False, False, "psc", "gauss", 1.0, True)
    with pytest.raises(RuntimeError, match="output"):
        torch.ops.na_cuda.lif_forward(c, 5.0, 2.0, 1.0, 0.0, False, False, "voltage")
    with pytest.raises(RuntimeError, match="dist_power"):
        torch.ops.na_cuda.na_backward(c, c, 5.0, 2.0, 1.0, 0.0, False, False, "psc", "paper", 2, 10.0)
    with pytest.raises(RuntimeError, match="grad_out"):
        torch.ops.na_cuda.na_backward(torch.rand(3, 5), c, 5.0, 2.0, 1.0, 0.0, False, False, "psc", "paper", 3, 10.0)
    with pytest.raises(RuntimeError, match="0-dim"):
        torch.ops.na_cuda.lif_tssl(torch.tensor(1.0), 5.0, 2.0, 1.0, 0.0, False, False, "psc")
    with pytest.raises(RuntimeError, match="float16, bfloat16"):
        torch.ops.na_cuda.lif_forward(torch.ones(3, 4, dtype=torch.int32), 5.0, 2.0, 1.0, 0.0, False, False, "psc")


@needs_native
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU to build a CPU/CUDA mismatch")
@pytest.mark.cuda
def test_device_mismatch_between_input_and_grad():
    c = torch.rand(3, 4, device="cuda")
    with pytest.raises(RuntimeError, match="same device"):
        torch.ops.na_cuda.na_backward(torch.rand(3, 4), c, 5.0, 2.0, 1.0, 0.0, False, False, "psc", "paper", 3, 10.0)


# --------------------------------------------------------------------------------------------- backends
def test_backends_report():
    info = na_cuda.backends()
    for key in ("native_loaded", "cpu", "cuda", "cuda_version", "cuda_archs", "auto", "torch_version"):
        assert key in info
    assert info["auto"]["cpu"] == ("native" if info["cpu"] else "torch")


def test_native_backend_without_kernel_raises_clearly():
    c = torch.rand(3, 4, device="meta")
    with pytest.raises(RuntimeError, match='backend="native" has no kernel for meta'):
        na_cuda.lif(c, backend="native")


def test_auto_backend_falls_back_with_one_warning():
    c = torch.rand(3, 4, device="meta")
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always", na_cuda.NativeBackendWarning)
        y = na_cuda.lif(c)
    assert y.shape == c.shape
    msgs = [str(w.message) for w in rec if issubclass(w.category, na_cuda.NativeBackendWarning)]
    assert len(msgs) == 1 and "pip install --no-build-isolation" in msgs[0]


@pytest.mark.parametrize("case", METHOD_CASES, ids=case_id)
def test_torch_backend_matches_native_through_autograd(case):
    p = params(**case)
    kwargs = {k: v for k, v in p.items() if k != "backend"}
    c = make_input(5, (3, 7))
    g = make_grad(c)
    grads = {}
    for backend in ("torch", "auto"):
        x = c.clone().requires_grad_(True)
        y = na_cuda.lif(x, backend=backend, **kwargs)
        y.backward(g)
        grads[backend] = (y.detach(), x.grad)
    torch.testing.assert_close(grads["auto"][0], grads["torch"][0], rtol=0, atol=0)
    torch.testing.assert_close(grads["auto"][1], grads["torch"][1], rtol=1e-12, atol=1e-12)


def test_switching_method_changes_gradients_not_outputs():
    torch.manual_seed(0)
    x = torch.rand(5, 2, 1, 8, 8) * 3
    outs, grads = [], []
    for method in ("na", "stbp", "tssl"):
        torch.manual_seed(1)
        net = _net(method=method)
        y = net(x)
        (y - 0.5).square().sum().backward()  # a target, so silent outputs still get a gradient
        outs.append(y.detach())
        grads.append(net[0].module.weight.grad.clone())
    assert torch.equal(outs[0], outs[1]) and torch.equal(outs[0], outs[2])
    assert not torch.allclose(grads[0], grads[1]) and not torch.allclose(grads[0], grads[2])


# --------------------------------------------------------------------------------------------- modules
def _net(**lif_kwargs) -> nn.Module:
    return nn.Sequential(
        na_cuda.nn.SeqToANN(nn.Conv2d(1, 4, 3, bias=False)),
        na_cuda.nn.LIF(**lif_kwargs),
        na_cuda.nn.SeqToANN(nn.Flatten(), nn.Linear(4 * 6 * 6, 3, bias=False)),
        na_cuda.nn.LIF(**lif_kwargs),
    )


@pytest.mark.parametrize("device", DEVICES)
def test_module_in_sequential_trains(device):
    torch.manual_seed(0)
    net = _net().to(device)
    x = torch.rand(5, 2, 1, 8, 8, device=device) * 3
    y = net(x)
    assert y.shape == (5, 2, 3)
    y.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


def test_module_double_to_and_state_dict_round_trip():
    torch.manual_seed(0)
    net = _net(tau_m=4.0, method="stbp", surrogate="triangle")
    x = torch.rand(4, 2, 1, 8, 8) * 3
    net64 = copy.deepcopy(net).double()
    assert net64(x.double()).dtype == torch.float64
    buf = io.BytesIO()
    torch.save(net.state_dict(), buf)
    other = _net(tau_m=4.0, method="stbp", surrogate="triangle")
    other.load_state_dict(torch.load(io.BytesIO(buf.getvalue())))
    assert torch.equal(net(x), other(x))
    assert "method='stbp'" in repr(net) and "surrogate='triangle'" in repr(net)
    assert list(na_cuda.nn.LIF().state_dict()) == []


def test_module_is_stateless_between_calls():
    lif = na_cuda.nn.LIF()
    c = make_input(5, (10,), dtype=torch.float32)
    assert torch.equal(lif(c), lif(c))


def test_seq_to_ann_folds_time_and_batch():
    lin = nn.Linear(3, 2)
    x = torch.rand(4, 5, 3)
    y = na_cuda.nn.SeqToANN(lin)(x)
    assert torch.equal(y, lin(x.reshape(20, 3)).reshape(4, 5, 2))
    with pytest.raises(ValueError, match="\\[T, B, ...\\]"):
        na_cuda.nn.SeqToANN(lin)(torch.rand(3))
    with pytest.raises(ValueError, match="at least one module"):
        na_cuda.nn.SeqToANN()


@pytest.mark.parametrize("round_decimals", [None, 3])
def test_grad_rescale_matches_the_formula(round_decimals):
    """Spec §4: grad *= 1.2 ln(m_last / (m + 1e-5) + 1.02); the output NA layer uses m_last = m, the hidden
    layers the output layer's mean |grad| after its own rescale (released update_norm), rounded if asked."""
    torch.manual_seed(0)
    x = torch.rand(5, 3, 16) * 1.5
    w = torch.randn(16, 8) * 0.5

    def rnd(m: torch.Tensor) -> torch.Tensor:
        return m if round_decimals is None else torch.round(m, decimals=round_decimals)

    def run(rescale: bool):
        l1, l2 = na_cuda.nn.LIF(), na_cuda.nn.LIF()
        if rescale:
            na_cuda.nn.enable_grad_rescale(nn.ModuleList([l1, l2]), round_decimals)
        c1 = x.clone().requires_grad_(True)
        c2 = l1(c1) @ w
        c2.retain_grad()
        (l2(c2).square().sum() * 20).backward()  # * 20: means of O(0.01-1), where 3-decimal rounding matters
        return c1, c2

    plain1, plain2 = run(False)
    c1, c2 = run(True)
    m2 = plain2.grad.abs().mean()
    scale2 = 1.2 * torch.log(rnd(m2) / (m2 + 1e-5) + 1.02)
    torch.testing.assert_close(c2.grad, plain2.grad * scale2)
    m_last = rnd(c2.grad.abs().mean())  # after the output layer's own rescale
    assert not torch.allclose(m_last, rnd(m2))  # the two readings of the released code differ here
    raw1 = reference.na_backward(
        c2.grad @ w.T,
        x,
        LifParams(tau_m=5.0, tau_s=2.0, threshold=1.0, output="psc"),
        NA(first_order="paper", dist_power=3, clip=10.0),
    )
    m1 = raw1.abs().mean()
    torch.testing.assert_close(c1.grad, raw1 * 1.2 * torch.log(m_last / (m1 + 1e-5) + 1.02))
    # a second pass starts over: the output layer again sets m_last
    c1b, c2b = run(True)
    torch.testing.assert_close(c2b.grad, c2.grad)
    torch.testing.assert_close(c1b.grad, c1.grad)
    with pytest.raises(ValueError, match="no na_cuda.nn.LIF"):
        na_cuda.nn.enable_grad_rescale(nn.Linear(2, 2))


# --------------------------------------------------------------------------------------------- torch.library
@needs_native
@pytest.mark.parametrize(
    "case",
    [
        METHOD_CASES[0],
        METHOD_CASES[5],
        METHOD_CASES[8],
        METHOD_CASES[14],
        METHOD_CASES[17],
        METHOD_CASES[-4],
        METHOD_CASES[-1],
    ],
    ids=case_id,
)
def test_opcheck(case):
    """Every op: the rule's forward op (with its registered autograd), its backward op, and lif_forward."""
    neuron, rule, _ = na_cuda._validate.build(**params(**case))
    c = make_input(4, (3, 5), dtype=torch.float32).requires_grad_(True)
    kwargs = {**neuron.options(), **rule.options()}
    torch.library.opcheck(getattr(torch.ops.na_cuda, f"lif_{rule.name}").default, (c,), kwargs)
    g = make_grad(c.detach())
    torch.library.opcheck(getattr(torch.ops.na_cuda, f"{rule.name}_backward").default, (g, c.detach()), kwargs)
    torch.library.opcheck(torch.ops.na_cuda.lif_forward.default, (c.detach(),), neuron.options())


@needs_native
@pytest.mark.slow
@pytest.mark.parametrize(
    "kw",
    [{}, dict(method="stbp", surrogate="atan", detach_reset=False), dict(method="tssl", v_reset=0.2, decay_input=True)],
    ids=["na", "stbp", "tssl"],
)
def test_torch_compile_fullgraph_matches_eager(kw):
    """Every rule's op (lif_na, lif_stbp, lif_tssl and their backward ops) traces with fullgraph=True."""
    torch.manual_seed(0)
    net = _net(**kw)
    x = torch.rand(5, 2, 1, 8, 8) * 3
    eager = net(x)
    eager.sum().backward()
    g_eager = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    compiled = torch.compile(net, fullgraph=True)
    y = compiled(x)
    y.sum().backward()
    torch.testing.assert_close(y, eager)
    for p, g in zip(net.parameters(), g_eager):
        torch.testing.assert_close(p.grad, g)


def test_import_without_compiled_library_falls_back_to_reference():
    """`import na_cuda` must work when the compiled library is broken: every op runs on the reference."""
    import subprocess
    import sys

    code = (
        "import warnings, torch\n"
        "def broken(path):\n"
        "    raise OSError(f'{path}: invalid ELF header')\n"
        "torch.ops.load_library = broken\n"
        "with warnings.catch_warnings(record=True) as rec:  # said at import, outside any compiled graph\n"
        "    warnings.simplefilter('always')\n"
        "    import na_cuda\n"
        "assert any('no native kernel for cpu' in str(w.message) for w in rec)\n"
        "info = na_cuda.backends(); assert not info['native_loaded'] and info['load_error'], info\n"
        "assert info['auto'] == {'cpu': 'torch', 'cuda': 'torch'}\n"
        "c = torch.rand(4, 3, requires_grad=True) * 2\n"
        "na_cuda.lif(c).sum().backward()\n"
        "try:\n"
        "    na_cuda.lif(c, backend='native')\n"
        "except RuntimeError as e:\n"
        "    assert 'did not load' in str(e) and 'no-build-isolation' in str(e)\n"
        "else:\n"
        "    raise AssertionError('native without _C must raise')\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr


def test_grad_rescale_rejects_bad_rounding():
    for bad in (-1, 2.5, True, "3"):
        with pytest.raises(ValueError, match="round_decimals"):
            na_cuda.nn.GradRescale(bad)
    assert repr(na_cuda.nn.GradRescale(3)) == "GradRescale(round_decimals=3)"


@pytest.mark.parametrize("bad", [1, None, "yes"])
def test_strict_threshold_must_be_bool(bad):
    with pytest.raises(TypeError, match="strict_threshold"):
        na_cuda.lif(torch.rand(3, 4), strict_threshold=bad)


# -- one GradRescale model used from several threads at once ----------------------------------------------
def _rescale_net() -> torch.nn.Module:
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        SeqToANN(torch.nn.Linear(12, 16)),
        LIF(),
        SeqToANN(torch.nn.Linear(16, 8)),
        LIF(),
        SeqToANN(torch.nn.Linear(8, 4)),
        LIF(),
    ).double()
    enable_grad_rescale(net)
    return net


def _input_grad(net: torch.nn.Module, seed: int) -> torch.Tensor:
    x = torch.rand(5, 6, 12, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).requires_grad_(True)
    (net(x) ** 2).sum().backward()
    return x.grad


def test_grad_rescale_from_concurrent_threads_equals_the_serial_run():
    net = _rescale_net()
    serial = [_input_grad(net, s) for s in range(40)]
    net = _rescale_net()
    got: dict[int, torch.Tensor] = {}
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            barrier.wait()
            for s in range(k, 40, 4):
                got[s] = _input_grad(net, s)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    differ = [s for s in range(40) if not torch.equal(got[s], serial[s])]
    assert differ == [], f"{len(differ)} of 40 input gradients differ from the serial run"


# -- the typed objects next to the keywords ------------------------------------------------------------------------
def test_objects_and_keywords_build_the_same_layer():
    """``nn.LIF(neuron=..., rule=...)`` is the keyword form; the keywords and their defaults are the fields'."""
    by_objects = na_cuda.nn.LIF(
        neuron=LifParams(tau_m=3.0, v_reset=None), rule=na_cuda.STBP(surrogate="atan", alpha=2.0), backend="torch"
    )
    by_keywords = na_cuda.nn.LIF(
        tau_m=3.0, v_reset=None, method="stbp", surrogate="atan", surrogate_alpha=2.0, backend="torch"
    )
    assert by_objects.neuron == by_keywords.neuron and by_objects.rule == by_keywords.rule
    assert by_objects.params == by_keywords.params
    c = make_input(6, (2, 4))
    assert torch.equal(by_objects(c), by_keywords(c))
    assert torch.equal(
        na_cuda.lif(c, neuron=LifParams(tau_m=3.0), rule=NA(clip=4.0)), na_cuda.lif(c, tau_m=3.0, clip=4.0)
    )
    sig = inspect.signature(na_cuda.lif).parameters
    assert {k: sig[k].default for k in LifParams.keywords()} == LifParams.keywords()
    assert sig["clip"].default == NA.clip and sig["surrogate_alpha"].default is None and sig["method"].default == "na"


@pytest.mark.parametrize(
    "kw, exc, match",
    [
        (dict(neuron=LifParams(), tau_m=3.0), TypeError, "either neuron= or its keywords"),
        (dict(rule=NA(), clip=3.0), TypeError, "either rule= or its keywords"),
        (dict(rule=NA(), method="stbp"), TypeError, "contradicts"),
        (dict(neuron=dict(tau_m=3.0)), TypeError, "`neuron` must be a na_cuda.LifParams"),
        (dict(rule="na"), TypeError, "`rule` must be a na_cuda.Rule"),
        (dict(tau=3.0), TypeError, "unknown keyword"),
        (dict(alpha=2.0, method="stbp"), TypeError, "unknown keyword"),
    ],
)
def test_objects_next_to_their_keywords_are_refused(kw, exc, match):
    with pytest.raises(exc, match=match):
        na_cuda.nn.LIF(**kw)
    with pytest.raises(exc, match=match):
        na_cuda.lif(torch.rand(3, 2), **kw)


def test_reference_takes_the_objects():
    with pytest.raises(TypeError, match="must be a na_cuda.LifParams"):
        reference.lif_forward(torch.rand(3, 2), 5.0)
    c = make_input(5, (3,), dtype=torch.float64)
    assert torch.equal(reference.lif_forward(c, LifParams()), na_cuda.lif(c, backend="torch"))
