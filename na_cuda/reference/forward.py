"""The LIF forward (eq. 1-4, spec sec. 2; neuron options sec. 9).

Part of ``na_cuda.reference`` (see its docstring for the conventions). See docs/algorithm.md."""

from __future__ import annotations

from typing import Optional

import torch

from ..params import LifParams
from ._core import _compute_dtype, _core, _scaled, _states_2d, _to_2d


def lif_states(
    c: torch.Tensor, neuron: LifParams, decay: Optional[torch.Tensor] = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """LIF states over time (paper eq. 1-4, spec sec. 2; options: docs/algorithm.md sec. 9).

    Per neuron, with ``v = vr`` (hard reset) or 0 (soft), ``a = 0`` before ``t = 0``::

        u[t] = lam * (v - vr) + vr + beta * c[t]   # pre-reset membrane potential (vr := 0 for a soft reset)
        s[t] = 1 if u[t] >= threshold              # H(0) = 1 (u > threshold with strict_threshold)
        v    = vr (hard) or u[t] - threshold (soft) if s[t] else u[t]
        a[t] = kappa * a + s[t] / tau_s            # PSC

    Args:
        c: synaptic input ``[T, ...]``.
        neuron: the neuron (``na_cuda.LifParams``; its ``output`` is not used here).
        decay: the learnable leak ``lam`` per neuron ``[N]`` in the compute dtype (sec. 12), or None.

    Returns:
        ``(u, s, a)``, each of shape ``c.shape`` in the *compute* dtype (float32 for half inputs). ``u`` is
        ``w + vr`` with ``w`` the shifted-coordinate potential (``u`` itself for ``vr = 0``).
    """
    dtype = _compute_dtype(c.dtype)
    core = _core(neuron, decay)
    u, s, a = _states_2d(_scaled(_to_2d(c, dtype), core), core)
    if neuron.v_reset:
        u = u + neuron.v_reset
    return u.reshape(c.shape), s.reshape(c.shape), a.reshape(c.shape)


def lif_forward(c: torch.Tensor, neuron: LifParams, decay: Optional[torch.Tensor] = None) -> torch.Tensor:
    """LIF forward (spec sec. 2): the PSC ``a`` (eq. 3, ``neuron.output="psc"``), the spikes ``s`` (``"spike"``) or
    the pre-reset membrane potential ``u`` (``"membrane"``, sec. 11).

    Returns a tensor of ``c``'s shape and dtype (spikes as 0/1 values).
    """
    u, s, a = lif_states(c, neuron, decay)
    out = a if neuron.output == "psc" else (u if neuron.output == "membrane" else s)
    return out.to(c.dtype)
