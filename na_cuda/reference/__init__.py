"""Pure-PyTorch reference implementation of the LIF neuron and its backward rules.

This module is the *oracle* the compiled CPU/CUDA kernels are tested against. It is written independently of
the kernels, directly from ``docs/algorithm.md`` (called "the spec" below) and the NA paper
(Yang et al., ICML 2021, "Backpropagated Neighborhood Aggregation for Accurate Training of Spiking Neural
Networks"; equation numbers refer to it). It must never import the compiled extension.

Conventions shared by every public function:

* ``c`` is the synaptic input, shape ``[T, ...]`` with time first (``T >= 1``). Internally it is reshaped to
  ``[T, N]`` (``N`` = product of the remaining dims); non-contiguous inputs are accepted (``reshape`` copies).
* Results have the shape and dtype of ``c``. The arithmetic is done in float32 when ``c`` is float16/bfloat16
  (half precision is too coarse for the membrane recursion) and in ``c``'s own dtype for float32/float64.
* Parameters are Python floats: ``lam = 1 - 1/tau_m`` (membrane leak; ``tau_m = inf`` is the IF neuron,
  ``lam = 1``), ``kappa = 1 - 1/tau_s`` (PSC decay), ``beta = 1/tau_m`` with ``decay_input`` else 1 (input scale).
* Neuron options (docs/algorithm.md sec. 9): ``v_reset = vr`` (a float, hard reset; 0 = the paper) or ``None``
  (soft reset: subtract the threshold). A hard reset is simulated in *shifted coordinates* ``w = v - vr``: then
  ``u - vr = lam * w + beta * c`` and the neuron is the paper's one with the threshold ``threshold - vr``,
  resetting to ``w = 0``. Mathematically this is ``u = lam (v - vr) + vr + beta c``; in floating point it is the
  chosen operation order (for ``vr = 0`` and ``beta = 1`` it is bit-for-bit the paper's recursion). The
  literal pipeline (:mod:`na_cuda.literal`) computes in the unshifted form, an independent check.
* Spike rule: ``u >= threshold`` fires, i.e. ``H(0) = 1`` (paper sec. 3.2; spec sec. 2); with
  ``strict_threshold=True``, ``u > threshold`` (the authors' released code, ``mem > threshold``).
* Vectorised over neurons; plain Python loops over time (the reference favours clarity over speed).

Contents:

* :func:`lif_states`, :func:`lif_forward` -- the forward pass (eq. 1-4, spec sec. 2).
* :func:`na_backward` -- NA with simple neighbourhood selection (SNS), eq. 13-17, spec sec. 3, computed the
  *direct* way (explicit neighbour simulation and ``a_p - a``), not via the efficient ``W`` form of the spec.
* :func:`stbp_forward` -- the same forward in differentiable torch ops with a surrogate spike derivative, so
  that autograd yields STBP (spec sec. 5).
* :func:`tssl_backward` -- the TSSL-BP backward (spec sec. 6, following the released code).
* :func:`lif` -- differentiable entry point choosing one of the above.
"""

from __future__ import annotations

from ..rules import SURROGATE_DEFAULT_ALPHA
from ._entry import CustomBackward
from ._rules import lif, rule_backward, rule_forward
from .forward import lif_forward, lif_states
from .na import error_signal, na_backward, na_phi, sns_loss_change, sns_neighbour_spikes
from .stbp import stbp_forward, surrogate_grad
from .tssl import tssl_backward

__all__ = [
    "SURROGATE_DEFAULT_ALPHA",
    "lif_states",
    "lif_forward",
    "error_signal",
    "sns_neighbour_spikes",
    "sns_loss_change",
    "na_phi",
    "na_backward",
    "surrogate_grad",
    "stbp_forward",
    "tssl_backward",
    "lif",
    "CustomBackward",
    "rule_forward",
    "rule_backward",
]
