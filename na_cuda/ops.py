"""Autograd and fake (meta) registrations of the compiled ops (schemas live in csrc/ops.cpp).

`na_cuda::lif` is the one forward of every method; its registered backward calls the backward op of the method
named in the call: `na_backward` (NA, spec §3), `stbp_backward` (spec §5) or `tssl_backward` (spec §6). Only the
input `c` is saved for backward: the kernels recompute u and s, so the saved memory per neuron-step is the input.

The fake kernels check what the C++ bindings check (csrc/op_args.h): with a meta or fake tensor among the
arguments the dispatcher calls them instead of a kernel, so their checks are the only ones on that path.
Double backward (a grad of a grad made with ``create_graph=True``) is not implemented by the kernels: the backward
ops' own backward raises a RuntimeError naming the fix (``backend="torch"``) instead of a silent zero.
"""
from __future__ import annotations

from typing import Any

import torch

from . import _backend

_N_PARAMS = 12  # arguments of na_cuda::lif after `c`


def _setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
    ctx.save_for_backward(inputs[0])
    ctx.params = inputs[1:]


def _lif_backward(ctx: Any, grad: torch.Tensor) -> tuple:
    (c,) = ctx.saved_tensors
    tau_m, tau_s, thr, strict, output, method, first_order, dist_power, clip, surrogate, alpha, detach = ctx.params
    if method == "na":
        gc = torch.ops.na_cuda.na_backward(grad, c, tau_m, tau_s, thr, strict, output, first_order, dist_power, clip)
    elif method == "stbp":
        gc = torch.ops.na_cuda.stbp_backward(grad, c, tau_m, tau_s, thr, strict, output, surrogate, alpha, detach)
    else:
        gc = torch.ops.na_cuda.tssl_backward(grad, c, tau_m, tau_s, thr, strict)
    return (gc,) + (None,) * _N_PARAMS


_BACKWARD_OPS = ("na_backward", "stbp_backward", "tssl_backward")


def _check_input(x: torch.Tensor, name: str) -> None:
    # torch._check keeps symbolic sizes symbolic under torch.compile (a runtime assert, not a guard).
    torch._check(x.dim() >= 1, lambda: f"na_cuda: `{name}` must have shape [T, ...] with a time dimension first")
    torch._check(x.shape[0] >= 1, lambda: f"na_cuda: `{name}` must have T = size(0) >= 1; got shape {tuple(x.shape)}")
    torch._check(x.dtype.is_floating_point,
                 lambda: f"na_cuda: `{name}` must be float16, bfloat16, float32 or float64; got {x.dtype}")


def _fake_lif(c: torch.Tensor, *args: Any) -> torch.Tensor:
    _check_input(c, "c")
    return c.new_empty(c.shape)  # the kernels return a fresh contiguous tensor whatever the input strides


def _fake_backward(grad_out: torch.Tensor, c: torch.Tensor, *args: Any) -> torch.Tensor:
    _check_input(c, "c")
    _check_input(grad_out, "grad_out")
    torch._check(grad_out.device == c.device, lambda: f"na_cuda: `grad_out` is on {grad_out.device} but `c` is on "
                 f"{c.device}; move them to the same device")
    torch._check(grad_out.dtype == c.dtype,
                 lambda: f"na_cuda: `grad_out` has dtype {grad_out.dtype} but `c` has dtype {c.dtype}")
    torch._check(grad_out.dim() == c.dim(), lambda: f"na_cuda: `grad_out` has shape {tuple(grad_out.shape)} but `c` "
                 f"has shape {tuple(c.shape)}")
    for a, b in zip(grad_out.shape, c.shape):
        torch._check(a == b, lambda: f"na_cuda: `grad_out` has shape {tuple(grad_out.shape)} but `c` has shape "
                     f"{tuple(c.shape)}")
    return c.new_empty(c.shape)


def _no_double_backward(ctx: Any, grad: torch.Tensor) -> tuple:
    raise RuntimeError(
        "na_cuda: double backward (differentiating a gradient made with create_graph=True) is not implemented by "
        'the native kernels; use backend="torch" (the pure-PyTorch reference) for double backward')


def _register() -> None:
    torch.library.register_fake("na_cuda::lif")(_fake_lif)
    for name in _BACKWARD_OPS:
        torch.library.register_fake(f"na_cuda::{name}")(_fake_backward)
        # Registered so that a second grad reaches a clear error instead of a silent None (no autograd kernel).
        torch.library.register_autograd(f"na_cuda::{name}", _no_double_backward)
    torch.library.register_autograd("na_cuda::lif", _lif_backward, setup_context=_setup_context)


if _backend.native_loaded():
    _register()
