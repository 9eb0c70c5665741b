"""Argument checks of the public API: a clear exception that names the argument and the fix."""
from __future__ import annotations

from typing import Any

import torch

OUTPUTS = ("psc", "spike")
METHODS = ("na", "stbp", "tssl")
FIRST_ORDERS = ("paper", "taylor")
SURROGATES = ("rect", "triangle", "sigmoid")
BACKENDS = ("auto", "native", "torch")
# Surrogate widths/slopes of spec §5: rect a = 1, triangle gamma = 1, sigmoid alpha = 4.
SURROGATE_DEFAULT_ALPHA = {"rect": 1.0, "triangle": 1.0, "sigmoid": 4.0}


def _finite(x: float) -> bool:
    # x - x is 0 for finite x and NaN for +-inf and NaN. Unlike math.isfinite it also traces under
    # torch.compile(dynamic=True), where a float argument is a symbolic float.
    return x - x == 0


def _real(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"na_cuda: `{name}` must be a Python float; got {type(value).__name__} {value!r}")
    value = float(value)
    if not _finite(value):
        raise ValueError(f"na_cuda: `{name}` must be finite; got {value}")
    return value


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"na_cuda: `{name}` must be one of {', '.join(map(repr, allowed))}; got {value!r}")
    return value


def neuron_params(
    *,
    tau_m: Any,
    tau_s: Any,
    threshold: Any,
    output: Any,
    method: Any,
    first_order: Any,
    dist_power: Any,
    clip: Any,
    surrogate: Any,
    surrogate_alpha: Any,
    detach_reset: Any,
    backend: Any,
    strict_threshold: Any = False,
) -> dict[str, Any]:
    """Validate the neuron's keyword arguments; returns them normalised (floats, the surrogate's default alpha)."""
    tau_m = _real("tau_m", tau_m)
    if tau_m <= 1.0:
        raise ValueError(f"na_cuda: `tau_m` must be > 1 (the leak is 1 - 1/tau_m); got {tau_m}")
    tau_s = _real("tau_s", tau_s)
    if tau_s < 1.0:
        raise ValueError(f"na_cuda: `tau_s` must be >= 1 (the PSC decay is 1 - 1/tau_s); got {tau_s}")
    threshold = _real("threshold", threshold)
    if threshold <= 0.0:
        raise ValueError(f"na_cuda: `threshold` must be > 0; got {threshold}")
    if not isinstance(strict_threshold, bool):
        raise TypeError(
            f"na_cuda: `strict_threshold` must be a bool (True: fire on u > threshold); got {strict_threshold!r}"
        )
    output = _choice("output", output, OUTPUTS)
    method = _choice("method", method, METHODS)
    first_order = _choice("first_order", first_order, FIRST_ORDERS)
    if isinstance(dist_power, bool) or not isinstance(dist_power, int) or dist_power < 1 or dist_power % 2 == 0:
        raise ValueError(f"na_cuda: `dist_power` must be a positive odd int (1 or 3 in the paper); got {dist_power!r}")
    if dist_power > 63:
        raise ValueError(f"na_cuda: `dist_power` must be <= 63; got {dist_power}")
    clip = _real("clip", clip)
    if clip <= 0.0:
        raise ValueError(f"na_cuda: `clip` must be a finite float > 0 (10 in the paper); got {clip}")
    surrogate = _choice("surrogate", surrogate, SURROGATES)
    if surrogate_alpha is None:
        surrogate_alpha = SURROGATE_DEFAULT_ALPHA[surrogate]
    surrogate_alpha = _real("surrogate_alpha", surrogate_alpha)
    if surrogate_alpha <= 0.0:
        raise ValueError(f"na_cuda: `surrogate_alpha` must be > 0; got {surrogate_alpha}")
    if not isinstance(detach_reset, bool):
        raise TypeError(f"na_cuda: `detach_reset` must be a bool; got {detach_reset!r}")
    if method == "tssl" and output != "psc":
        raise ValueError('na_cuda: method="tssl" (TSSL-BP) is defined on PSCs; use output="psc"')
    backend = _choice("backend", backend, BACKENDS)
    return dict(
        tau_m=tau_m,
        tau_s=tau_s,
        threshold=threshold,
        strict_threshold=strict_threshold,
        output=output,
        method=method,
        first_order=first_order,
        dist_power=dist_power,
        clip=clip,
        surrogate=surrogate,
        surrogate_alpha=surrogate_alpha,
        detach_reset=detach_reset,
        backend=backend,
    )


def input_tensor(c: Any, name: str = "c") -> None:
    """`c` must be a floating tensor of shape [T, ...] with T >= 1."""
    if not isinstance(c, torch.Tensor):
        raise TypeError(f"na_cuda: `{name}` must be a torch.Tensor of shape [T, ...]; got {type(c).__name__}")
    if c.dim() == 0:
        raise ValueError(f"na_cuda: `{name}` must have shape [T, ...] (time first); got a 0-dim tensor. Use c[None]")
    if c.shape[0] == 0:
        raise ValueError(f"na_cuda: `{name}` must have T = {name}.shape[0] >= 1 time steps; got shape {tuple(c.shape)}")
    if not c.dtype.is_floating_point:
        raise TypeError(
            f"na_cuda: `{name}` must be float16, bfloat16, float32 or float64; got {c.dtype}. Convert with .float()"
        )



def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the kernels compute in for input `dtype`: float64 for float64, else float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def params_fit_dtype(p: dict[str, Any], dtype: torch.dtype) -> None:
    """The float parameters of `p` (from `neuron_params`), and the coefficients made from them, must be normal
    finite numbers in the compute dtype of input `dtype`: valid doubles can round to 0 or inf in float32
    (threshold 1e-320 -> 0 makes every step spike, 1e39 -> inf never does; clip 1e-320 -> 0 zeroes every gradient).
    Raises ValueError naming the argument and the range."""
    cd = compute_dtype(dtype)
    info = torch.finfo(cd)
    values = [("threshold", p["threshold"]), ("tau_m", p["tau_m"]), ("tau_s", p["tau_s"]), ("1/tau_s", 1.0 / p["tau_s"])]
    if p["method"] == "na":
        values.append(("clip", p["clip"]))
    elif p["method"] == "stbp":
        a = p["surrogate_alpha"]
        values += [("surrogate_alpha", a), ("1/surrogate_alpha", 1.0 / a), ("1/surrogate_alpha**2", 1.0 / (a * a))]
    for name, value in values:
        if not info.tiny <= abs(value) <= info.max:
            raise ValueError(
                f"na_cuda: `{name}` = {value!r} is {torch.tensor(value, dtype=cd).item()!r} in {cd}, the compute "
                f"dtype of {dtype} input; it must lie in [{info.tiny:.3g}, {info.max:.3g}] (or use float64 input)")
