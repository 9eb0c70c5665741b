"""Autograd and fake (meta) registrations of the compiled ops (schemas live in csrc/ops.cpp).

Every op takes the neuron's arguments (``tau_m, tau_s, threshold, v_reset, decay_input, strict_threshold,
output``) after its tensors, then the rule's, then two trailing optional ones: ``decay`` (None, or the learnable
leak per neuron ``[N]`` in the compute dtype, docs/algorithm.md §11) and ``reset_mechanism`` (None, or snnTorch's
"subtract"/"none", §10). The backward ops return ``(grad_c, dL/dlam)``, the second empty without a decay.
``na_cuda::lif_forward`` is the neuron alone (no autograd); ``na_cuda::lif_<rule>``
(``lif_na``, ``lif_stbp``, ``lif_tssl``) is the same forward plus that rule's arguments, and its autograd formula
calls ``na_cuda::<rule>_backward`` with the same arguments: NA (docs/algorithm.md §3), STBP (§5), TSSL-BP (§6).
The registration below is one loop over the rule objects of na_cuda/rules.py. Only the input ``c`` is saved
for backward: the kernels recompute u and s, so the saved memory per neuron-step is the input.

The fake kernels check what the C++ bindings check on tensors (csrc/op_args.h): with a meta or fake tensor among
the arguments the dispatcher calls them instead of a kernel, so their checks are the only ones on that path.
Double backward (a grad of a grad made with ``create_graph=True``) is not implemented by the kernels: the backward
ops' own backward raises a RuntimeError naming the fix (``backend="torch"``) instead of a silent zero.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from . import _backend
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


def _fake_forward(c: torch.Tensor, *args: Any) -> torch.Tensor:
    _check_input(c, "c")
    return c.new_empty(c.shape)  # the kernels return a fresh contiguous tensor whatever the input strides


def _fake_backward(grad_out: torch.Tensor, c: torch.Tensor, *args: Any) -> tuple:
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
    decay = next((a for a in args if isinstance(a, torch.Tensor)), None)  # the only tensor argument after c
    gdecay = decay.new_empty(decay.shape) if decay is not None else c.new_empty((0,))
    return c.new_empty(c.shape), gdecay


#: Neuron arguments (LifParams.op_args) + each rule's (Rule.op_args) before the trailing optional ones.
_N_ARGS = {"na": 7 + 3, "stbp": 7 + 3, "tssl": 7}


def _setup_context_of(rule: str) -> Callable[[Any, tuple, torch.Tensor], None]:
    """Saves ``c`` and the trailing ``decay`` (either trailing argument may be left at its default None)."""
    n = _N_ARGS[rule]

    def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        trailing = tuple(inputs[1 + n :]) + (None, None)
        ctx.save_for_backward(inputs[0], trailing[0])
        ctx.args = inputs[1 : 1 + n]
        ctx.reset_mechanism = trailing[1]
        ctx.n_inputs = len(inputs)

    return setup_context


def _backward_of(rule: str) -> Callable[[Any, torch.Tensor], tuple]:
    """The autograd formula of ``lif_<rule>``: ``<rule>_backward(grad, c, *args, decay, reset_mechanism)``;
    gradients for ``c`` and the learnable ``decay`` (computed in the same kernel pass), none for the args."""
    op = getattr(torch.ops.na_cuda, f"{rule}_backward")

    def backward(ctx: Any, grad: torch.Tensor) -> tuple:
        c, decay = ctx.saved_tensors
        grad_c, grad_decay = op(grad, c, *ctx.args, decay, ctx.reset_mechanism)
        grads = (grad_c,) + (None,) * len(ctx.args) + (grad_decay if decay is not None else None, None)
        return grads[: ctx.n_inputs]

    return backward


def _no_double_backward(ctx: Any, *grads: Any) -> tuple:
    raise RuntimeError(
        "na_cuda: double backward (differentiating a gradient made with create_graph=True) is not implemented by "
        'the native kernels; use backend="torch" (the pure-PyTorch reference) for double backward'
    )


def _register() -> None:
    torch.library.register_fake("na_cuda::lif_forward")(_fake_forward)
    for rule in RULE_OPS:
        torch.library.register_fake(f"na_cuda::lif_{rule}")(_fake_forward)
        torch.library.register_autograd(
            f"na_cuda::lif_{rule}", _backward_of(rule), setup_context=_setup_context_of(rule)
        )
        torch.library.register_fake(f"na_cuda::{rule}_backward")(_fake_backward)
        # Registered so that a second grad reaches a clear error instead of a silent None (no autograd kernel).
        torch.library.register_autograd(f"na_cuda::{rule}_backward", _no_double_backward)


if _backend.native_loaded():
    _register()
