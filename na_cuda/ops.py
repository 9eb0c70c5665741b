"""Autograd and fake (meta) registrations of the compiled ops; the schemas live in csrc/ops.cpp.

``lif_forward`` is the neuron alone (no gradient); ``lif_<rule>`` is the same forward whose autograd formula calls
``<rule>_backward``. An op's arguments after its tensors are named like the public keywords (the fields of
``LifParams`` and of the rule, then ``decay`` and ``reset_mechanism``), so every function here binds them by name
and rebuilds the typed objects: the fake kernels check what the bindings check (csrc/op_args.h) with the same
Python classes as the public API. Only ``c`` (and ``decay``) is saved for backward. ``call_rule`` is
``na_cuda.lif``'s eager entry: the same formula without torch.library's per-call argument filling. See
docs/development.md, "Layout".
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Optional

import torch

from . import _backend
from .params import LifParams
from .rules import RULES

#: The rules with a compiled op pair ``lif_<name>`` / ``<name>_backward``: every rule object's name.
RULE_OPS = tuple(RULES)


@functools.cache
def _arguments(op_name: str, tensors: int) -> dict[str, Any]:
    """Name -> default (None where it has none) of an op's arguments after its ``tensors`` leading tensors."""
    schema = getattr(torch.ops.na_cuda, op_name).default._schema
    return {a.name: a.default_value for a in schema.arguments[tensors:]}


def _bind(op_name: str, args: tuple, tensors: int) -> dict[str, Any]:
    """An op call's arguments after its tensors by schema name (trailing defaults filled in)."""
    values = dict(_arguments(op_name, tensors))
    values.update(zip(values, args))
    return values


def _check_input(x: torch.Tensor, name: str) -> None:
    # torch._check keeps symbolic sizes symbolic under torch.compile (a runtime assert, not a guard).
    torch._check(x.dim() >= 1, lambda: f"na_cuda: `{name}` must have shape [T, ...] with a time dimension first")
    torch._check(x.shape[0] >= 1, lambda: f"na_cuda: `{name}` must have T = size(0) >= 1; got shape {tuple(x.shape)}")
    torch._check(
        x.dtype.is_floating_point,
        lambda: f"na_cuda: `{name}` must be float16, bfloat16, float32 or float64; got {x.dtype}",
    )


def _check_args(rule: Optional[str], c: torch.Tensor, values: dict[str, Any]) -> None:
    """The op's scalar arguments (``values``, by name), checked as the bindings check them (csrc/op_args.h) by the
    classes the public API validates with: ValueError/TypeError become the RuntimeError the native op raises.
    Symbolic scalars (torch.compile with unspecialised floats) are left to the kernel's checks at run time."""
    if any(isinstance(a, (torch.SymInt, torch.SymFloat, torch.SymBool)) for a in values.values()):
        return
    try:
        neuron = LifParams.from_op(values)
        if rule is None:
            neuron.fit_dtype(c.dtype)
        else:
            r = RULES[rule].from_keywords(values)
            r.check(neuron)
            r.fit_dtype(neuron, c.dtype)
    except (TypeError, ValueError) as exc:
        raise RuntimeError(str(exc)) from None
    decay = values["decay"]
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

    name = "lif_forward" if rule is None else f"lif_{rule}"

    def fake(c: torch.Tensor, *args: Any) -> torch.Tensor:
        _check_input(c, "c")
        _check_args(rule, c, _bind(name, args, 1))
        return c.new_empty(c.shape)  # the kernels return a fresh contiguous tensor whatever the input strides

    return fake


