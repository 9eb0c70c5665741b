"""Autograd and fake (meta) registrations of the compiled ops (schemas live in csrc/ops.cpp).

Every op takes the neuron's arguments (``tau_m, tau_s, threshold, v_reset, decay_input, strict_threshold,
output``) after its tensors. ``na_cuda::lif_forward`` is the neuron alone (no gradient: an input that
requires grad raises, naming the rule ops); ``na_cuda::lif_<rule>``
(``lif_na``, ``lif_stbp``, ``lif_tssl``) is the same forward plus that rule's arguments, and its autograd formula
calls ``na_cuda::<rule>_backward`` with the same arguments: NA (docs/algorithm.md §3), STBP (§5), TSSL-BP (§6).
The registration below is one loop over the rule objects of na_cuda/rules.py. Only the input ``c`` is saved
for backward: the kernels recompute u and s, so the saved memory per neuron-step is the input.

The fake kernels check what the C++ bindings check (csrc/op_args.h), the tensors and the scalar arguments: with a
meta or fake tensor among the arguments the dispatcher calls them instead of a kernel, so their checks are the only
ones on that path (torch.compile traces with fake tensors: a bad argument fails at compile time).
Double backward (a grad of a grad made with ``create_graph=True``) is not implemented by the kernels: the backward
ops' own backward raises a RuntimeError naming the fix (``backend="torch"``) instead of a silent zero.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import torch

from . import _backend
from .params import LifParams
from .rules import RULES

#: The rules with a compiled op pair ``lif_<name>`` / ``<name>_backward``: every rule object's name.
RULE_OPS = tuple(RULES)


def _check_input(x: torch.Tensor, name: str) -> None:
    # torch._check keeps symbolic sizes symbolic under torch.compile (a runtime assert, not a guard).
    torch._check(x.dim() >= 1, lambda: f"na_cuda: `{name}` must have shape [T, ...] with a time dimension first")
    torch._check(x.shape[0] >= 1, lambda: f"na_cuda: `{name}` must have T = size(0) >= 1; got shape {tuple(x.shape)}")
    torch._check(
        x.dtype.is_floating_point,
        lambda: f"na_cuda: `{name}` must be float16, bfloat16, float32 or float64; got {x.dtype}",
    )


def _check_args(rule: Optional[str], c: torch.Tensor, args: tuple) -> None:
    """The op's scalar arguments, checked as the C++ bindings check them (csrc/op_args.h), by the Python classes
    that the public API validates with (``LifParams``, the rule of ``rule``, its ``check`` and the compute dtype
    fit). ValueError/TypeError become the RuntimeError the native op raises. Symbolic scalars (torch.compile with
    unspecialised floats) are left to the kernel's checks at run time."""
    if any(isinstance(a, (torch.SymInt, torch.SymFloat, torch.SymBool)) for a in args):
        return
    tau_m, tau_s, threshold, v_reset, decay_input, strict, output = args[:7]
    try:
        neuron = LifParams(tau_m, tau_s, threshold, v_reset, decay_input, output, strict)
        if rule is None:
            neuron.fit_dtype(c.dtype)
        else:
            r = RULES[rule](*args[7:])  # the rule's op arguments are its fields, in order (rules.py)
            r.check(neuron)
            r.fit_dtype(neuron, c.dtype)
    except (TypeError, ValueError) as exc:
        raise RuntimeError(str(exc)) from None


def _fake_forward_of(rule: Optional[str]) -> Callable[..., torch.Tensor]:
    """The fake kernel of ``lif_<rule>`` (``lif_forward`` for None)."""

    def fake(c: torch.Tensor, *args: Any) -> torch.Tensor:
        _check_input(c, "c")
        _check_args(rule, c, args)
        return c.new_empty(c.shape)  # the kernels return a fresh contiguous tensor whatever the input strides

    return fake


def _fake_backward_of(rule: str) -> Callable[..., torch.Tensor]:
    """The fake kernel of ``<rule>_backward``."""

    def fake(grad_out: torch.Tensor, c: torch.Tensor, *args: Any) -> torch.Tensor:
        _check_backward(grad_out, c)
        _check_args(rule, c, args)
        return c.new_empty(c.shape)

    return fake


def _check_backward(grad_out: torch.Tensor, c: torch.Tensor) -> None:
    _check_input(c, "c")
    _check_input(grad_out, "grad_out")
    torch._check(
        grad_out.device == c.device,
        lambda: f"na_cuda: `grad_out` is on {grad_out.device} but `c` is on {c.device}; move them to the same device",
    )
    torch._check(
        grad_out.dtype == c.dtype, lambda: f"na_cuda: `grad_out` has dtype {grad_out.dtype} but `c` has dtype {c.dtype}"
    )
    torch._check(
        grad_out.dim() == c.dim(),
        lambda: f"na_cuda: `grad_out` has shape {tuple(grad_out.shape)} but `c` has shape {tuple(c.shape)}",
    )
    for a, b in zip(grad_out.shape, c.shape):
        torch._check(
            a == b, lambda: f"na_cuda: `grad_out` has shape {tuple(grad_out.shape)} but `c` has shape {tuple(c.shape)}"
        )


def _setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
    ctx.save_for_backward(inputs[0])
    ctx.args = inputs[1:]


def _backward_of(rule: str) -> Callable[[Any, torch.Tensor], tuple]:
    """The autograd formula of ``lif_<rule>``: ``<rule>_backward(grad, c, *args)``, no gradient for the args."""
    op = getattr(torch.ops.na_cuda, f"{rule}_backward")

    def backward(ctx: Any, grad: torch.Tensor) -> tuple:
        (c,) = ctx.saved_tensors
        return (op(grad, c, *ctx.args),) + (None,) * len(ctx.args)

    return backward


def _no_double_backward(ctx: Any, grad: torch.Tensor) -> tuple:
    raise RuntimeError(
        "na_cuda: double backward (differentiating a gradient made with create_graph=True) is not implemented by "
        'the native kernels; use backend="torch" (the pure-PyTorch reference) for double backward'
    )


def _forward_has_no_gradient(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
    """The setup_context of ``lif_forward``: called only when grad mode is on and an input requires grad."""
    ops = " / ".join(f"torch.ops.na_cuda.lif_{r}" for r in RULE_OPS)
    raise RuntimeError(
        "na_cuda: torch.ops.na_cuda.lif_forward is the neuron without a training rule and has no gradient, but its "
        f"input requires grad; call {ops} (the same forward with the rule's backward), na_cuda.lif(..., "
        "method=...), or run it under torch.no_grad() / on c.detach()"
    )


def _register() -> None:
    torch.library.register_fake("na_cuda::lif_forward")(_fake_forward_of(None))
    # Without an autograd kernel the dispatcher falls through with only torch's generic warning, and the input's
    # gradient is silently zero: this one raises instead (at the forward, before any backward).
    torch.library.register_autograd("na_cuda::lif_forward", _no_double_backward, setup_context=_forward_has_no_gradient)
    for rule in RULE_OPS:
        torch.library.register_fake(f"na_cuda::lif_{rule}")(_fake_forward_of(rule))
        torch.library.register_autograd(f"na_cuda::lif_{rule}", _backward_of(rule), setup_context=_setup_context)
        torch.library.register_fake(f"na_cuda::{rule}_backward")(_fake_backward_of(rule))
        # Registered so that a second grad reaches a clear error instead of a silent None (no autograd kernel).
        torch.library.register_autograd(f"na_cuda::{rule}_backward", _no_double_backward)


if _backend.native_loaded():
    _register()
