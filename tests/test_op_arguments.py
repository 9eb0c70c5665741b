"""What the raw ops and ``na_cuda.lif`` accept and refuse: the fake kernels' checks, gradients through the raw
forward op, non-finite values (docs/algorithm.md §10), tiny or shifted parameters (docs/reliability.md)."""

from __future__ import annotations

import pytest
import torch
from helpers import needs_native

import na_cuda
from na_cuda.nn import LIF

NEURON = (5.0, 2.0, 1.0, 0.0, False, False, "psc")  # tau_m, tau_s, threshold, v_reset, decay_input, strict, output
RULE_ARGS = {"na": ("paper", 3, 10.0), "stbp": ("rect", 1.0, True), "tssl": ()}


# -- the raw forward op with an input that requires grad --------------------------------------------------
@needs_native
def test_raw_forward_op_with_grad_raises_naming_the_rule_ops():
    w = torch.rand(4, 3, requires_grad=True)
    with pytest.raises(RuntimeError, match="lif_na.*lif_stbp.*lif_tssl"):
        torch.ops.na_cuda.lif_forward(w * 2, *NEURON)
    # Inference is unchanged: no grad mode, or a detached input.
    with torch.no_grad():
        y = torch.ops.na_cuda.lif_forward(w * 2, *NEURON)
    assert torch.equal(y, torch.ops.na_cuda.lif_forward((w * 2).detach(), *NEURON))
    # The rule ops still train.
    torch.ops.na_cuda.lif_na(w * 2, *NEURON, *RULE_ARGS["na"]).sum().backward()
    assert w.grad is not None and w.grad.abs().sum() > 0


# -- non-finite values (docs/algorithm.md §10; the property test covers every rule) ----------------------
INF = float("inf")
NON_FINITE_EXAMPLES = [
    # the audit's examples: native [nan, 0] vs reference [0, 0]; native [0.583, nan, -0.0] vs reference [nan]*3
    (dict(method="stbp", detach_reset=False), [[INF], [0.5]], [[1.0], [1.0]], [True, True]),
    (dict(method="tssl"), [[1.5], [-INF], [0.5]], [[1.0]] * 3, [True, True, True]),
    # an infinite gradient at step 0 concerns step 0 only (causality); before, NA's reference gave NaN at step 1
    (dict(method="na"), [[0.5], [0.5]], [[INF], [1.0]], [True, False]),
    (dict(method="stbp"), [[1.5], [0.5]], [[1.0], [-INF]], [True, True]),
]


@pytest.mark.parametrize("options, c, g, nan", NON_FINITE_EXAMPLES)
@pytest.mark.parametrize("backend", ["torch", pytest.param("native", marks=needs_native)])
def test_non_finite_values_follow_the_spec(options, c, g, nan, backend):
    x = torch.tensor(c, dtype=torch.float64, requires_grad=True)
    na_cuda.lif(x, backend=backend, **options).backward(torch.tensor(g, dtype=torch.float64))
    assert x.grad.isnan().flatten().tolist() == nan
    assert x.grad[~x.grad.isnan()].isfinite().all()


# -- a ZeroDivisionError instead of an error naming the argument -----------------------------------------
def test_tiny_surrogate_alpha_names_the_argument():
    c = torch.randn(6, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="surrogate_alpha"):
        na_cuda.lif(c, method="stbp", surrogate_alpha=1e-170)


# -- a threshold of 0 (or tiny) above a negative v_reset ------------------------------------------------
@pytest.mark.parametrize("threshold", [0.0, 1e-310])
@pytest.mark.parametrize("backend", ["torch", pytest.param("native", marks=needs_native)])
def test_threshold_zero_above_a_negative_v_reset_is_valid(threshold, backend):
    c = torch.rand(8, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 0.6
    got = na_cuda.lif(c, threshold=threshold, v_reset=-0.5, backend=backend, output="spike")
    # The same neuron shifted by +0.5: threshold 0.5 above a reset to 0 (docs/algorithm.md §9).
    want = na_cuda.lif(c, threshold=threshold + 0.5, v_reset=0.0, backend=backend, output="spike")
    assert torch.equal(got, want)
    layer = LIF(threshold=0.0, v_reset=-0.5, backend=backend)
    assert layer(c.float()).shape == c.shape
    if backend == "native":  # the C++ check of direct op calls agrees
        torch.ops.na_cuda.lif_forward(c, 5.0, 2.0, threshold, -0.5, False, False, "psc")


# -- the fake kernels check the scalar arguments -------------------------------------------------------
BAD_ARGS = [
    ("lif_forward", (0.5, 2.0, 1.0, 0.0, False, False, "psc"), "tau_m"),
    ("lif_forward", (5.0, 2.0, 1.0, 0.0, False, False, "pcs"), "output"),
    ("lif_na", NEURON + ("paper", 2, 10.0), "dist_power"),
    ("lif_tssl", (5.0, 2.0, 1.0, None, False, False, "psc"), "reset to rest"),
    ("lif_stbp", NEURON + ("rect", 1e-30, True), "surrogate_alpha"),
    ("na_backward", NEURON + ("paper", 2, 10.0), "dist_power"),
    ("tssl_backward", (5.0, 2.0, 1.0, None, False, False, "psc"), "reset to rest"),
]


@needs_native
@pytest.mark.parametrize("op, args, match", BAD_ARGS, ids=[f"{o}-{m}" for o, _, m in BAD_ARGS])
@pytest.mark.parametrize("where", ["meta", "fake", "cpu"])
def test_fake_kernels_run_the_argument_checks(op, args, match, where):
    fn = getattr(torch.ops.na_cuda, op)

    def call(c: torch.Tensor) -> torch.Tensor:
        return fn(torch.ones_like(c), c, *args) if op.endswith("_backward") else fn(c, *args)

    with pytest.raises(RuntimeError, match=match):
        if where == "fake":
            from torch._subclasses.fake_tensor import FakeTensorMode

            with FakeTensorMode():
                call(torch.ones(4, 3))
        else:
            call(torch.ones(4, 3, device=where))
