"""Property test (hypothesis): the native kernels against the pure-PyTorch reference over shapes, T, neuron
parameters (strict threshold or not), dtypes, methods and inputs on a grid of multiples of 1/8 -- exact in every
dtype, and with leaks of 1/2, 3/4 and 7/8 the potentials stay exact too, so exact ties ``u == threshold`` are
frequent. NaN and +-inf inputs are drawn for the forward, and in `c` and `grad_out` for the backward, whose
semantics for them is docs/algorithm.md §10 (NaN exactly where a non-finite value makes the gradient undefined).

Forward: bit-equal in every dtype (the same operation order in the compute dtype). Backward: float64 within 1e-12
of the largest reference gradient; float32 1e-4, float16/bfloat16 2e-2 (the gradient's own rounding, amplified by
NA's phi up to `clip`). Bounded and derandomized (a fixed example sequence) so CI stays fast and deterministic.
"""

from __future__ import annotations

import pytest
import torch

hypothesis = pytest.importorskip("hypothesis")
from helpers import native_backward, native_forward, needs_native, params, reference_backward  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from na_cuda import LifParams, reference  # noqa: E402

pytestmark = needs_native

DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
BACKWARD_REL = {torch.float64: 1e-12, torch.float32: 1e-4, torch.float16: 2e-2, torch.bfloat16: 2e-2}
SETTINGS = settings(max_examples=150, deadline=None, derandomize=True, database=None)


NON_FINITE = [float("inf"), float("-inf"), float("nan")]


def _sometimes(common, rare, one_in: int = 10):
    """``rare`` about once in ``one_in`` draws, else ``common``."""
    return st.integers(0, one_in - 1).flatmap(lambda k: rare if k == 0 else common)


@st.composite
def problems(draw, with_inf: bool):
    T = draw(st.integers(1, 10))
    shape = tuple(draw(st.lists(st.integers(1, 9), min_size=1, max_size=2)))
    n = T * int(torch.tensor(shape).prod())
    grid = st.integers(-8, 20).map(lambda k: k / 8)
    values = _sometimes(grid, st.sampled_from(NON_FINITE)) if with_inf else grid
    c = torch.tensor(draw(st.lists(values, min_size=n, max_size=n)), dtype=torch.float64).reshape(T, *shape)
    p = dict(
        tau_m=draw(st.sampled_from([2.0, 4.0, 8.0, 5.0])),
        tau_s=draw(st.sampled_from([1.0, 2.0, 4.0])),
        threshold=draw(st.sampled_from([0.5, 1.0, 1.25])),
        strict_threshold=draw(st.booleans()),
    )
    return c, p, draw(st.sampled_from(DTYPES))


def _native_forward(c: torch.Tensor, p: dict) -> torch.Tensor:
    return native_forward(c, p)


@SETTINGS
@given(problems(with_inf=True), st.sampled_from(["psc", "spike"]))
def test_forward_is_bit_equal(problem, output):
    c, kw, dtype = problem
    p = params(output=output, **kw)
    x = c.to(dtype)
    got = _native_forward(x, p)
    assert got.dtype == dtype and got.shape == x.shape
    neuron = LifParams.from_keywords(p)
    want = reference.lif_forward(x, neuron)
    assert torch.equal(got, want)
    # The STBP reference forward is the same forward (with a differentiable reset).
    assert torch.equal(reference.stbp_forward(x, neuron), want)


CASES = [
    dict(method="na", output="psc", first_order="paper"),
    dict(method="na", output="psc", first_order="taylor"),
    dict(method="na", output="spike", dist_power=1),
    dict(method="stbp", output="psc", surrogate="triangle"),
    dict(method="stbp", output="spike", surrogate="rect", detach_reset=False),
    dict(method="stbp", output="psc", surrogate="sigmoid"),
    dict(method="tssl", output="psc"),
]


@SETTINGS
@given(problems(with_inf=False), st.sampled_from(CASES), st.integers(0, 2**31 - 1))
def test_backward_matches_the_reference(problem, case, seed):
    c, kw, dtype = problem
    p = params(**case, **kw)
    x = c.to(dtype)
    g = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)
    got = native_backward(p["method"], g, x, p)
    want = reference_backward(p["method"], g, x, p)
    assert got.dtype == dtype and got.shape == x.shape
    scale = max(1.0, want.double().abs().max().item())
    err = (got.double() - want.double()).abs().max().item()
    assert err <= BACKWARD_REL[dtype] * scale, f"max error {err:.3e} (scale {scale:.3g}) in {dtype}"


@SETTINGS
@given(problems(with_inf=True), st.sampled_from(CASES), st.integers(0, 2**31 - 1), st.data())
def test_backward_of_non_finite_values_follows_the_spec(problem, case, seed, data):
    """docs/algorithm.md §10: grad_c[t, n] is NaN exactly where c[:, n] has a non-finite value or grad_out[t:, n]
    has one; elsewhere both backends give the value of the same problem with those entries set to 0 (which the
    gradient there does not depend on)."""
    c, kw, dtype = problem
    p = params(**case, **kw)
    x = c.to(dtype)
    g = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    flat = g.view(-1)
    spots = st.tuples(st.integers(0, flat.numel() - 1), st.sampled_from(NON_FINITE))
    for i, v in data.draw(st.lists(spots, max_size=3), label="non-finite grad_out entries"):
        flat[i] = v
    g = g.to(dtype)
    got = native_backward(p["method"], g, x, p)
    want = reference_backward(p["method"], g, x, p)
    T = x.shape[0]
    bad_c = ~x.reshape(T, -1).isfinite().all(0, keepdim=True)
    bad_g = (~g.reshape(T, -1).isfinite()).flip(0).cumsum(0).flip(0) > 0
    nan = (bad_c | bad_g).reshape(x.shape)
    assert torch.equal(got.isnan(), nan), "native"
    assert torch.equal(want.isnan(), nan), "reference"
    clean = reference_backward(p["method"], g.nan_to_num(0.0, 0.0, 0.0), x.nan_to_num(0.0, 0.0, 0.0), p)
    scale = max(1.0, clean.double().abs().max().item())
    for name, r in (("native", got), ("reference", want)):
        err = (r.double() - clean.double())[~nan].abs().max().item() if (~nan).any() else 0.0
        assert err <= BACKWARD_REL[dtype] * scale, f"{name}: max error {err:.3e} (scale {scale:.3g}) in {dtype}"
