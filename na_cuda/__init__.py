"""na_cuda: train spiking neural networks with Neighborhood Aggregation (Yang, Zhang & Li, ICML 2021).

y = na_cuda.lif(c)                       # c: [T, ...] synaptic input -> y: [T, ...] PSC (or spikes)
na_cuda.nn.LIF(), na_cuda.nn.SeqToANN(...)
na_cuda.LifParams(...), na_cuda.NA(...) / STBP(...) / TSSL()   # the typed neuron and rule objects
na_cuda.backends()                       # what was compiled, and what backend="auto" picks See docs/api.md.
"""

from __future__ import annotations

from . import _backend, losses, nn, ops, params, reference, rules  # noqa: F401  (ops registers autograd/fake kernels when _C loaded)
from ._backend import NativeBackendWarning, backends
from .functional import lif
from .params import LifParams
from .rules import NA, RULES, STBP, TSSL

__version__ = "0.3.0"
__all__ = [
    "lif",
    "nn",
    "losses",
    "reference",
    "backends",
    "NativeBackendWarning",
    "LifParams",
    "NA",
    "STBP",
    "TSSL",
    "RULES",
    "__version__",
]
