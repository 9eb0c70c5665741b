"""The learnable decay at its edges (docs/algorithm.md §10, §12): lam = 0 and 1 (with and without decay_input),
non-finite decays, and the values nn.LIF refuses; the float64 fuzz of decay x reset x output x rule, native
against the reference.
"""

from __future__ import annotations

import math
import random

import pytest
import torch
from helpers import RESETS, make_grad, make_input, needs_native

import na_cuda

RULES = {
    "na": dict(method="na"),
    "na-taylor-k1": dict(method="na", first_order="taylor", dist_power=1, clip=3.0),
    "stbp-rect": dict(method="stbp"),
    "stbp-atan": dict(method="stbp", surrogate="atan", detach_reset=False),
    "stbp-sigmoid": dict(method="stbp", surrogate="sigmoid"),
    "tssl": dict(method="tssl"),
}
OUTPUTS = ("psc", "spike", "membrane")
#: Leaks the fuzz draws from besides uniform ones: the ends of [0, 1], their neighbours, and non-finite values.
EDGE_DECAYS = (0.0, 1.0, 5e-324, 1.0 - 2.0**-53, 0.5, float("nan"))


def _valid(rule: str, reset: str, output: str) -> bool:
    if rule == "tssl":
        return output == "psc" and RESETS[reset]["v_reset"] is not None
    return not (rule.startswith("na") and output == "membrane")


def _run(backend: str, c: torch.Tensor, g: torch.Tensor, decay: torch.Tensor, **kw):
    x = c.clone().requires_grad_(True)
    d = decay.clone().requires_grad_(True)
    y = na_cuda.lif(x, backend=backend, decay=d, **kw)
    y.backward(g)
    return y.detach(), x.grad, d.grad


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float) -> bool:
    """Equal NaN pattern, and |a - b| <= rtol max(|b|, 1) elsewhere (float64: the backends' summation orders)."""
    if not torch.equal(a.isnan(), b.isnan()):
        return False
    ok = ~b.isnan()
    scale = max(float(b[ok].abs().max()) if bool(ok.any()) else 0.0, 1.0)
    return bool(((a[ok] - b[ok]).abs() <= rtol * scale).all())


