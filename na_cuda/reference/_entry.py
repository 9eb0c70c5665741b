"""The custom-backward wrapper of the reference (a rule's backward on the reference forward).

Part of ``na_cuda.reference`` (see its docstring for the conventions). See docs/algorithm.md."""

from __future__ import annotations

import torch

from .forward import lif_forward


# ----------------------------------------------------------------------------------------------------------------
# differentiable entry point
# ----------------------------------------------------------------------------------------------------------------
class CustomBackward(torch.autograd.Function):
    """Forward = :func:`lif_forward` of ``neuron`` (a ``LifParams``) with the learnable leak ``decay`` (``[N]`` or
    None, sec. 12); backward = ``backward(grad_out, c, decay)``, a rule's reference backward (NA, TSSL-BP), which
    returns ``grad_c`` or, with a decay, ``(grad_c, dL/dlam)``. Saves only ``c`` (and ``decay``)."""

    @staticmethod
    def forward(ctx, c: torch.Tensor, decay, neuron, backward) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(c, decay)
        ctx.backward_fn = backward
        return lif_forward(c, neuron, decay)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):  # type: ignore[override]
        c, decay = ctx.saved_tensors
        if decay is None:
            return ctx.backward_fn(grad_out, c, None), None, None, None
        grad, gdecay = ctx.backward_fn(grad_out, c, decay)
        return grad, gdecay.to(decay.dtype), None, None
