"""Autograd and fake (meta) registrations of the compiled ops (schemas live in csrc/ops.cpp).

Every op runs the one forward kernel: ``na_cuda::lif_forward(c, <neuron>)`` carries no gradient, and each rule's
op ``na_cuda::lif_<rule>(c, <neuron>, <rule args>)`` has a registered backward that calls
``na_cuda::<rule>_backward(grad_out, c, <the same arguments>)``: NA (spec §3), STBP (spec §5), TSSL-BP (spec §6).
Only the input `c` is saved for backward: the kernels recompute u and s, so the saved memory per neuron-step is
the input.

The fake kernels check what the C++ bindings check (csrc/op_args.h): with a meta or fake tensor among the
arguments the dispatcher calls them instead of a kernel, so their checks are the only ones on that path.
Double backward (a grad of a grad made with ``create_graph=True``) is not implemented by the kernels: the backward
ops' own backward raises a RuntimeError naming the fix (``backend="torch"``) instead of a silent zero.
"""
from __future__ import annotations

from typing import Any

import torch

from . import _backend

#: The rules' forward ops and their backward ops (the arguments after `c` are the same).
RULE_OPS = {"lif_na": "na_backward", "lif_stbp": "stbp_backward", "lif_tssl": "tssl_backward"}


def _setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
    ctx.save_for_backward(inputs[0])
    ctx.params = inputs[1:]


def _make_backward(backward_op: str) -> Any:
    """The autograd backward of a rule's op: its backward op on (grad, c, <the forward's arguments>)."""

    def backward(ctx: Any, grad: torch.Tensor) -> tuple:
        (c,) = ctx.saved_tensors
        gc = getattr(torch.ops.na_cuda, backward_op)(grad, c, *ctx.params)
        return (gc,) + (None,) * len(ctx.params)

    return backward


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
    torch.library.register_fake("na_cuda::lif_forward")(_fake_lif)
    for forward_op, backward_op in RULE_OPS.items():
        torch.library.register_fake(f"na_cuda::{forward_op}")(_fake_lif)
        torch.library.register_autograd(f"na_cuda::{forward_op}", _make_backward(backward_op),
                                        setup_context=_setup_context)
        torch.library.register_fake(f"na_cuda::{backward_op}")(_fake_backward)
        # Registered so that a second grad reaches a clear error instead of a silent None (no autograd kernel).
        torch.library.register_autograd(f"na_cuda::{backward_op}", _no_double_backward)


if _backend.native_loaded():
    _register()
