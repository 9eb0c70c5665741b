"""The differentiable entry point (:func:`lif`) and each training rule's reference for the rule objects of
``na_cuda.rules``: :func:`rule_forward` (a differentiable forward whose backward is the rule) and
:func:`rule_backward` (``grad_c`` of the rule).

Part of ``na_cuda.reference`` (see its docstring for the conventions). The reference depends on the rule and
neuron objects (``na_cuda.rules``, ``na_cuda.params``), never the reverse: a rule class holds no reference code, and
adding a rule adds its entry to :data:`_BACKWARDS` here. See docs/algorithm.md."""

from __future__ import annotations

from typing import Any, Callable, Optional

import torch

from .. import _validate
from ..params import LifParams, clamp_decay
from ..rules import NA, STBP, TSSL, Rule
from ._entry import CustomBackward
from .na import na_backward
from .stbp import stbp_forward
from .tssl import tssl_backward


def _stbp(rule: STBP, grad_out: torch.Tensor, c: torch.Tensor, neuron: LifParams, decay: Optional[torch.Tensor]) -> Any:
    """STBP's ``grad_c`` (and ``dL/dlam``): autograd through its differentiable forward (spec §5)."""
    x = c.detach().clone().requires_grad_(True)
    if decay is None:
        (gx,) = torch.autograd.grad(stbp_forward(x, neuron, rule), x, grad_out)
        return gx
    d = decay.detach().clone().requires_grad_(True)
    gx, gd = torch.autograd.grad(stbp_forward(x, neuron, rule, d), (x, d), grad_out)
    return gx, gd


#: Rule class -> its reference backward ``(rule, grad_out, c, neuron, decay) -> grad_c`` (or ``(grad_c, dL/dlam)``);
#: ``decay``: None, or the learnable leak per neuron ``[N]`` (docs/algorithm.md §12).
_BACKWARDS: dict[type[Rule], Callable[..., Any]] = {
    NA: lambda rule, g, c, neuron, decay: na_backward(g, c, neuron, rule, decay),
    STBP: _stbp,
    TSSL: lambda rule, g, c, neuron, decay: tssl_backward(g, c, neuron, rule, decay),
}


def rule_backward(
    rule: Rule, grad_out: torch.Tensor, c: torch.Tensor, neuron: LifParams, decay: Optional[torch.Tensor] = None
) -> Any:
    """``grad_c`` of ``rule`` by the reference (NA and TSSL-BP: their reference backward; STBP: autograd through
    its differentiable forward); ``(grad_c, dL/dlam [N])`` with a ``decay`` (docs/algorithm.md §12), which is
    clamped to [0, 1] as the ops clamp it, ``dL/dlam`` then 0 where it lay outside (``params.clamp_decay``)."""
    backward = _BACKWARDS.get(type(rule))
    if backward is None:
        raise TypeError(
            f"na_cuda.reference: no reference backward for the rule {type(rule).__name__}; add it to "
            "na_cuda/reference/_rules.py"
        )
    if decay is None:
        return backward(rule, grad_out, c, neuron, None)
    grad, gdecay = backward(rule, grad_out, c, neuron, decay.clamp(0.0, 1.0))
    return grad, torch.where((decay >= 0) & (decay <= 1), gdecay, torch.zeros_like(gdecay))  # clamp_decay's mask


def rule_forward(rule: Rule, c: torch.Tensor, neuron: LifParams, decay: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Differentiable pure-PyTorch forward of ``neuron`` whose backward is ``rule`` (the ``"torch"`` backend);
    ``decay`` (``[N]`` or None) is differentiable too, clamped to [0, 1] here as the ops clamp it (sec. 12)."""
    if decay is not None:
        decay = clamp_decay(decay)
    if isinstance(rule, STBP):
        return stbp_forward(c, neuron, rule, decay)
    return CustomBackward.apply(c, decay, neuron, lambda g, x, d: rule_backward(rule, g, x, neuron, d))


def lif(c: torch.Tensor, **options: Any) -> torch.Tensor:
    """Differentiable LIF layer over time, reference version of the public ``na_cuda.lif``: the same keywords
    (the neuron's and the rule's, validated the same way by ``na_cuda._validate.build``), without ``backend``.

    ``method`` names a rule of ``na_cuda.rules.RULES``: ``"na"`` (NA-SNS backward, spec sec. 3), ``"tssl"``
    (TSSL-BP, spec sec. 6, PSC output only) or ``"stbp"`` (autograd through :func:`stbp_forward`, spec sec. 5).
    Returns the PSC or the spikes (``output``) with the shape and dtype of ``c``.
    """
    if "backend" in options:
        raise TypeError("na_cuda.reference.lif() is the pure-PyTorch backend; it takes no `backend` (use na_cuda.lif)")
    neuron, rule, _ = _validate.build(**options)
    return rule_forward(rule, c, neuron)
