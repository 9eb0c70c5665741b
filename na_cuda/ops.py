"""Autograd and fake (meta) registrations of the compiled ops (schemas live in csrc/ops.cpp).

`na_cuda::lif` is the one forward of every method; its registered backward calls the backward op of the method
named in the call: `na_backward` (NA, spec §3), `stbp_backward` (spec §5) or `tssl_backward` (spec §6). Only the
input `c` is saved for backward: the kernels recompute u and s, so the saved memory per neuron-step is the input.
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


def _like(c: torch.Tensor) -> torch.Tensor:
    # The kernels return a fresh contiguous tensor whatever the input strides.
    return c.new_empty(c.shape)


def _register() -> None:
    torch.library.register_fake("na_cuda::lif")(lambda c, *args: _like(c))
    for name in ("na_backward", "stbp_backward", "tssl_backward"):
        torch.library.register_fake(f"na_cuda::{name}")(lambda grad_out, c, *args: _like(c))
    torch.library.register_autograd("na_cuda::lif", _lif_backward, setup_context=_setup_context)


if _backend.native_loaded():
    _register()
