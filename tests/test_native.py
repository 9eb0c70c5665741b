"""Native kernels (CPU here, CUDA where present) against the pure-PyTorch reference.

float64: forward outputs equal bit for bit on the CPU (1e-15 relative on CUDA, where nvcc may contract a*b+c into
an FMA); gradients within 1e-12 relative to the largest reference gradient. Low precision (float32, bfloat16,
float16): a rounded input can move u across the threshold, so a neuron is compared only where its float64 spike
train (reference on the same rounded input) equals the native one; see `test_low_precision_matches_reference`.
"""

from __future__ import annotations

import pytest
import torch
from helpers import (
    DEVICES,
    METHOD_CASES,
    case_id,
    make_grad,
    make_input,
    native_backward,
    native_forward,
    needs_native,
    params,
    reference_backward,
)

from na_cuda import NA, LifParams, reference

pytestmark = needs_native


def _native_forward(c: torch.Tensor, p: dict) -> torch.Tensor:
    return native_forward(c, p)


def _assert_close_rel(actual: torch.Tensor, expected: torch.Tensor, rel: float) -> float:
    scale = max(1.0, expected.abs().max().item())
    err = (actual.double() - expected.double()).abs().max().item() if expected.numel() else 0.0
    assert err <= rel * scale, f"max error {err:.3e} > {rel:.0e} * {scale:.3g}"
    return err / scale


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("T", [1, 2, 5, 16])
@pytest.mark.parametrize("output", ["psc", "spike"])
def test_forward_float64_equal(device, T, output):
    c = make_input(T, (8, 16), device=device)
    p = params(output=output)
    y = _native_forward(c, p)
    ref = reference.lif_forward(
        c, LifParams(tau_m=p["tau_m"], tau_s=p["tau_s"], threshold=p["threshold"], output=output)
    )
    if device == "cpu":
        assert torch.equal(y, ref)
    else:
        _assert_close_rel(y, ref, 1e-15)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("T", [1, 2, 5, 16])
@pytest.mark.parametrize("case", METHOD_CASES, ids=case_id)
def test_backward_float64(device, T, case):
    p = params(**case)
    c = make_input(T, (4, 32), device=device, seed=T)
    g = make_grad(c, seed=T + 1)
    got = native_backward(p["method"], g, c, p)
    want = reference_backward(p["method"], g, c, p)
    assert got.shape == c.shape and got.dtype == c.dtype
    _assert_close_rel(got, want, 1e-12)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype,rel", [(torch.float32, 2e-5), (torch.bfloat16, 1e-2), (torch.float16, 2e-3)])
@pytest.mark.parametrize(
    "case",
    [METHOD_CASES[0], METHOD_CASES[3], METHOD_CASES[4], METHOD_CASES[8], METHOD_CASES[10], METHOD_CASES[-1]],
    ids=case_id,
)
def test_low_precision_matches_reference(device, dtype, rel, case):
    """Low precision vs a float64 reference on the same (rounded) input.

    A neuron is compared when its native spike train (computed in float32 from the rounded input) equals the
    float64 one; at least 95 % of neurons must qualify. On those, the gradient must match within `rel` times
    the largest reference gradient: float32 2e-5 (summation order and float32 rounding of u near the
    threshold, amplified by phi), bfloat16 1e-2 and float16 2e-3 (the output's own rounding: 8 and 11 bits).
    """
    p = params(**case)
    T = 8
    c = make_input(T, (2048,), dtype=dtype, device=device, seed=3)
    g = make_grad(c, seed=4)
    c64, g64 = c.double(), g.double()
    strict = p["strict_threshold"]
    s_lp = torch.ops.na_cuda.lif_forward(c, p["tau_m"], p["tau_s"], p["threshold"], 0.0, False, strict, "spike")
    s_64 = reference.lif_forward(
        c64,
        LifParams(
            tau_m=p["tau_m"], tau_s=p["tau_s"], threshold=p["threshold"], output="spike", strict_threshold=strict
        ),
    )
    agree = (s_lp.double() == s_64).all(dim=0)
    assert agree.double().mean() >= 0.95
    got = native_backward(p["method"], g, c, p)
    assert got.dtype == dtype
    want = reference_backward(p["method"], g64, c64, p)
    _assert_close_rel(got[:, agree], want[:, agree], rel)
    y = _native_forward(c, p)
    y64 = reference.lif_forward(
        c64,
        LifParams(
            tau_m=p["tau_m"], tau_s=p["tau_s"], threshold=p["threshold"], output=p["output"], strict_threshold=strict
        ),
    )
    _assert_close_rel(y[:, agree], y64[:, agree], rel)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", [METHOD_CASES[0], METHOD_CASES[8], METHOD_CASES[-1]], ids=case_id)