def _fake_backward_of(rule: str) -> Callable[..., tuple]:
    """The fake kernel of ``<rule>_backward``: ``(grad_c, dL/dlam)``, the second empty without a decay."""

    def fake(grad_out: torch.Tensor, c: torch.Tensor, *args: Any) -> tuple:
        _check_backward(grad_out, c)
        values = _bind(f"{rule}_backward", args, 2)
        _check_args(rule, c, values)
        decay = values["decay"]
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
    """Saves ``c`` and ``decay``; the other arguments go to the backward op as they came."""

    defaults = tuple(_arguments(f"lif_{rule}", 1).values())
    at = tuple(_arguments(f"lif_{rule}", 1)).index("decay")

    def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        args = inputs[1:] + defaults[len(inputs) - 1 :]  # trailing defaults may be left out of a call
        ctx.save_for_backward(inputs[0], args[at])
        ctx.args = args
        ctx.n_inputs = len(inputs)

    return setup_context


def _rule_backward(rule: str, grad: torch.Tensor, c: torch.Tensor, decay: Any, args: tuple) -> tuple:
    """``lif_<rule>``'s gradient: ``<rule>_backward(grad, c, *args)`` with the forward's arguments (``decay``, the
    saved one, in its place): ``(grad_c, dL/dlam or None)``, both from the same kernel pass."""
    at = _decay_index(rule)
    grad_c, grad_decay = getattr(torch.ops.na_cuda, f"{rule}_backward")(grad, c, *args[:at], decay, *args[at + 1 :])
    return grad_c, (grad_decay if decay is not None else None)


@functools.cache
def _decay_index(rule: str) -> int:
    return tuple(_arguments(f"lif_{rule}", 1)).index("decay")


def _backward_of(rule: str) -> Callable[[Any, torch.Tensor], tuple]:
    """The autograd formula of ``lif_<rule>`` (``_rule_backward``): gradients for ``c`` and the learnable
    ``decay``, none for the other arguments."""
    n_args, at = len(_arguments(f"lif_{rule}", 1)), _decay_index(rule)

    def backward(ctx: Any, grad: torch.Tensor) -> tuple:
        c, decay = ctx.saved_tensors
        grad_c, grad_decay = _rule_backward(rule, grad, c, decay, ctx.args)
        grads: list[Any] = [None] * n_args
        grads[at] = grad_decay
        return ((grad_c,) + tuple(grads))[: ctx.n_inputs]

    return backward


class _EagerRule(torch.autograd.Function):
    """``lif_<rule>`` with its registered autograd formula (``_rule_backward``), for calls that pass every
    argument (``call_rule``): torch.library's autograd wrapper first refills the call's defaults from the schema
    (``torch._library.utils.fill_defaults``, ~45 us a call with 13 arguments), which is measurable against a
    kernel of a few ms. torch.compile traces the op itself (``call_rule``)."""

    # forward(ctx, ...) rather than setup_context: Function.apply binds a setup_context forward's arguments with
    # inspect.signature at every call, which costs as much as fill_defaults.
    @staticmethod
    def forward(ctx: Any, rule: str, c: torch.Tensor, decay: Optional[torch.Tensor], args: tuple) -> torch.Tensor:
        ctx.save_for_backward(c, decay)
        ctx.rule, ctx.args = rule, args
        return getattr(torch.ops.na_cuda, f"lif_{rule}")(c, *args)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple:
        c, decay = ctx.saved_tensors
        return (None, *_rule_backward(ctx.rule, grad, c, decay, ctx.args), None)


def call_rule(rule: str, c: torch.Tensor, args: tuple) -> torch.Tensor:
    """``torch.ops.na_cuda.lif_<rule>(c, *args)`` with every argument given (``Rule.native_args``): the same
    values and gradients, by the faster eager path where a gradient is recorded (``_EagerRule``)."""
    op = getattr(torch.ops.na_cuda, f"lif_{rule}")
    if torch.compiler.is_compiling() or not torch.is_grad_enabled():
        return op(c, *args)
    decay = args[_decay_index(rule)]
    if not (c.requires_grad or (decay is not None and decay.requires_grad)):
        return op(c, *args)
    return _EagerRule.apply(rule, c, decay, args)


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