def _fuzz_case(rng: random.Random) -> tuple[str, dict, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One random case: the keywords, the input, the incoming gradient and the decay (per layer or per neuron)."""
    while True:
        rule, reset, output = rng.choice(list(RULES)), rng.choice(list(RESETS)), rng.choice(OUTPUTS)
        if _valid(rule, reset, output):
            break
    di = rng.random() < 0.5
    kw = dict(**RULES[rule], **RESETS[reset], output=output, decay_input=di, tau_m=3.0)
    kw["strict_threshold"] = rng.random() < 0.25
    T, n = rng.randint(1, 12), rng.randint(1, 6)
    c = make_input(T, (n,), seed=rng.randrange(2**31), scale=rng.choice((0.5, 1.1, 2.0)))
    g = make_grad(c, seed=rng.randrange(2**31))
    pick = lambda: rng.choice(EDGE_DECAYS) if rng.random() < 0.5 else rng.random()  # noqa: E731
    decay = torch.tensor([pick() for _ in range(n)] if rng.random() < 0.6 else pick(), dtype=torch.float64)
    name = f"{rule}/{reset}/{output}/di={di}/T={T}/decay={decay.tolist()}"
    return name, kw, c, g, decay


def _fuzz(n_cases: int, seed: int) -> list[str]:
    """The cases (of ``n_cases`` drawn with ``seed``) where native and reference disagree in float64."""
    rng = random.Random(seed)
    bad = []
    for _ in range(n_cases):
        name, kw, c, g, decay = _fuzz_case(rng)
        ref = _run("torch", c, g, decay, **kw)
        nat = _run("native", c, g, decay, **kw)
        for what, a, b, rtol in zip(("forward", "grad_c", "grad_decay"), nat, ref, (1e-15, 1e-10, 1e-10)):
            if not _close(a, b, rtol):
                bad.append(f"{name}: {what}")
    return bad


@needs_native
def test_decay_fuzz_native_equals_reference():
    """A fixed 400-case subset of the float64 decay fuzz (the slow test runs 6,000)."""
    bad = _fuzz(400, seed=2412)
    assert not bad, f"{len(bad)} disagreements, e.g. {bad[:5]}"


@needs_native
@pytest.mark.slow
def test_decay_fuzz_native_equals_reference_large():
    bad = _fuzz(6000, seed=24)
    assert not bad, f"{len(bad)} disagreements, e.g. {bad[:5]}"


# -- lam = 1 with decay_input (the input scaled by beta = 0): dL/dlam is finite (§12) ---------------------------
RULE_KW = [dict(method="na"), dict(method="stbp", surrogate="atan"), dict(method="tssl")]
DTYPE_TOL = {torch.float64: 1e-12, torch.float32: 1e-5, torch.bfloat16: 1e-5, torch.float16: 1e-5}


@needs_native
@pytest.mark.parametrize("dtype", list(DTYPE_TOL), ids=str)
@pytest.mark.parametrize("kw", RULE_KW, ids=lambda k: k["method"])
def test_leak_one_with_decay_input_has_the_references_finite_gradient(kw, dtype):
    c = make_input(9, (7,), seed=5, scale=1.5, dtype=dtype)
    g = make_grad(c)
    decay = torch.tensor([1.0, 1.0, 0.6, 1.0, 0.0, 1.0, 0.9], dtype=na_cuda.params.compute_dtype(dtype))
    out = {b: _run(b, c, g, decay, decay_input=True, **kw) for b in ("torch", "native")}
    gd_ref, gd_nat = out["torch"][2], out["native"][2]
    assert gd_nat.isfinite().all(), gd_nat
    assert _close(gd_nat, gd_ref, DTYPE_TOL[dtype])
    assert _close(out["native"][1].double(), out["torch"][1].double(), DTYPE_TOL[dtype])


@needs_native
def test_leak_one_parameters_get_finite_gradients():
    """The issue's cases: snnTorch-style beta = 1 with decay_input, and a float32 PLIF whose lam rounds to 1."""
    torch.manual_seed(0)
    c = torch.rand(5, 1, dtype=torch.float64)
    grads = {}
    for backend in ("torch", "native"):
        d = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
        y = na_cuda.lif(c, decay=d, decay_input=True, backend=backend)
        grads[backend] = torch.autograd.grad(y.sum(), d)[0]
    assert math.isfinite(float(grads["native"])) and math.isclose(float(grads["native"]), float(grads["torch"]))
    x = torch.rand(6, 3, 4)
    for learn, value in (("beta", dict(decay=1.0)), ("sigmoid", dict(decay=0.5))):
        got = {}
        for backend in ("torch", "native"):
            lif = na_cuda.nn.LIF(learn_decay=learn, decay_input=True, backend=backend, **value)
            if learn == "sigmoid":
                with torch.no_grad():
                    lif.w.fill_(-20.0)  # float32: lam = 1 - sigmoid(-20) rounds to 1
            lif(x).sum().backward()
            got[backend] = next(lif.parameters()).grad
        assert got["native"].isfinite().all(), (learn, got)
        assert torch.allclose(got["native"], got["torch"], rtol=1e-5, atol=1e-30), (learn, got)


# -- the clamp's gradient keeps both ends on every torch version (§12) -------------------------------------------
def test_clamp_decay_keeps_both_ends_on_every_torch():
    """params.clamp_decay: torch.clamp's values (-0 and NaN kept), gradient 1 on [0, 1] with both ends, 0 outside
    and at NaN. torch.clamp's own gradient at the ends changed (1 up to 2.13, 0 from 2.14): the ops and the
    reference must not follow it, or a leak of exactly 1 stops learning on one torch and not the other."""
    raw = [-0.0, 0.0, 0.5, 1.0, -1e-300, 1.0 + 2.0**-52, float("inf"), float("-inf"), float("nan")]
    d = torch.tensor(raw, dtype=torch.float64, requires_grad=True)
    y = na_cuda.params.clamp_decay(d)
    want = torch.tensor(raw, dtype=torch.float64).clamp(0.0, 1.0)
    assert torch.equal(y.detach().signbit(), want.signbit()) and torch.allclose(y.detach(), want, equal_nan=True)
    y.sum().backward()
    assert d.grad.tolist() == [1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]


@needs_native
@pytest.mark.parametrize("kw", RULE_KW, ids=lambda k: k["method"])
def test_leak_at_the_ends_learns_through_nn_lif(kw):
    """nn.LIF(learn_decay="beta") initialised at 0 and at 1: a nonzero gradient on both backends, and the same."""
    c = make_input(6, (2, 3), seed=11, scale=1.5)
    g = make_grad(c)
    grads = {}
    for backend in ("torch", "native"):
        lif = na_cuda.nn.LIF(learn_decay="beta", decay=torch.tensor([0.0, 1.0, 1.0]), backend=backend, **kw).double()
        lif(c).backward(g)
        grads[backend] = lif.beta.grad
    assert (grads["native"] != 0).all(), grads
    assert torch.allclose(grads["native"], grads["torch"], rtol=1e-12, atol=1e-300), grads


# -- a non-finite decay reaches the ops raw: they clamp it as torch.clamp would (§12, §10) -----------------------
@needs_native
@pytest.mark.parametrize("di", [False, True])
@pytest.mark.parametrize("kw", RULE_KW + [dict(method="stbp", output="membrane")], ids=lambda k: str(k))
def test_nonfinite_decay_is_clamped_by_the_ops(kw, di):
    """The backward ops themselves: a NaN leak stays NaN (NaN gradients for that neuron, every step) and +inf is
    clamped to 1; dL/dlam is 0 at both (torch.clamp's gradient outside [0, 1]), the other neurons untouched."""
    c = make_input(8, (4,), seed=2, scale=1.2)
    g = make_grad(c)
    neuron, rule, _ = na_cuda._validate.build(decay_input=di, **kw)
    backwards = {
        "torch": lambda d: na_cuda.reference.rule_backward(rule, g, c, neuron, d),
        "native": lambda d: rule.native_backward(g, c, neuron, d),
    }
    for lam in (float("nan"), float("inf")):
        decay = torch.tensor([0.8, lam, 0.5, 0.9], dtype=torch.float64)
        for name, backward in backwards.items():
            gc, gd = backward(decay)
            if math.isnan(lam):
                assert gc[:, 1].isnan().all(), (name, gc[:, 1])
            else:
                one = backward(torch.tensor([0.8, 1.0, 0.5, 0.9], dtype=torch.float64))[0]
                assert torch.equal(gc[:, 1], one[:, 1]), (name, gc[:, 1], one[:, 1])
            assert gd[1] == 0, (name, lam, gd)
            assert gc[:, [0, 2, 3]].isfinite().all() and gd[[0, 2, 3]].isfinite().all(), (name, lam)


# -- nn.LIF refuses decay values and shapes it cannot hold, naming the argument ---------------------------------
BAD_DECAYS = [
    (dict(learn_decay="sigmoid", decay=0.0), ValueError, r"`decay`.*open interval \(0, 1\)"),
    (dict(learn_decay="sigmoid", decay=1.0), ValueError, r"`decay`.*open interval \(0, 1\)"),
    (dict(learn_decay="sigmoid", decay=torch.tensor([0.5, 1.0])), ValueError, r"`decay`.*\(0, 1\)"),
    (dict(learn_decay="beta", decay=float("nan")), ValueError, "`decay`.*must be finite"),
    (dict(learn_decay="beta", decay=float("inf")), ValueError, "`decay`.*must be finite"),
    (dict(decay=float("nan")), ValueError, r"`decay`.*\[0, 1\]"),
    (dict(decay=-float("inf")), ValueError, r"`decay`.*\[0, 1\]"),
    (dict(learn_decay="sigmoid", decay=float("nan")), ValueError, r"`decay`.*\[0, 1\]"),
    (dict(decay=0.5 + 0.1j), TypeError, "`decay` must be a float in"),
    (dict(learn_decay="beta", decay=torch.tensor(0.5 + 0.1j)), TypeError, "`decay` must be a real tensor"),
    (dict(decay=torch.tensor(True)), TypeError, "`decay` must be a real tensor"),
    (dict(decay=True), TypeError, "`decay` must be a float in"),
    (dict(decay="0.5"), TypeError, "`decay` must be a float in"),
    (dict(decay=[0.5, "a"]), TypeError, "`decay` must be a float in"),
    (dict(decay=torch.empty(3, device="meta")), ValueError, "`decay` is on the meta device"),
    (dict(learn_decay="beta", decay_shape=(-1,)), ValueError, "`decay_shape` must be a tuple of sizes >= 1"),
    (dict(learn_decay="beta", decay_shape=(4, 0)), ValueError, "`decay_shape` must be a tuple of sizes >= 1"),
    (dict(learn_decay="beta", decay_shape=(2**40,)), ValueError, "`decay_shape`.*cannot be allocated"),
]


@pytest.mark.parametrize("kw,exc,match", BAD_DECAYS, ids=[str(i) for i in range(len(BAD_DECAYS))])
def test_lif_refuses_bad_decay(kw, exc, match):
    with pytest.raises(exc, match=match):
        na_cuda.nn.LIF(**kw)


def test_lif_keeps_valid_edge_decays():
    assert float(na_cuda.nn.LIF(decay=0.0).decay) == 0.0 and float(na_cuda.nn.LIF(decay=1.0).decay) == 1.0
    assert (
        float(na_cuda.nn.LIF(learn_decay="beta", decay=1.5).beta.detach()) == 1.5
    )  # clamped in the forward, as snnTorch
    plif = na_cuda.nn.LIF(learn_decay="sigmoid", decay=[0.25, 0.75])
    assert torch.allclose(plif.decay_values(), torch.tensor([0.25, 0.75]))


# -- raw ops: a decay on another device (meta included) is the device error, never a tensor ---------------------
OPS = {
    "lif_forward": (),
    "lif_na": ("paper", 3, 10.0, None),
    "lif_stbp": ("rect", 1.0, True),
    "lif_tssl": (),
    "na_backward": ("paper", 3, 10.0, None),
    "stbp_backward": ("rect", 1.0, True),
    "tssl_backward": (),
}


@needs_native
@pytest.mark.parametrize("op", list(OPS))
def test_raw_ops_refuse_a_meta_decay(op):
    c = torch.rand(4, 3, dtype=torch.float64)
    tensors = (c, c) if op.endswith("backward") else (c,)
    neuron = (5.0, 2.0, 1.0, 0.0, False, False, "psc")
    decay = torch.empty(3, device="meta", dtype=torch.float64)
    with pytest.raises(RuntimeError, match="`decay` is on meta but `c` is on cpu"):
        getattr(torch.ops.na_cuda, op)(*tensors, *neuron, *OPS[op], decay, None)


@needs_native
@pytest.mark.parametrize("op", list(OPS))
def test_raw_ops_refuse_an_empty_reset_mechanism(op):
    c = torch.rand(4, 3, dtype=torch.float64)
    tensors = (c, c) if op.endswith("backward") else (c,)
    neuron = (5.0, 2.0, 1.0, None, False, False, "spike" if "tssl" not in op else "psc")
    with pytest.raises(RuntimeError, match="`reset_mechanism` must be None"):
        getattr(torch.ops.na_cuda, op)(*tensors, *neuron, *OPS[op], None, "")


@pytest.mark.parametrize("fullgraph", [False, True])
def test_compiled_dynamic_wrong_decay_shape_is_our_message(fullgraph):
    """torch.broadcast_shapes' error under dynamic shapes was dynamo's TorchRuntimeError, without our message."""
    lif = na_cuda.nn.LIF(learn_decay="beta", decay_shape=(3,), backend="torch")
    f = torch.compile(lif, dynamic=True, fullgraph=fullgraph)
    with pytest.raises(ValueError, match=r"`decay` of shape \(3,\) does not broadcast to the input's neuron shape"):
        f(torch.rand(4, 2, 5))
