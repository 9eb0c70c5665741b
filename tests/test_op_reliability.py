"""No silent wrong results from the op layer: the fake kernels' checks, double backward, the reference's reset of an
infinite potential, parameters against the compute dtype, bounded CPU scratch, and torch.compile with dynamic
shapes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from helpers import (
    make_grad,
    make_input,
    native_backward,
    native_forward,
    needs_native,
    params,
    reference_backward,
    subprocess_pythonpath,
)

import na_cuda
from na_cuda import STBP, LifParams, reference

ROOT = Path(__file__).resolve().parents[1]
BACKWARD_ARGS = {
    "na_backward": (5.0, 2.0, 1.0, 0.0, False, False, "psc", "paper", 3, 10.0),
    "stbp_backward": (5.0, 2.0, 1.0, 0.0, False, False, "psc", "rect", 1.0, True),
    "tssl_backward": (5.0, 2.0, 1.0, 0.0, False, False, "psc"),
}


@needs_native
@pytest.mark.parametrize("op", list(BACKWARD_ARGS))
@pytest.mark.parametrize(
    "grad,c,match",
    [
        (torch.ones(7, 9, device="meta"), torch.randn(5, 3), "is on meta but `c` is on cpu"),
        (torch.ones(5, 4, device="meta"), torch.ones(5, 3, device="meta"), "shape"),
        (torch.ones(5, 3, device="meta", dtype=torch.float64), torch.ones(5, 3, device="meta"), "dtype"),
        (torch.ones(5, 3, device="meta"), torch.ones(0, 3, device="meta"), "T = size"),
        (torch.ones((), device="meta"), torch.ones(5, 3, device="meta"), "time dimension"),
        (torch.ones(5, 3), torch.ones(5, 4), "shape"),  # the C++ check
        (torch.ones(5, 3, dtype=torch.float64), torch.ones(5, 3), "dtype"),
    ],
)
def test_backward_ops_check_every_dispatch_path(op, grad, c, match):
    """A meta grad_out with a CPU c used to return a CPU tensor of uninitialised memory (the fake kernel answered)."""
    with pytest.raises(RuntimeError, match=match):
        getattr(torch.ops.na_cuda, op)(grad, c, *BACKWARD_ARGS[op])


@needs_native
def test_forward_fake_kernel_checks_the_input():
    with pytest.raises(RuntimeError, match="float16, bfloat16"):
        torch.ops.na_cuda.lif_forward(
            torch.ones(3, 2, device="meta", dtype=torch.int64), 5.0, 2.0, 1.0, 0.0, False, False, "psc"
        )
    for op, rule_args in (
        ("lif_forward", ()),
        ("lif_na", ("paper", 3, 10.0)),
        ("lif_stbp", ("rect", 1.0, True)),
        ("lif_tssl", ()),
    ):
        y = getattr(torch.ops.na_cuda, op)(
            torch.ones(3, 2, device="meta"), 5.0, 2.0, 1.0, 0.0, False, False, "psc", *rule_args
        )
        assert y.device.type == "meta" and y.shape == (3, 2), op


@needs_native
@pytest.mark.parametrize("method", ["na", "stbp", "tssl"])
def test_double_backward_raises_with_the_fix(method):
    c = make_input(6, (4,)).requires_grad_(True)
    (g,) = torch.autograd.grad(na_cuda.lif(c, method=method, backend="native").sum(), c, create_graph=True)
    with pytest.raises(RuntimeError, match='double backward .* backend="torch"'):
        torch.autograd.grad(g.sum(), c, allow_unused=True)
    # The reference differentiates its gradient (STBP's rectangle surrogate is piecewise constant in u: no graph).
    (g,) = torch.autograd.grad(na_cuda.lif(c, method=method, backend="torch").sum(), c, create_graph=True)
    if method != "stbp":
        (gg,) = torch.autograd.grad(g.sum(), c)
        assert gg.abs().sum() > 0


def test_reference_stbp_resets_an_infinite_potential():
    """inf * (1 - 1) = NaN used to poison v after a +inf input: spikes [1, 0, 0] instead of [1, 0, 1]."""
    c = torch.tensor([[float("inf")], [0.5], [1.0]])
    for dtype in (torch.float16, torch.float32, torch.float64):
        for detach_reset in (True, False):
            s = reference.stbp_forward(
                c.to(dtype),
                LifParams(tau_m=5.0, tau_s=2.0, threshold=1.0, output="spike"),
                STBP(detach_reset=detach_reset),
            )
            assert s.flatten().tolist() == [1.0, 0.0, 1.0]
            assert torch.equal(
                s, reference.lif_forward(c.to(dtype), LifParams(tau_m=5.0, tau_s=2.0, threshold=1.0, output="spike"))
            )


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize(
    "kwargs,name",
    [
        (dict(threshold=1e-300), "threshold"),
        (dict(threshold=1e39), "threshold"),
        (dict(clip=1e-300), "clip"),
        (dict(tau_m=1e39), "tau_m"),
        (dict(tau_s=1e39), "tau_s"),
        (dict(method="stbp", surrogate_alpha=1e-30), "surrogate_alpha"),
    ],
)
def test_parameters_are_checked_in_the_compute_dtype(dtype, kwargs, name):
    """Valid doubles that become 0 or inf in float32 (the compute dtype of float16/bfloat16/float32 input)."""
    c = torch.ones(3, 2, dtype=dtype)
    with pytest.raises(ValueError, match=rf"{name}.*torch.float32"):
        na_cuda.lif(c, **kwargs)
    layer = na_cuda.nn.LIF(**kwargs)  # the layer does not know the dtype before its input arrives
    with pytest.raises(ValueError, match=name):
        layer(c)
    na_cuda.lif(c.double(), **kwargs)  # fine in float64


@needs_native
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32])
def test_direct_op_calls_check_the_compute_dtype(dtype):
    """The C++ argument checks (csrc/op_args.h) apply the same rule to direct torch.ops.na_cuda calls."""
    c = torch.ones(3, 2, dtype=dtype)
    with pytest.raises(RuntimeError, match="`threshold` = .* float32"):
        torch.ops.na_cuda.lif_na(c, 5.0, 2.0, 1e-300, 0.0, False, False, "psc", "paper", 3, 10.0)
    with pytest.raises(RuntimeError, match="`clip`"):
        torch.ops.na_cuda.lif_na(c, 5.0, 2.0, 1.0, 0.0, False, False, "psc", "paper", 3, 1e-300)
    with pytest.raises(RuntimeError, match="`surrogate_alpha`"):
        torch.ops.na_cuda.lif_stbp(c, 5.0, 2.0, 1.0, 0.0, False, False, "psc", "rect", 1e-300, True)
    with pytest.raises(RuntimeError, match="`tau_s`"):
        torch.ops.na_cuda.tssl_backward(c, c, 5.0, 1e39, 1.0, 0.0, False, False, "psc")
    torch.ops.na_cuda.lif_na(c.double(), 5.0, 2.0, 1e-300, 0.0, False, False, "psc", "paper", 3, 10.0)


def test_float64_bounds():
    """float64 input: the same rule in float64 (a subnormal threshold is refused there too)."""
    with pytest.raises(ValueError, match="torch.float64"):
        na_cuda.lif(torch.ones(3, 2, dtype=torch.float64), threshold=1e-320)


_RSS_SCRIPT = textwrap.dedent("""
    import resource, sys, torch, na_cuda
    what = sys.argv[1]
    c = torch.rand(1_000_000, 1) * 1.5
    g = torch.randn(1_000_000, 1)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if what == "forward":
        torch.ops.na_cuda.lif_forward(c, 5.0, 2.0, 1.0, 0.0, False, False, "psc")
    else:
        torch.ops.na_cuda.na_backward(g, c, 5.0, 2.0, 1.0, 0.0, False, False, "psc", "paper", 3, 10.0)
    print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024)
