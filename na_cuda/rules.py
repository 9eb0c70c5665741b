"""The training rules as objects: :class:`NA` (spec §3), :class:`STBP` (spec §5), :class:`TSSL` (spec §6).

A rule owns what is specific to it: its arguments and their validation, the neuron settings it is defined for
(:meth:`Rule.check`), the dtype fit of its coefficients, its repr and its native op call. :data:`RULES` maps the
``method`` names of the keyword API to the classes; adding a rule adds one class here (plus its kernel header, its
reference in ``na_cuda.reference`` and tests), with no ``if method == ...`` anywhere else.

This module and ``na_cuda.params`` are the bottom floor: they import nothing else of the package. The reference
(``na_cuda.reference``, which maps each rule class to its pure-PyTorch backward) depends on them, never the reverse.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Optional

import torch

from .params import LifParams, choice, flag, real, values_fit_dtype
from .surrogates import SURROGATE_DEFAULT_ALPHA, SURROGATES, check_alpha

FIRST_ORDERS = ("paper", "taylor")


@dataclass(frozen=True)
class Rule(ABC):
    """Base of the rule objects. Subclasses are frozen dataclasses whose fields are the rule's arguments."""

    name: ClassVar[str]

    def check(self, neuron: LifParams) -> None:  # noqa: B027  (a default, deliberately empty: no restriction)
        """Raise ValueError if the rule is not defined for ``neuron``'s settings (default: every neuron)."""

    def fit_values(self) -> list[tuple[str, float]]:
        """``(name, value)`` of the rule's coefficients that must be normal numbers in the compute dtype."""
        return []

    def fit_dtype(self, neuron: LifParams, dtype: torch.dtype) -> None:
        """The neuron's and the rule's parameters must fit the compute dtype of ``dtype`` input."""
        neuron.fit_dtype(dtype)
        values_fit_dtype(self.fit_values(), dtype)

    def options(self) -> dict[str, Any]:
        """The rule's arguments by name (the keywords of ``na_cuda.lif``)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def extra_repr(self) -> str:
        """``method=...`` and the rule's arguments, for ``nn.LIF``'s repr."""
        return ", ".join([f"method={self.name!r}"] + [f"{k}={v!r}" for k, v in self.options().items()])

    # -- backends (the reference backward of each rule: na_cuda.reference.rule_backward) --------------------------
    # ``decay``: None, or the learnable leak lam per neuron, ``[N]`` in the compute dtype (docs/algorithm.md §12);
    # its gradient is the rule's dL/du times the direct partial du/dlam, computed inside the backward. The ops take
    # it and ``reset_mechanism`` (§11) as their two trailing arguments.
    def native(self, c: torch.Tensor, neuron: LifParams, decay: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The compiled op ``na_cuda::lif_<name>`` (its autograd formula is ``na_cuda::<name>_backward``)."""
        op = getattr(torch.ops.na_cuda, f"lif_{self.name}")
        return op(c, *neuron.op_args(), *self.op_args(), decay, neuron.reset_mechanism)

    def native_backward(
        self, grad_out: torch.Tensor, c: torch.Tensor, neuron: LifParams, decay: Optional[torch.Tensor] = None
    ) -> Any:
        """The rule's compiled backward op ``na_cuda::<name>_backward`` called directly: ``grad_c``, or
        ``(grad_c, dL/dlam [N])`` with a ``decay``."""
        op = getattr(torch.ops.na_cuda, f"{self.name}_backward")
        grad, gdecay = op(grad_out, c, *neuron.op_args(), *self.op_args(), decay, neuron.reset_mechanism)
        return grad if decay is None else (grad, gdecay)

    @abstractmethod
    def op_args(self) -> tuple:
        """The rule's arguments of its ops, after the neuron's (``LifParams.op_args``; csrc/ops.cpp)."""


