"""The custom-backward wrapper of the reference (a rule's backward on the reference forward).

Part of ``na_cuda.reference`` (see its docstring for the conventions)."""

from __future__ import annotations

import torch

from .forward import lif_forward


# ----------------------------------------------------------------------------------------------------------------
# differentiable entry point
# ----------------------------------------------------------------------------------------------------------------
class CustomBackward(torch.autograd.Function):
    """Forward = :func:`lif_forward` of ``neuron`` (a ``LifParams``); backward = ``backward(grad_out, c)``, a rule's
    reference backward (NA, TSSL-BP). Saves only ``c``."""

    @staticmethod
    def forward(ctx, c: torch.Tensor, neuron, backward) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(c)
        ctx.backward_fn = backward
        return lif_forward(
            c,
            neuron.tau_m,
            neuron.tau_s,
            neuron.threshold,
            neuron.output,
            neuron.strict_threshold,
            v_reset=neuron.v_reset,
            decay_input=neuron.decay_input,
        )

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):  # type: ignore[override]
        (c,) = ctx.saved_tensors
        return ctx.backward_fn(grad_out, c), None, None
