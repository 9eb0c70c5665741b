"""The neuron's typed parameters: :class:`LifParams` (spec §2, with the neuron options of docs/algorithm.md §9).

One frozen object carries what the forward needs; the training rule is a separate object (``na_cuda.rules``).
Validation lives here, so ``na_cuda.lif``, ``na_cuda.nn.LIF`` and the training config share one set of checks.
"""

from __future__ import annotations

import ctypes
import math
from dataclasses import dataclass
from typing import Any, Optional

import torch

OUTPUTS = ("psc", "spike", "membrane")
#: snnTorch's ``reset_mechanism`` values (docs/algorithm.md §11). "zero" is the hard reset ``v_reset=0.0``;
#: "subtract" and "none" subtract the threshold (or nothing) one step after a spike, after the leak.
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


@dataclass(frozen=True)
class LifParams:
    """The LIF neuron (paper eq. 1-4, spec §2; options: docs/algorithm.md §9). Validated on construction.

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

    These are spikingjelly 2.0 ``LIFNode``/``IFNode`` semantics (``decay_input`` as its ``decay_input``), plus
    snnTorch's ``Leaky`` resets.
    """

    tau_m: float = 5.0
    tau_s: float = 2.0
    threshold: float = 1.0
    v_reset: Optional[float] = 0.0
    decay_input: bool = False
    output: str = "psc"
    strict_threshold: bool = False
    reset_mechanism: Optional[str] = None

    def __post_init__(self) -> None:
        mech = self.reset_mechanism
        if mech is not None:
            choice("reset_mechanism", mech, RESET_MECHANISMS)
            if mech == "zero":
                if self.v_reset is None or self.v_reset != 0.0:
                    raise ValueError(
                        f"na_cuda: reset_mechanism='zero' is the hard reset to 0; got v_reset={self.v_reset!r} "
                        "(leave v_reset at 0.0)"
                    )
                mech = None
            elif self.v_reset is not None and self.v_reset != 0.0:
                raise ValueError(
                    f"na_cuda: reset_mechanism={mech!r} subtracts after the leak and has no reset value; got "
                    f"v_reset={self.v_reset!r} (pass v_reset=None or leave it at 0.0)"
                )
            else:
                object.__setattr__(self, "v_reset", None)
            object.__setattr__(self, "reset_mechanism", mech)
        tau_m = real("tau_m", self.tau_m, allow_inf=True)
        if not tau_m >= 1.0:
            raise ValueError(f"na_cuda: `tau_m` must be >= 1 (the leak is 1 - 1/tau_m; inf = IF neuron); got {tau_m}")
        tau_s = real("tau_s", self.tau_s)
        if tau_s < 1.0:
            raise ValueError(f"na_cuda: `tau_s` must be >= 1 (the PSC decay is 1 - 1/tau_s); got {tau_s}")
        threshold = real("threshold", self.threshold)
        v_reset = None if self.v_reset is None else real("v_reset", self.v_reset)
        if v_reset is None and threshold <= 0.0:
            raise ValueError(f"na_cuda: `threshold` must be > 0; got {threshold}")
        if v_reset is not None and threshold <= v_reset:
            raise ValueError(
                f"na_cuda: `threshold` must be > v_reset (a reset must land below the threshold); got "
                f"threshold={threshold}, v_reset={v_reset}" + ("" if v_reset else "; use threshold > 0")
            )
        flag("decay_input", self.decay_input, "True: the input is scaled by 1/tau_m, spikingjelly's decay_input")
        if self.decay_input and tau_m == math.inf:
            raise ValueError(
                "na_cuda: `decay_input=True` with `tau_m=inf` scales the input by 1/tau_m = 0; use "
                "decay_input=False for the IF neuron"
            )
        flag("strict_threshold", self.strict_threshold, "True: fire on u > threshold")
        choice("output", self.output, OUTPUTS)
        object.__setattr__(self, "tau_m", tau_m)
        object.__setattr__(self, "tau_s", tau_s)
        object.__setattr__(self, "threshold", threshold)
        object.__setattr__(self, "v_reset", v_reset)

    @property
    def lam(self) -> float:
        """Membrane leak ``1 - 1/tau_m`` (1 for ``tau_m = inf``)."""
        return 1.0 - 1.0 / self.tau_m

    @property
    def beta(self) -> float:
        """Input scale: ``1/tau_m`` with ``decay_input``, else 1."""
        return 1.0 / self.tau_m if self.decay_input else 1.0

    @property
    def soft(self) -> bool:
        """Soft reset (``v_reset=None``): subtract the threshold on a spike."""
        return self.v_reset is None

    @property
    def shifted_threshold(self) -> float:
        """The threshold in the coordinates the recursion runs in (docs/algorithm.md §9): ``threshold - v_reset``
        for a hard reset (``w = v - v_reset`` resets to 0), ``threshold`` for a soft one. Exact for ``v_reset = 0``."""
        return self.threshold if self.v_reset is None else self.threshold - self.v_reset

    def op_args(self) -> tuple:
        """The neuron's arguments of every op, in schema order (csrc/ops.cpp): ``tau_m, tau_s, threshold, v_reset,
        decay_input, strict_threshold, output`` (``reset_mechanism`` is a trailing keyword of the ops: see
        ``Rule.native``)."""
        return (
            self.tau_m,
            self.tau_s,
            self.threshold,
            self.v_reset,
            self.decay_input,
            self.strict_threshold,
            self.output,
        )

    def reference_kwargs(self) -> dict[str, Any]:
        """The neuron options as the keywords of the ``na_cuda.reference`` functions."""
        kw: dict[str, Any] = dict(v_reset=self.v_reset, decay_input=self.decay_input)
        if self.reset_mechanism is not None:
            kw["reset_mechanism"] = self.reset_mechanism
        return kw

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
        """Keyword form of the parameters that differ from the paper's neuron, plus tau_m/tau_s/threshold."""
        s = f"tau_m={self.tau_m}, tau_s={self.tau_s}, threshold={self.threshold}"
        if self.v_reset != 0.0:
            s += f", v_reset={self.v_reset}"
        if self.decay_input:
            s += ", decay_input=True"
        if self.strict_threshold:
            s += ", strict_threshold=True"
        if self.reset_mechanism is not None:
            s += f", reset_mechanism={self.reset_mechanism!r}"
        return s + f", output={self.output!r}"
