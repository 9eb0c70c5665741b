"""Autograd and fake (meta) registrations of the compiled ops (schemas live in csrc/ops.cpp).

Every op takes the neuron's arguments (``tau_m, tau_s, threshold, v_reset, decay_input, strict_threshold,
output``) after its tensors, then the rule's, then two trailing optional ones: ``decay`` (None, or the learnable
leak per neuron ``[N]`` in the compute dtype, docs/algorithm.md §12) and ``reset_mechanism`` (None, or snnTorch's
"subtract"/"none", §11). The backward ops return ``(grad_c, dL/dlam)``, the second empty without a decay.
``na_cuda::lif_forward`` is the neuron alone (no gradient: an input that
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
#: The neuron's op arguments (LifParams.op_args), before each rule's (Rule.op_args) and the trailing optional two.
_NEURON_ARGS = 7


def _n_args(rule: Optional[str]) -> int:
    """The op's arguments before the trailing ``decay, reset_mechanism``: the neuron's and the rule's."""
    return _NEURON_ARGS + (0 if rule is None else len(RULES[rule]().op_args()))


def _trailing(rule: Optional[str], args: tuple) -> tuple:
    """``(decay, reset_mechanism)`` of an op call's arguments after its tensors (None where left at the default)."""
    rest = tuple(args[_n_args(rule) :]) + (None, None)
    return rest[0], rest[1]


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
    tau_m, tau_s, threshold, v_reset, decay_input, strict, output = args[:_NEURON_ARGS]
    decay, mechanism = _trailing(rule, args)
    try:
        if mechanism is not None and (mechanism not in ("subtract", "none") or v_reset is not None):
            raise ValueError(
                f'na_cuda: `reset_mechanism` must be None, "subtract" or "none" with v_reset=None; got '
                f"{mechanism!r} with v_reset={v_reset!r}"
            )
        neuron = LifParams(tau_m, tau_s, threshold, v_reset, decay_input, output, strict, mechanism)
        if rule is None:
            neuron.fit_dtype(c.dtype)
        else:
            r = RULES[rule](*args[_NEURON_ARGS : _n_args(rule)])  # the rule's op arguments are its fields, in order
            r.check(neuron)
            r.fit_dtype(neuron, c.dtype)
    except (TypeError, ValueError) as exc:
        raise RuntimeError(str(exc)) from None
    if decay is not None:
        n = c.numel() // c.shape[0]
        want = torch.float64 if c.dtype == torch.float64 else torch.float32
        torch._check(
            decay.dim() == 1 and decay.shape[0] == n,
            lambda: f"na_cuda: `decay` must have shape [N] = [{n}] (one lam per neuron of c); got {list(decay.shape)}",
        )
        torch._check(decay.dtype == want, lambda: f"na_cuda: `decay` must have dtype {want}; got {decay.dtype}")
        # A meta decay beside a real c dispatches here too (the Meta key wins): without this check the op returned
        # an uninitialised tensor on c's device instead of the kernels' device error.
        torch._check(
            decay.device == c.device,
            lambda: f"na_cuda: `decay` is on {decay.device} but `c` is on {c.device}; move them to the same device",
        )


def _fake_forward_of(rule: Optional[str]) -> Callable[..., torch.Tensor]:
    """The fake kernel of ``lif_<rule>`` (``lif_forward`` for None)."""

    def fake(c: torch.Tensor, *args: Any) -> torch.Tensor:
        _check_input(c, "c")
        _check_args(rule, c, args)
        return c.new_empty(c.shape)  # the kernels return a fresh contiguous tensor whatever the input strides

    return fake


def _fake_backward_of(rule: str) -> Callable[..., tuple]:
    """The fake kernel of ``<rule>_backward``: ``(grad_c, dL/dlam)``, the second empty without a decay."""

    def fake(grad_out: torch.Tensor, c: torch.Tensor, *args: Any) -> tuple:
        _check_backward(grad_out, c)
        _check_args(rule, c, args)
        decay = _trailing(rule, args)[0]
        return c.new_empty(c.shape), (decay.new_empty(decay.shape) if decay is not None else c.new_empty((0,)))

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


def _setup_context_of(rule: str) -> Callable[[Any, tuple, torch.Tensor], None]:
    """Saves ``c`` and the trailing ``decay`` (either trailing argument may be left at its default None)."""
    n = _n_args(rule)

    def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        decay, mechanism = _trailing(rule, inputs[1:])
        ctx.save_for_backward(inputs[0], decay)
        ctx.args = inputs[1 : 1 + n]
        ctx.reset_mechanism = mechanism
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
        torch.library.register_autograd(
            f"na_cuda::lif_{rule}", _backward_of(rule), setup_context=_setup_context_of(rule)
        )
        torch.library.register_fake(f"na_cuda::{rule}_backward")(_fake_backward_of(rule))
        # Registered so that a second grad reaches a clear error instead of a silent None (no autograd kernel).
        torch.library.register_autograd(f"na_cuda::{rule}_backward", _no_double_backward)


if _backend.native_loaded():
    _register()