""")


@needs_native
@pytest.mark.parametrize("what,limit_mib", [("forward", 160), ("na_backward", 400)])
def test_cpu_scratch_is_bounded_by_the_work(what, limit_mib):
    """[1e6, 1] float32 (3.8 MiB): the scratch used to be planes x T x 64 values per thread (peak RSS +492 MiB
    forward, +1225 MiB NA backward); now planes x T x one pack (8 floats with AVX): +65 and +157 MiB measured."""
    env = dict(os.environ, PYTHONPATH=subprocess_pythonpath())
    proc = subprocess.run(
        [sys.executable, "-c", _RSS_SCRIPT, what], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    growth = float(proc.stdout.strip().splitlines()[-1])
    assert growth < limit_mib, f"peak RSS grew by {growth:.0f} MiB"


@needs_native
@pytest.mark.parametrize("n", [1, 3, 9, 63, 65, 130])
@pytest.mark.parametrize("method", ["na", "stbp", "tssl"])
def test_narrow_blocks_match_the_reference(n, method):
    """Blocks narrower than 64 neurons (a thread's share rounded up to a pack) give the reference's values."""
    p = params(method=method)
    c = make_input(7, (n,), seed=n)
    g = make_grad(c)
    y = native_forward(c, p)
    assert torch.equal(
        y,
        reference.lif_forward(
            c, LifParams(tau_m=p["tau_m"], tau_s=p["tau_s"], threshold=p["threshold"], output=p["output"])
        ),
    )
    torch.testing.assert_close(
        native_backward(method, g, c, p), reference_backward(method, g, c, p), rtol=1e-12, atol=1e-12
    )


@needs_native
def test_compile_dynamic_fullgraph():
    """Validation used math.isfinite on the (symbolic) float arguments: dynamo refused the graph."""
    torch._dynamo.reset()

    def f(x: torch.Tensor, threshold: float) -> torch.Tensor:
        return na_cuda.lif(x, threshold=threshold, tau_m=4.0)

    compiled = torch.compile(f, dynamic=True, fullgraph=True)
    for shape, thr in (((4, 3), 1.0), ((6, 5), 0.7)):
        x = make_input(shape[0], shape[1:], dtype=torch.float32, seed=shape[0])
        assert torch.equal(compiled(x, thr), f(x, thr))