@dataclass(frozen=True)
class NA(Rule):
    """Neighborhood Aggregation with simple neighbourhood selection (paper eq. 13-17, spec §3).

    ``first_order``: "paper" weighs PSC changes by the error signal of eq. 7 (the authors' code), "taylor" by
    ``dL/da``. ``phi(d) = clamp(d^-dist_power, -clip, clip)`` with ``d = threshold - u[p]``.
    """

    first_order: str = "paper"
    dist_power: int = 3
    clip: float = 10.0
    name: ClassVar[str] = "na"

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

    def fit_values(self) -> list[tuple[str, float]]:
        return [("clip", self.clip)]

    def check(self, neuron: LifParams) -> None:
        if neuron.output == "membrane":
            raise ValueError(
                'na_cuda: output="membrane" is refused by method="na": NA measures the loss change of its '
                "neighbours on their spike trains, and a loss on the membrane potential has no such neighbourhood; "
                'use method="stbp" (BPTT defines that gradient) or output="spike"/"psc"'
            )

    def op_args(self) -> tuple:
        return (self.first_order, self.dist_power, self.clip)


@dataclass(frozen=True)
class STBP(Rule):
    """BPTT with a surrogate spike derivative (spec §5): ``surrogate`` in :data:`SURROGATES`, width/slope
    ``alpha`` (None: :data:`SURROGATE_DEFAULT_ALPHA`); ``detach_reset`` treats the spike in the reset as a
    constant (spikingjelly's ``detach_reset``)."""

    surrogate: str = "rect"
    alpha: Optional[float] = None
    detach_reset: bool = True
    name: ClassVar[str] = "stbp"

    def __post_init__(self) -> None:
        choice("surrogate", self.surrogate, SURROGATES)
        alpha = real("surrogate_alpha", SURROGATE_DEFAULT_ALPHA[self.surrogate] if self.alpha is None else self.alpha)
        check_alpha(self.surrogate, alpha)
        object.__setattr__(self, "alpha", alpha)
        flag("detach_reset", self.detach_reset, "True: the reset does not carry gradient")

    def options(self) -> dict[str, Any]:
        return {"surrogate": self.surrogate, "surrogate_alpha": self.alpha, "detach_reset": self.detach_reset}

    def fit_values(self) -> list[tuple[str, float]]:
        a = float(self.alpha)  # type: ignore[arg-type]  # set to a float by __post_init__
        # 1/a/a, not 1/(a*a): a*a underflows to 0.0 for a < 1.5e-154, and 1.0/0.0 is a ZeroDivisionError in
        # Python, where the quotient's overflow to inf is what the range check reports.
        return [("surrogate_alpha", a), ("1/surrogate_alpha", 1.0 / a), ("1/surrogate_alpha**2", 1.0 / a / a)]

    def op_args(self) -> tuple:
        return (self.surrogate, self.alpha, self.detach_reset)


@dataclass(frozen=True)
class TSSL(Rule):
    """TSSL-BP (Zhang & Li 2020, spec §6): PSC output and a hard reset only."""

    name: ClassVar[str] = "tssl"

    def check(self, neuron: LifParams) -> None:
        if neuron.output != "psc":
            raise ValueError('na_cuda: method="tssl" (TSSL-BP) is defined on PSCs; use output="psc"')
        if neuron.v_reset is None:
            raise ValueError(
                'na_cuda: method="tssl" (TSSL-BP) is defined for a reset to rest; v_reset=None (soft '
                "reset) and reset_mechanism='subtract'/'none' (no reset to rest) are not supported: use a float "
                'v_reset, or method="na" / "stbp"'
            )

    def op_args(self) -> tuple:
        return ()


#: ``method`` name -> rule class.
RULES: dict[str, type[Rule]] = {cls.name: cls for cls in (NA, STBP, TSSL)}
METHODS = tuple(RULES)


def make_rule(
    method: Any,
    *,
    first_order: Any = "paper",
    dist_power: Any = 3,
    clip: Any = 10.0,
    surrogate: Any = "rect",
    surrogate_alpha: Any = None,
    detach_reset: Any = True,
) -> Rule:
    """The rule object of the keyword API: ``method`` picks the class, which takes the keywords it uses.

    Every keyword is validated, used or not (a typo in ``surrogate`` is an error under ``method="na"`` too), so a
    configuration is either valid for every rule or rejected.
    """
    cls = RULES[choice("method", method, METHODS)]
    candidates = (NA(first_order, dist_power, clip), STBP(surrogate, surrogate_alpha, detach_reset), TSSL())
    return next(r for r in candidates if isinstance(r, cls))
