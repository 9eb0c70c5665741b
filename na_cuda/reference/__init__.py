"""Pure-PyTorch reference implementation of the LIF neuron and its backward rules: the oracle of the kernel tests.

Written independently of the kernels, from docs/algorithm.md ("the spec") and the NA paper (equation numbers);
it never imports the compiled extension. Every function takes the typed objects, ``(c, neuron, rule, decay)``
(``na_cuda.LifParams``, ``NA`` / ``STBP`` / ``TSSL``); results have the shape and dtype of ``c``. Contents:
:func:`lif_states`, :func:`lif_forward` (spec §2), :func:`na_backward` (SNS, the direct way, spec §3),
:func:`stbp_forward` (autograd through it is STBP, spec §5), :func:`tssl_backward` (spec §6), :func:`lif`.
Its conventions (shapes, dtypes, shifted coordinates, the spike rule): docs/api.md, "The reference
(na_cuda.reference)".
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