def test_deterministic(device, case):
    p = params(**case)
    c = make_input(20, (50_000,), dtype=torch.float32, device=device)
    g = make_grad(c)
    a = native_backward(p["method"], g, c, p)
    b = native_backward(p["method"], g, c, p)
    assert torch.equal(a, b)
    assert torch.equal(_native_forward(c, p), _native_forward(c, p))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", [METHOD_CASES[0], METHOD_CASES[8], METHOD_CASES[-1]], ids=case_id)
def test_non_contiguous_input_and_grad(device, case):
    p = params(**case)
    base = make_input(6, (24, 10), device=device)
    c = base.transpose(1, 2)  # [6, 10, 24], non-contiguous
    g = make_grad(base, seed=7)[:, ::2].transpose(1, 2)  # [6, 10, 12] strided
    c = c[:, :, ::2]
    assert not c.is_contiguous() and not g.is_contiguous()
    got = native_backward(p["method"], g, c, p)
    want = native_backward(p["method"], g.contiguous(), c.contiguous(), p)
    assert torch.equal(got, want)
    assert torch.equal(_native_forward(c, p), _native_forward(c.contiguous(), p))


@pytest.mark.parametrize("device", DEVICES)
def test_large_batch_beyond_2_pow_24(device):
    """N * T > 2^24 elements: the last neurons (indices past 2^24 / T) match the kernel run on them alone and
    the reference; catches 32-bit or float index arithmetic."""
    T, N = 3, (1 << 24) // 3 + 4099
    assert T * N > 1 << 24
    p = params()
    g = torch.Generator().manual_seed(0)
    c = (torch.rand(T, N, generator=g) * 1.4).to(device)
    grad = torch.randn(T, N, generator=g).to(device)
    y = _native_forward(c, p)
    gc = native_backward("na", grad, c, p)
    tail = slice(N - 5000, N)
    y_tail = _native_forward(c[:, tail], p)
    gc_tail = native_backward("na", grad[:, tail], c[:, tail], p)
    assert torch.equal(y[:, tail], y_tail) and torch.equal(gc[:, tail], gc_tail)
    want = reference.na_backward(
        grad[:, tail].double(),
        c[:, tail].double(),
        LifParams(tau_m=5.0, tau_s=2.0, threshold=1.0, output="psc"),
        NA(first_order="paper", dist_power=3, clip=10.0),
    )
    # Compared where the kernel's own spikes (the ones its gradient used) equal the float64 reference's.
    s32 = _native_forward(c[:, tail], dict(p, output="spike"))
    s64 = reference.lif_forward(c[:, tail].double(), LifParams(tau_m=5.0, tau_s=2.0, threshold=1.0, output="spike"))
    agree = (s32.double() == s64).all(dim=0)
    _assert_close_rel(gc_tail[:, agree], want[:, agree], 2e-5)


@pytest.mark.parametrize("device", DEVICES)
def test_empty_neurons(device):
    c = torch.zeros(4, 0, 3, device=device)
    p = params()
    assert _native_forward(c, p).shape == c.shape
    assert native_backward("na", c, c, p).shape == c.shape
