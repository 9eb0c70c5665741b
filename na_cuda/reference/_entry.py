"""The differentiable entry point (``reference.lif``) and the custom-backward wrapper.

Part of ``na_cuda.reference`` (see its docstring for the conventions)."""

from __future__ import annotations

from typing import Any

import torch

from .forward import lif_forward


# ----------------------------------------------------------------------------------------------------------------
# differentiable entry point
# ----------------------------------------------------------------------------------------------------------------
class CustomBackward(torch.autograd.Function):
    """Forward = :func:`lif_forward` of ``neuron`` (a ``LifParams``) with the learnable leak ``decay`` (``[N]`` or
    None, sec. 11); backward = ``backward(grad_out, c, decay)``, a rule's reference backward (NA, TSSL-BP), which
    returns ``grad_c`` or, with a decay, ``(grad_c, dL/dlam)``. Saves only ``c`` (and ``decay``)."""

    @staticmethod
    def forward(ctx, c: torch.Tensor, decay, neuron, backward) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(c, decay)
        ctx.backward_fn = backward
        return lif_forward(
            c,
            neuron.tau_m,
            neuron.tau_s,
            neuron.threshold,
            neuron.output,
            neuron.strict_threshold,
            decay=decay,
            **neuron.reference_kwargs(),
        )

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):  # type: ignore[override]
        c, decay = ctx.saved_tensors
        if decay is None:
            return ctx.backward_fn(grad_out, c, None), None, None, None
        grad, gdecay = ctx.backward_fn(grad_out, c, decay)
        return grad, gdecay.to(decay.dtype), None, None


def lif(c: torch.Tensor, **options: Any) -> torch.Tensor:
    """Differentiable LIF layer over time, reference version of the public ``na_cuda.lif``: the same keywords
    (the neuron's and the rule's, validated the same way by ``na_cuda._validate.build``), without ``backend``.

    ``method`` names a rule of ``na_cuda.rules.RULES``: ``"na"`` (NA-SNS backward, spec sec. 3), ``"tssl"``
    (TSSL-BP, spec sec. 6, PSC output only) or ``"stbp"`` (autograd through :func:`stbp_forward`, spec sec. 5).
    Returns the PSC or the spikes (``output``) with the shape and dtype of ``c``.
    """
    from .. import _validate  # lazy: the rules import this module

    if "backend" in options:
        raise TypeError("na_cuda.reference.lif() is the pure-PyTorch backend; it takes no `backend` (use na_cuda.lif)")
    neuron, rule, _ = _validate.build(**options)
    return rule.reference(c, neuron)
