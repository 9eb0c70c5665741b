"""Learnable decay (docs/algorithm.md §12) and snnTorch's reset after the leak (§11), every rule and backend.

- native CPU kernels against the reference (float64, 1e-12 relative): forward, grad_c and dL/dlam, for every rule x
  reset (hard, soft, after the leak: subtract / none) x decay_input x output, one decay per layer and per neuron;
- the reference's dL/dlam against finite differences where a derivative exists (STBP, membrane output, spike trains
  unchanged by the perturbation), and against the rule's own input gradient (NA, TSSL-BP: dL/dlam =
  sum_t grad_c[t] (v[t-1] - [decay_input] c[t]) / beta, the chain rule through du[t]);
- nn.LIF's parametrisations (PLIF sigmoid, snnTorch beta) and the argument checks.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from helpers import RESETS, make_grad, make_input, needs_native

import na_cuda
from na_cuda.reference import _core

CASES = [
    (method, reset, di, out)
    for method, reset, di, out in itertools.product(
        ("na", "stbp", "tssl"), RESETS, (False, True), ("psc", "spike", "membrane")
    )
    if not (method == "tssl" and (out != "psc" or RESETS[reset]["v_reset"] is None))
    and not (method == "na" and out == "membrane")
]


def _run(backend: str, c: torch.Tensor, g: torch.Tensor, decay, **kw):
    x = c.clone().requires_grad_(True)
    d = None if decay is None else decay.clone().requires_grad_(True)
    y = na_cuda.lif(x, backend=backend, decay=d, **kw)
    y.backward(g)
    return y.detach(), x.grad, None if d is None else d.grad


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))


@needs_native
@pytest.mark.parametrize("per_neuron", [False, True], ids=["layer", "neuron"])
@pytest.mark.parametrize("method,reset,di,out", CASES)
def test_native_equals_reference(method, reset, di, out, per_neuron):
    c = make_input(14, (3, 24), seed=3, scale=1.1)
    g = make_grad(c)
    decay = (
        torch.linspace(0.15, 0.95, 24, dtype=torch.float64) if per_neuron else torch.tensor(0.7, dtype=torch.float64)
    )
    kw = dict(method=method, decay_input=di, output=out, tau_m=3.0, **RESETS[reset])
    if method == "stbp":
        kw["surrogate"] = "atan"
    y0, gc0, gd0 = _run("torch", c, g, decay, **kw)
    y1, gc1, gd1 = _run("native", c, g, decay, **kw)
    assert torch.equal(y0, y1) or _rel(y1, y0) < 1e-15
    assert _rel(gc1, gc0) < 1e-12
    assert gd0.shape == decay.shape and _rel(gd1, gd0) < 1e-12


@needs_native
@pytest.mark.parametrize("method,reset,di,out", [c for c in CASES if c[1] in ("subtract", "none")])
def test_after_leak_reset_fixed_tau(method, reset, di, out):
    """The reset after the leak without a decay tensor: native = reference (forward bits, gradients 1e-12)."""
    c = make_input(17, (40,), seed=5, scale=1.2)
    g = make_grad(c)
    kw = dict(method=method, decay_input=di, output=out, tau_m=4.0, **RESETS[reset])
    y0, gc0, _ = _run("torch", c, g, None, **kw)
    y1, gc1, _ = _run("native", c, g, None, **kw)
    assert torch.equal(y0, y1)
    assert _rel(gc1, gc0) < 1e-12


def test_after_leak_forward_is_snntorch_recursion():
    """§11: u[t] = lam u[t-1] + x[t] - thr s[t-1] (subtract) / without the subtraction (none), s = u > thr."""
    c = make_input(20, (30,), seed=2, scale=1.3)
    lam, thr = 0.8, 0.9
    for mech in ("subtract", "none"):
        u_prev = torch.zeros(30, dtype=torch.float64)
        s_prev = torch.zeros(30, dtype=torch.float64)
        want_u, want_s = [], []
        for t in range(20):
            u = lam * u_prev + c[t] - (thr * s_prev if mech == "subtract" else 0.0)
            s = (u > thr).double()
            want_u.append(u)
            want_s.append(s)
            u_prev, s_prev = u, s
        kw = dict(v_reset=None, reset_mechanism=mech, threshold=thr, strict_threshold=True, backend="torch")
        mem = na_cuda.lif(c, method="stbp", output="membrane", decay=torch.tensor(lam, dtype=torch.float64), **kw)
        spk = na_cuda.lif(c, output="spike", decay=torch.tensor(lam, dtype=torch.float64), **kw)
        assert torch.equal(mem, torch.stack(want_u)) and torch.equal(spk, torch.stack(want_s))


@pytest.mark.parametrize("reset", ["hard", "soft", "subtract", "none"])
@pytest.mark.parametrize("di", [False, True])
def test_stbp_membrane_decay_gradient_is_the_derivative(reset, di):
    """STBP with the membrane output and a detached reset is the exact derivative of sum(G u) while no spike flips:
    the reference's dL/dlam equals central finite differences (float64)."""
    c = make_input(10, (50,), seed=7, scale=1.0)
    g = make_grad(c)
    kw = dict(method="stbp", output="membrane", decay_input=di, backend="torch", **RESETS[reset])
    lam = torch.full((50,), 0.6, dtype=torch.float64)
    _, _, gd = _run("torch", c, g, lam, **{k: v for k, v in kw.items() if k != "backend"})
    h = 1e-6
    spk = [na_cuda.lif(c, output="spike", decay=lam + s * h, **RESETS[reset], decay_input=di) for s in (-1, 1)]
    same = (spk[0] == spk[1]).all(0)  # neurons whose spike trains the perturbation leaves alone
    assert same.sum() > 10
    up = (na_cuda.lif(c, decay=lam + h, **kw) * g).sum(0)
    dn = (na_cuda.lif(c, decay=lam - h, **kw) * g).sum(0)
    fd = (up - dn) / (2 * h)
    assert torch.allclose(gd[same], fd[same], rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("method", ["na", "tssl"])
@pytest.mark.parametrize("reset", ["hard", "soft", "subtract"])
@pytest.mark.parametrize("di", [False, True])
def test_decay_gradient_is_the_rules_du_times_direct_partial(method, reset, di):
    """NA / TSSL-BP define no derivative of the forward; their dL/dlam (§12) is their dL/du[t] = grad_c[t] / beta
    times the direct partial du[t]/dlam = v[t-1] - [decay_input] c[t], computed here from the reference forward."""
    if method == "tssl" and RESETS[reset]["v_reset"] is None:
        pytest.skip("TSSL-BP is defined for a reset to rest")
    c = make_input(12, (60,), seed=9, scale=1.1)
    g = make_grad(c)
    lam = torch.linspace(0.2, 0.9, 60, dtype=torch.float64)
    kw = dict(method=method, decay_input=di, tau_m=3.0, **RESETS[reset])
    _, gc, gd = _run("torch", c, g, lam, **kw)
    neuron = na_cuda.LifParams(tau_m=3.0, decay_input=di, **RESETS[reset])
    core = _core._core(neuron, lam)
    x = c * (1 - lam) if di else c
    u, s, _ = _core._states_2d(x, core)
    partial = _core._carried_2d(u, s, core) - (c if di else 0.0)
    beta = (1 - lam) if di else 1.0
    assert torch.allclose(gd, (gc / beta * partial).sum(0), rtol=1e-12, atol=1e-14)


def test_lif_learnable_parametrisations():
    x = make_input(8, (4, 6), dtype=torch.float32, seed=1)
    plif = na_cuda.nn.LIF(tau_m=2.0, learn_decay="sigmoid", method="stbp", output="spike")
    assert plif.w.shape == () and math.isclose(float(plif.w), -math.log(1.0))  # PLIF: w = -log(tau - 1)
    assert math.isclose(float(plif.decay_values()), 0.5)
    per = na_cuda.nn.LIF(tau_m=4.0, learn_decay="beta", decay_shape=(6,), method="na", output="spike")
    assert per.beta.shape == (6,) and torch.allclose(per.beta, torch.full((6,), 0.75))
    for m in (plif, per):
        m(x).sum().backward()
        p = m.w if m is plif else m.beta
        assert p.grad is not None and torch.isfinite(p.grad).all()
    fixed = na_cuda.nn.LIF(decay=torch.tensor([0.5, 0.9, 0.1, 0.2, 0.3, 0.4]), output="spike")
    assert list(dict(fixed.named_buffers())) == ["decay"] and not list(fixed.parameters())
    assert "learn_decay='beta', decay_shape=(6,)" in repr(per)


def test_lif_decay_argument_errors():
    with pytest.raises(ValueError, match="learn_decay"):
        na_cuda.nn.LIF(learn_decay="tau")
    with pytest.raises(ValueError, match="1 < tau_m < inf"):
        na_cuda.nn.LIF(tau_m=math.inf, learn_decay="sigmoid")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        na_cuda.nn.LIF(decay=torch.tensor(1.5))
    with pytest.raises(ValueError, match="decay_shape"):
        na_cuda.nn.LIF(decay_shape=(3,))
    with pytest.raises(ValueError, match="broadcast"):
        na_cuda.lif(torch.rand(4, 2, 5), decay=torch.rand(3))
    with pytest.raises(TypeError, match="decay"):
        na_cuda.lif(torch.rand(4, 5), decay=0.5)
    with pytest.raises(ValueError, match="no reset value"):
        na_cuda.lif(torch.rand(4, 5), v_reset=0.5, reset_mechanism="subtract")
    with pytest.raises(ValueError, match="reset_mechanism"):
        na_cuda.lif(torch.rand(4, 5), reset_mechanism="sub")
    with pytest.raises(ValueError, match='output="membrane" is refused by method="na"'):
        na_cuda.lif(torch.rand(4, 5), output="membrane")
    with pytest.raises(ValueError, match="TSSL-BP"):
        na_cuda.lif(torch.rand(4, 5), method="tssl", v_reset=None, reset_mechanism="subtract")


@needs_native
def test_native_op_checks_decay():
    c = torch.rand(4, 5)
    args = (5.0, 2.0, 1.0, 0.0, False, False, "spike", "paper", 3, 10.0, None)
    with pytest.raises(RuntimeError, match=r"`decay` must have shape \[N\]"):
        torch.ops.na_cuda.lif_na(c, *args, torch.rand(4))
    with pytest.raises(RuntimeError, match="`decay` must have dtype"):
        torch.ops.na_cuda.lif_na(c, *args, torch.rand(5, dtype=torch.float64))
    with pytest.raises(RuntimeError, match="reset_mechanism"):
        torch.ops.na_cuda.lif_na(c, 5.0, 2.0, 1.0, None, False, False, "spike", "paper", 3, 10.0, None, None, "zero")
    with pytest.raises(RuntimeError, match="membrane"):
        torch.ops.na_cuda.lif_na(c, 5.0, 2.0, 1.0, 0.0, False, False, "membrane", "paper", 3, 10.0)


@needs_native
def test_opcheck_with_decay():
    c = make_input(6, (5,), dtype=torch.float32).requires_grad_(True)
    d = torch.rand(5).requires_grad_(True)
    neuron = (5.0, 2.0, 1.0, None, True, True, "spike")
    torch.library.opcheck(torch.ops.na_cuda.lif_stbp.default, (c, *neuron, "atan", 2.0, True, d, "subtract"))
    g = torch.randn(6, 5)
    torch.library.opcheck(
        torch.ops.na_cuda.na_backward.default, (g, c.detach(), *neuron, "paper", 3, 10.0, None, d.detach(), "subtract")
    )
