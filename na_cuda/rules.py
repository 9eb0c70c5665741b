"""The training rules as typed objects: :class:`NA` (spec §3), :class:`STBP` (spec §5), :class:`TSSL` (spec §6).

A rule owns its fields (the keywords of ``na_cuda.lif``, their defaults and checks), the neurons it is defined for
(:meth:`Rule.check`), the dtype fit of its coefficients and its op call. :data:`RULES` is the one list of rules.
This module and ``na_cuda.params`` import nothing else of the package; see docs/development.md, "Add a rule".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Optional

import torch

from .params import KeywordFields, LifParams, Reset, choice, flag, real, values_fit_dtype
from .surrogates import SURROGATE_DEFAULT_ALPHA, SURROGATES, check_alpha

FIRST_ORDERS = ("paper", "taylor")


@dataclass(frozen=True)
class Rule(KeywordFields):
    """Base of the rule objects: frozen dataclasses whose fields are the rule's arguments (and its op's)."""

    name: ClassVar[str]

    def check(self, neuron: LifParams) -> None:
        """Raise ValueError if the rule is not defined for ``neuron``'s settings (default: every neuron)."""

    def fit_values(self) -> list[tuple[str, float]]:
        """``(name, value)`` of the rule's coefficients that must be normal numbers in the compute dtype."""
        return []

    def fit_dtype(self, neuron: LifParams, dtype: torch.dtype) -> None:
        """The neuron's and the rule's parameters must fit the compute dtype of ``dtype`` input."""
        neuron.fit_dtype(dtype)
        values_fit_dtype(self.fit_values(), dtype)

    def extra_repr(self) -> str:
        """``method=...`` and the rule's arguments, for ``nn.LIF``'s repr; an option left at a default of None
        (``na_window``: exact NA) is left out, so that the default repr stays what it was."""
        defaults = self.keywords()
        shown = [f"{k}={v!r}" for k, v in self.options().items() if not (v is None and defaults[k] is None)]
        return ", ".join([f"method={self.name!r}"] + shown)

    # ``decay``: None, or the learnable leak lam per neuron ``[N]`` in the compute dtype (docs/algorithm.md §12).
    # The ops' arguments are the neuron's fields, the rule's, decay, then LifParams.OP_TRAILING, named and ordered
    # like the fields (csrc/ops.cpp; tests/test_op_schemas.py checks every schema).
    def native_args(self, neuron: LifParams, decay: Optional[torch.Tensor] = None) -> tuple:
        """The ops' arguments after their tensors, every one given (schema order)."""
        return (*neuron.op_args(), *self.op_args(), decay, *neuron.op_trailing())

    def native(self, c: torch.Tensor, neuron: LifParams, decay: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The compiled op ``na_cuda::lif_<name>`` (its autograd formula is ``na_cuda::<name>_backward``)."""
        return getattr(torch.ops.na_cuda, f"lif_{self.name}")(c, *self.native_args(neuron, decay))

    def native_backward(
        self, grad_out: torch.Tensor, c: torch.Tensor, neuron: LifParams, decay: Optional[torch.Tensor] = None
    ) -> Any:
        """The rule's compiled backward op ``na_cuda::<name>_backward`` called directly: ``grad_c``, or
        ``(grad_c, dL/dlam [N])`` with a ``decay``."""
        op = getattr(torch.ops.na_cuda, f"{self.name}_backward")
        grad, gdecay = op(grad_out, c, *self.native_args(neuron, decay))
        return grad if decay is None else (grad, gdecay)


@dataclass(frozen=True)
class NA(Rule):
    """Neighborhood Aggregation with simple neighbourhood selection (paper eq. 13-17, spec §3).

    ``first_order``: "paper" weighs PSC changes by the error signal of eq. 7 (the authors' code), "taylor" by
    ``dL/da``. ``phi(d) = clamp(d^-dist_power, -clip, clip)`` with ``d = threshold - u[p]``.

    ``window`` (keyword ``na_window``): None is exact NA; an int ``K >= 1`` lets each neighbour's re-simulation run
    at most ``K`` steps past its flip (docs/algorithm.md §3.8), an approximation that bounds the cost on long,
    sparsely firing windows; ``K >= T - 1`` is exact NA to the bit.
    """

    first_order: str = "paper"
    dist_power: int = 3
    clip: float = 10.0
    window: Optional[int] = None
    name: ClassVar[str] = "na"
    #: the flat keyword namespace (and the op) name the field ``window`` ``na_window``
    KEYWORDS: ClassVar[dict[str, str]] = {"window": "na_window"}

    def __post_init__(self) -> None:
        choice("first_order", self.first_order, FIRST_ORDERS)
        k = self.dist_power
        if isinstance(k, bool) or not isinstance(k, int) or k < 1 or k % 2 == 0:
            raise ValueError(f"na_cuda: `dist_power` must be a positive odd int (1 or 3 in the paper); got {k!r}")
        if k > 63:
            raise ValueError(f"na_cuda: `dist_power` must be <= 63; got {k}")
        clip = real("clip", self.clip)
        if clip <= 0.0:
            raise ValueError(f"na_cuda: `clip` must be a finite float > 0 (10 in the paper); got {clip}")
        object.__setattr__(self, "clip", clip)
        w = self.window
        if w is not None:
            if isinstance(w, bool) or not isinstance(w, int):
                raise TypeError(
                    f"na_cuda: `na_window` must be None (exact NA) or an int >= 1 (the longest neighbour run, in "
                    f"steps); got {type(w).__name__} {w!r}"
                )
            if not 1 <= w < 2**63:
                raise ValueError(
                    f"na_cuda: `na_window` must be None (exact NA) or an int >= 1 (e.g. 32; K >= T - 1 is exact); "
                    f"got {w}"
                )

    def fit_values(self) -> list[tuple[str, float]]:
        return [("clip", self.clip)]

    def check(self, neuron: LifParams) -> None:
        if neuron.output == "membrane":
            raise ValueError(
                'na_cuda: output="membrane" is refused by method="na" (NA aggregates over spike trains, not '
                'potentials); use method="stbp" or output="spike"/"psc"'
            )


@dataclass(frozen=True)
class STBP(Rule):
    """BPTT with a surrogate spike derivative (spec §5): ``surrogate`` in :data:`SURROGATES`, width/slope
    ``alpha`` (None: :data:`SURROGATE_DEFAULT_ALPHA`); ``detach_reset`` treats the spike in the reset as a
    constant (spikingjelly's ``detach_reset``)."""

    surrogate: str = "rect"
    alpha: Optional[float] = None
    detach_reset: bool = True
    name: ClassVar[str] = "stbp"
    #: the keyword API and the op name the field ``alpha`` ``surrogate_alpha`` (next to the other rules' keywords)
    KEYWORDS: ClassVar[dict[str, str]] = {"alpha": "surrogate_alpha"}

    def __post_init__(self) -> None:
        choice("surrogate", self.surrogate, SURROGATES)
        alpha = real("surrogate_alpha", SURROGATE_DEFAULT_ALPHA[self.surrogate] if self.alpha is None else self.alpha)
        check_alpha(self.surrogate, alpha)
        object.__setattr__(self, "alpha", alpha)
        flag("detach_reset", self.detach_reset, "True: the reset does not carry gradient")

    def fit_values(self) -> list[tuple[str, float]]:
        a = float(self.alpha)  # type: ignore[arg-type]  # set to a float by __post_init__
        # 1/a/a, not 1/(a*a): a*a underflows to 0.0 for a < 1.5e-154, and 1.0/0.0 is a ZeroDivisionError in
        # Python, where the quotient's overflow to inf is what the range check reports.
        return [("surrogate_alpha", a), ("1/surrogate_alpha", 1.0 / a), ("1/surrogate_alpha**2", 1.0 / a / a)]


@dataclass(frozen=True)
class TSSL(Rule):
    """TSSL-BP (Zhang & Li 2020, spec §6): PSC output and a hard reset only."""

    name: ClassVar[str] = "tssl"

    def check(self, neuron: LifParams) -> None:
        if neuron.output != "psc":
            raise ValueError('na_cuda: method="tssl" (TSSL-BP) is defined on PSCs; use output="psc"')
        if neuron.reset is not Reset.HARD:
            raise ValueError(
                f'na_cuda: method="tssl" (TSSL-BP) needs a reset to rest; got v_reset=None (the {neuron.reset.value} '
                'reset); use a float v_reset, or method="na" / "stbp"'
            )


#: ``method`` name -> rule class.
RULES: dict[str, type[Rule]] = {cls.name: cls for cls in (NA, STBP, TSSL)}
METHODS = tuple(RULES)


def rule_keywords() -> dict[str, Any]:
    """Every rule's keywords with their defaults (the rule part of ``na_cuda.lif``'s keyword API)."""
    return dict(_RULE_KEYWORDS)


def _all_rule_keywords() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for cls in RULES.values():
        out.update(cls.keywords())
    return out


#: computed once at import (a call of the keyword API reads them; torch.compile traces the lookups)
_RULE_KEYWORDS = _all_rule_keywords()
_OWNER = {k: cls for cls in RULES.values() for k in cls.keywords()}
_DEFAULT_OPTIONS = {k: v for cls in RULES.values() for k, v in cls().options().items()}


def make_rule(method: Any, **options: Any) -> Rule:
    """The rule object of the keyword API: ``method`` picks the class, which takes the keywords it owns.

    Every rule is built from its keywords, so each keyword is validated, used or not (a typo in ``surrogate`` is an
    error under ``method="na"`` too), and another rule's keyword away from its default is refused (it would be
    ignored): a configuration is either valid for every rule or rejected.
    """
    cls = RULES[choice("method", method, METHODS)]
    unknown = [k for k in options if k not in _RULE_KEYWORDS]
    if unknown:
        raise TypeError(f"na_cuda: unknown keyword(s) {', '.join(unknown)}; the rules take {', '.join(_RULE_KEYWORDS)}")
    others: dict[type[Rule], dict[str, Any]] = {}
    for key, value in options.items():
        if _OWNER[key] is not cls:
            others.setdefault(_OWNER[key], {})[key] = value
    chosen = cls.from_keywords(options)
    for other, given in others.items():
        other.from_keywords(given)  # validated, used or not
        for key, value in given.items():  # away from its default it would be silently ignored
            if value is not None and value != _DEFAULT_OPTIONS[key]:
                raise ValueError(
                    f"na_cuda: `{key}` is an option of method={other.name!r}, which method={chosen.name!r} ignores; "
                    f"got {key}={value!r}: leave it out, or use method={other.name!r}"
                )
    return chosen
