"""The STBP surrogates (spec §5), written once for Python: name, default ``surrogate_alpha`` and its lower bound, and
the spikingjelly / snnTorch surrogate each one equals (what ``convert`` and ``LIF.from_snntorch`` map).

The C++ table is ``csrc/core/rules/surrogates.h`` (the same names in the same order: ``tests/test_surrogates.py``
compares them through the library's ``na_cuda_surrogates``). The formulas are in ``docs/api.md``; the reference
computes them independently (``na_cuda.reference.surrogate_grad``). Recipe: ``docs/development.md``, "Add a
surrogate". Bottom floor: this module imports nothing else of the package.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional


def _same(a: float) -> float:
    return a


def _inverse(a: float) -> float:
    return 1.0 / a


@dataclass(frozen=True)
class Surrogate:
    """One surrogate: ``alpha`` must be > ``alpha_min``. ``spikingjelly``: the class of
    ``spikingjelly.activation_based.surrogate`` with this derivative, its parameter ``sj_param`` mapped to
    ``alpha`` by ``sj_alpha``, its other parameters required to equal ``sj_fixed``. ``snntorch``: the factory of
    ``snntorch.surrogate`` with this derivative and its parameter (None: it has none, ``alpha`` is the default)."""

    name: str
    alpha: float
    alpha_min: float = 0.0
    spikingjelly: Optional[str] = None
    sj_param: str = "alpha"
    sj_alpha: Callable[[float], float] = _same
    sj_fixed: dict[str, float] = field(default_factory=dict)
    snntorch: Optional[str] = None
    snn_param: Optional[str] = None


#: In the order of the C++ enum (csrc/core/rules/surrogates.h).
TABLE: tuple[Surrogate, ...] = (
    Surrogate("rect", 1.0, spikingjelly="Rect", sj_alpha=_inverse),  # width a = 1/alpha
    Surrogate("triangle", 1.0, spikingjelly="PiecewiseQuadratic", sj_alpha=_inverse),  # g = 1/alpha
    Surrogate("sigmoid", 4.0, spikingjelly="Sigmoid", snntorch="sigmoid", snn_param="slope"),
    Surrogate("atan", 2.0, spikingjelly="ATan", snntorch="atan", snn_param="alpha"),
    Surrogate("fast_sigmoid", 25.0, snntorch="fast_sigmoid", snn_param="slope"),
    Surrogate("soft_sign", 2.0, spikingjelly="SoftSign"),
    Surrogate("erf", 2.0, spikingjelly="Erf"),
    Surrogate("piecewise_exp", 1.0, spikingjelly="PiecewiseExp"),
    Surrogate("piecewise_leaky_relu", 1.0, spikingjelly="PiecewiseLeakyReLU", sj_param="w", sj_fixed={"c": 0.01}),
    Surrogate("super_spike", 1.0, spikingjelly="SuperSpike"),
    Surrogate("q_pseudo_spike", 2.0, alpha_min=1.0, spikingjelly="QPseudoSpike"),
    Surrogate("triangular", 1.0, snntorch="triangular", snn_param="threshold"),
    Surrogate("straight_through_estimator", 1.0, snntorch="straight_through_estimator"),
)

#: name -> default ``surrogate_alpha``.
SURROGATE_DEFAULT_ALPHA: dict[str, float] = {s.name: s.alpha for s in TABLE}
SURROGATES: tuple[str, ...] = tuple(SURROGATE_DEFAULT_ALPHA)
BY_NAME: dict[str, Surrogate] = {s.name: s for s in TABLE}


def check_alpha(surrogate: str, alpha: float) -> None:
    """Raise ValueError unless ``alpha`` > the surrogate's ``alpha_min``."""
    lo = BY_NAME[surrogate].alpha_min
    if not alpha > lo:
        raise ValueError(f"na_cuda: `surrogate_alpha` of {surrogate!r} must be > {lo:g}; got {alpha}")


__all__ = ["Surrogate", "TABLE", "SURROGATE_DEFAULT_ALPHA", "SURROGATES", "BY_NAME", "check_alpha"]
