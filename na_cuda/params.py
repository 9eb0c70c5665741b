"""The neuron's typed parameters: :class:`LifParams` (spec §2, options docs/algorithm.md §9, §11) and :class:`Reset`.

Each field, its default and its check are written here once; the keyword API (``na_cuda.lif``, ``nn.LIF``, the
training config) is derived from the fields (:class:`KeywordFields`). See docs/development.md, "Add a neuron option".
"""

from __future__ import annotations

import ctypes
import enum
import math
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Optional, TypeVar

import torch

OUTPUTS = ("psc", "spike", "membrane")
#: snnTorch's ``reset_mechanism`` values (docs/algorithm.md §11); "zero" is stored as the hard reset ``v_reset=0.0``.
RESET_MECHANISMS = ("subtract", "zero", "none")


def real(name: str, value: Any, *, allow_inf: bool = False) -> float:
    """``value`` as a Python float; TypeError for non-numbers, ValueError for NaN (and inf unless ``allow_inf``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"na_cuda: `{name}` must be a Python float; got {type(value).__name__} {value!r}")
    value = float(value)
    # x - x is 0 for finite x and NaN for +-inf and NaN. Unlike math.isfinite it also traces under
    # torch.compile(dynamic=True), where a float argument is a symbolic float.
    if not value - value == 0 and not (allow_inf and value == math.inf):
        raise ValueError(f"na_cuda: `{name}` must be finite; got {value}")
    return value


def choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    """``value`` if it is one of ``allowed``, else a ValueError listing them."""
    if value not in allowed:
        raise ValueError(f"na_cuda: `{name}` must be one of {', '.join(map(repr, allowed))}; got {value!r}")
    return value


def flag(name: str, value: Any, meaning: str) -> bool:
    """``value`` if it is a bool, else a TypeError saying what True means."""
    if not isinstance(value, bool):
        raise TypeError(f"na_cuda: `{name}` must be a bool ({meaning}); got {value!r}")
    return value


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the kernels compute in for input ``dtype``: float64 for float64, else float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def clamp_decay(decay: torch.Tensor) -> torch.Tensor:
    """``torch.clamp(decay, 0, 1)``'s values with the gradient the ops give (docs/algorithm.md §12): 1 inside
    [0, 1], both ends included, 0 outside or at NaN. Written out because torch.clamp's own gradient at the ends
    is 1 up to torch 2.13 and 0 from 2.14 (the minimum-norm subgradient); an end kept keeps a leak of exactly 1
    (an IF neuron, snnTorch's ``beta=1``) learnable, on every torch version."""
    return torch.where((decay >= 0) & (decay <= 1), decay, decay.detach().clamp(0.0, 1.0))


def values_fit_dtype(values: list[tuple[str, float]], dtype: torch.dtype) -> None:
    """Every ``(name, value)`` must be a normal finite number in the compute dtype of input ``dtype``: a valid double
    can round to 0 or inf in float32 (threshold 1e-320 -> 0 makes every step spike, 1e39 -> inf never does).
    Raises ValueError naming the argument and the range."""
    cd = compute_dtype(dtype)
    info = torch.finfo(cd)
    for name, value in values:
        if not info.tiny <= abs(value) <= info.max:
            # Rounded by a C cast, not a tensor: torch 2.10's fake-tensor mode refuses .item() in a fake kernel.
            rounded = (ctypes.c_double if cd == torch.float64 else ctypes.c_float)(value).value
            raise ValueError(
                f"na_cuda: `{name}` = {value!r} is {rounded!r} in {cd}, the compute "
                f"dtype of {dtype} input; it must lie in [{info.tiny:.3g}, {info.max:.3g}]"
                + (" (or use float64 input)" if cd != torch.float64 else "")
            )


_K = TypeVar("_K", bound="KeywordFields")


def _values(obj: Any, table: tuple[tuple[str, str, Any], ...]) -> tuple:
    return tuple([getattr(obj, name) for name, _, _ in table])


class KeywordFields:
    """The keyword API of a frozen dataclass: each init field is a keyword of ``na_cuda.lif`` / ``nn.LIF``, with the
    field's default. ``KEYWORDS`` renames a field where the flat keyword namespace needs a longer name."""

    #: field name -> public keyword, where they differ
    KEYWORDS: ClassVar[dict[str, str]] = {}
    _KEYWORD_TABLE: ClassVar[tuple[tuple[str, str, Any], ...]]

    @classmethod
    def _table(cls) -> tuple[tuple[str, str, Any], ...]:
        """``(field, keyword, default)`` of each init field, computed once per class (torch.compile traces the
        lookup of the cached tuple, not ``dataclasses.fields``)."""
        table = cls.__dict__.get("_KEYWORD_TABLE")
        if table is None:
            table = tuple(
                (f.name, cls.KEYWORDS.get(f.name, f.name), f.default)
                for f in fields(cls)  # type: ignore[arg-type]
                if f.init
            )
            cls._KEYWORD_TABLE = table
        return table

    @classmethod
    def keywords(cls) -> dict[str, Any]:
        """Public keyword -> default, in field order."""
        return {k: default for _, k, default in cls._table()}

    @classmethod
    def from_keywords(cls: type[_K], options: dict[str, Any]) -> _K:
        """The object from the keywords of ``options`` that it owns (the others are left for the caller)."""
        return cls(**{name: options[k] for name, k, _ in cls._table() if k in options})

    def options(self) -> dict[str, Any]:
        """Public keyword -> this object's (normalised) value."""
        return {k: getattr(self, name) for name, k, _ in self._table()}

    def op_args(self) -> tuple:
        """The field values in order: the object's arguments of every op (``csrc/ops.cpp``; tests/test_op_schemas.py
        checks each schema against the fields)."""
        return _values(self, self._table())


class Reset(enum.Enum):
    """The reset after a spike (docs/algorithm.md §9, §11), parsed once from ``v_reset`` and ``reset_mechanism``."""

    HARD = "hard"  # v = v_reset (a float)
    SOFT = "soft"  # v = u - threshold (v_reset=None)
    SUBTRACT = "subtract"  # snnTorch: the threshold subtracted one step later, after the leak
    NONE = "none"  # snnTorch: no reset at all

    @property
    def after_leak(self) -> bool:
        """snnTorch's resets after the leak (§11): the op's ``reset_mechanism`` argument."""
        return self in (Reset.SUBTRACT, Reset.NONE)

    @staticmethod
    def parse(v_reset: Optional[float], mechanism: Optional[str]) -> tuple[Reset, Optional[float]]:
        """``(reset, v_reset)`` of the public keywords; ``v_reset`` normalised (None under a reset after the leak)."""
        if mechanism is None:
            return (Reset.SOFT if v_reset is None else Reset.HARD), v_reset
        choice("reset_mechanism", mechanism, RESET_MECHANISMS)
        if mechanism == "zero":
            if v_reset is None or v_reset != 0.0:
                raise ValueError(
                    f"na_cuda: reset_mechanism='zero' is the hard reset to 0; got v_reset={v_reset!r} (leave v_reset "
                    "at 0.0)"
                )
            return Reset.HARD, v_reset
        if v_reset is not None and v_reset != 0.0:
            raise ValueError(
                f"na_cuda: reset_mechanism={mechanism!r} has no reset value; got v_reset={v_reset!r} (pass "
                "v_reset=None or leave it at 0.0)"
            )
        return Reset(mechanism), None

    @staticmethod
    def parse_op(v_reset: Optional[float], mechanism: Optional[str]) -> Reset:
        """The reset of an op call, whose ``reset_mechanism`` is None or an after-leak one with ``v_reset=None``
        (as ``csrc/op_args.h`` checks it)."""
        if mechanism is not None and (mechanism not in ("subtract", "none") or v_reset is not None):
            raise ValueError(
                f'na_cuda: `reset_mechanism` of an op must be None, "subtract" or "none" with v_reset=None; got '
                f"{mechanism!r} with v_reset={v_reset!r}"
            )
        return Reset.parse(v_reset, mechanism)[0]


@dataclass(frozen=True, kw_only=True)
class LifParams(KeywordFields):
    """The LIF neuron (paper eq. 1-4, spec §2; options: docs/algorithm.md §9, §11). Validated on construction.

    Per neuron, ``lam = 1 - 1/tau_m`` (``tau_m = inf``: ``lam = 1``, the IF neuron; ``tau_m = 1``: no memory) and
    ``beta = 1/tau_m`` if ``decay_input`` else 1:

    * hard reset (``v_reset = vr``, a float; 0 is the paper): ``v`` starts at ``vr``,
      ``u[t] = lam (v - vr) + vr + beta c[t]``, ``s[t] = u[t] >= threshold``, ``v = vr`` if ``s[t]`` else ``u[t]``;
    * soft reset (``v_reset=None``): ``v`` starts at 0, ``u[t] = lam v + beta c[t]``, ``v = u[t] - threshold`` on a
      spike;
    * snnTorch's resets after the leak (``reset_mechanism``, §11): ``"subtract"``: ``v`` starts at 0,
      ``u[t] = lam u[t-1] + beta c[t] - threshold s[t-1]``; ``"none"``: the same without the subtraction (the
      neuron fires but never resets); ``"zero"`` is the hard reset ``v_reset=0.0`` and is stored as that. With
      ``"subtract"``/``"none"`` ``v_reset`` must be None or 0.0 (the default) and is stored as None;
    * ``a[t] = (1 - 1/tau_s) a + s[t] / tau_s`` (PSC, eq. 3); ``output`` is ``a`` ("psc"), ``s`` ("spike") or
      the pre-reset membrane potential ``u`` ("membrane", STBP only); ``strict_threshold`` fires on
      ``u > threshold`` (the authors' released code, snnTorch).

    :attr:`reset` is the one encoding of the reset (:class:`Reset`), parsed from ``v_reset`` and
    ``reset_mechanism``. These are spikingjelly 2.0 ``LIFNode``/``IFNode`` semantics (``decay_input`` as its
    ``decay_input``), plus snnTorch's ``Leaky`` resets.
    """

    # In the order of the ops' arguments (csrc/ops.cpp), so that op_args() is the field values.
    tau_m: float = 5.0
    tau_s: float = 2.0
    threshold: float = 1.0
    v_reset: Optional[float] = 0.0
    decay_input: bool = False
    strict_threshold: bool = False
    output: str = "psc"
    reset_mechanism: Optional[str] = None
    #: fields the ops take last, after the rule's arguments and ``decay`` (added to the schemas later)
    OP_TRAILING: ClassVar[tuple[str, ...]] = ("reset_mechanism",)

    def __post_init__(self) -> None:
        reset, v_reset = Reset.parse(self.v_reset, self.reset_mechanism)
        object.__setattr__(self, "reset_mechanism", reset.value if reset.after_leak else None)
        tau_m = real("tau_m", self.tau_m, allow_inf=True)
        if not tau_m >= 1.0:
            raise ValueError(f"na_cuda: `tau_m` must be >= 1 (the leak is 1 - 1/tau_m; inf = IF neuron); got {tau_m}")
        tau_s = real("tau_s", self.tau_s)
        if tau_s < 1.0:
            raise ValueError(f"na_cuda: `tau_s` must be >= 1 (the PSC decay is 1 - 1/tau_s); got {tau_s}")
        threshold = real("threshold", self.threshold)
        v_reset = None if v_reset is None else real("v_reset", v_reset)
        if v_reset is None and threshold <= 0.0:
            raise ValueError(f"na_cuda: `threshold` must be > 0; got {threshold}")
        if v_reset is not None and threshold <= v_reset:
            raise ValueError(
                f"na_cuda: `threshold` must be > v_reset; got threshold={threshold}, v_reset={v_reset}"
                + ("" if v_reset else "; use threshold > 0")
            )
        flag("decay_input", self.decay_input, "True: the input is scaled by 1/tau_m, spikingjelly's decay_input")
        if self.decay_input and tau_m == math.inf:
            raise ValueError(
                "na_cuda: `decay_input=True` with `tau_m=inf` scales the input by 1/tau_m = 0; use decay_input=False "
                "for the IF neuron"
            )
        flag("strict_threshold", self.strict_threshold, "True: fire on u > threshold")
        choice("output", self.output, OUTPUTS)
        object.__setattr__(self, "tau_m", tau_m)
        object.__setattr__(self, "tau_s", tau_s)
        object.__setattr__(self, "threshold", threshold)
        object.__setattr__(self, "v_reset", v_reset)

    @property
    def reset(self) -> Reset:
        """The reset, from the normalised ``v_reset`` and ``reset_mechanism`` (a property, not a field: torch 2.9's
        Dynamo rebuilds a dataclass from all its fields through ``__init__``)."""
        if self.reset_mechanism is not None:
            return Reset(self.reset_mechanism)
        return Reset.SOFT if self.v_reset is None else Reset.HARD

    def op_args(self) -> tuple:
        """The fields the ops take after their tensors, in order (``OP_TRAILING`` come last: :meth:`op_trailing`)."""
        return _values(self, _LIF_HEAD)

    def op_trailing(self) -> tuple:
        """The fields the ops take after ``decay``."""
        return _values(self, _LIF_TAIL)

    @classmethod
    def from_op(cls, values: dict[str, Any]) -> LifParams:
        """The neuron of an op call's arguments by name (``csrc/ops.cpp``), checked as the binding checks them."""
        Reset.parse_op(values["v_reset"], values["reset_mechanism"])
        return cls.from_keywords(values)

    @property
    def lam(self) -> float:
        """Membrane leak ``1 - 1/tau_m`` (1 for ``tau_m = inf``)."""
        return 1.0 - 1.0 / self.tau_m

    @property
    def beta(self) -> float:
        """Input scale: ``1/tau_m`` with ``decay_input``, else 1."""
        return 1.0 / self.tau_m if self.decay_input else 1.0

    @property
    def shifted_threshold(self) -> float:
        """The threshold in the coordinates the recursion runs in (docs/algorithm.md §9): ``threshold - v_reset``
        for a hard reset (``w = v - v_reset`` resets to 0), ``threshold`` otherwise. Exact for ``v_reset = 0``."""
        return self.threshold if self.v_reset is None else self.threshold - self.v_reset

    def fit_dtype(self, dtype: torch.dtype) -> None:
        """The parameters must be representable in the compute dtype of ``dtype`` input (see values_fit_dtype)."""
        # The kernels see the threshold only as `shifted_threshold` (docs/algorithm.md §9): with v_reset != 0 the
        # threshold itself may be 0 or tiny (threshold=0, v_reset=-0.5 is the shifted threshold 0.5).
        thr = ("threshold", self.threshold) if not self.v_reset else ("threshold - v_reset", self.shifted_threshold)
        values = [thr, ("tau_s", self.tau_s), ("1/tau_s", 1.0 / self.tau_s)]
        if self.tau_m != math.inf:
            values.append(("tau_m", self.tau_m))
        if self.decay_input:
            values.append(("1/tau_m", 1.0 / self.tau_m))
        values_fit_dtype(values, dtype)

    def extra_repr(self) -> str:
        """``tau_m, tau_s, threshold``, then each other field that differs from its default, then ``output``."""
        values, defaults, first = self.options(), self.keywords(), ("tau_m", "tau_s", "threshold")
        parts = [f"{k}={values[k]}" for k in first]
        parts += [f"{k}={v!r}" for k, v in values.items() if k not in first + ("output",) and v != defaults[k]]
        return ", ".join(parts + [f"output={self.output!r}"])


_LIF_HEAD = tuple(f for f in LifParams._table() if f[0] not in LifParams.OP_TRAILING)  # computed at import
_LIF_TAIL = tuple(f for f in LifParams._table() if f[0] in LifParams.OP_TRAILING)
