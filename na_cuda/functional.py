"""The LIF neuron op: `na_cuda.lif`."""
from __future__ import annotations

from typing import Optional

import torch

from . import _backend, _validate, reference


def lif(
    c: torch.Tensor,
    *,
    tau_m: float = 5.0,
    tau_s: float = 2.0,
    threshold: float = 1.0,
    output: str = "psc",
    method: str = "na",
    first_order: str = "paper",
    dist_power: int = 3,
    clip: float = 10.0,
    surrogate: str = "rect",
    surrogate_alpha: Optional[float] = None,
    detach_reset: bool = True,
    backend: str = "auto",
    strict_threshold: bool = False,
) -> torch.Tensor:
    r"""Multi-step LIF neuron, time first: ``c [T, ...] -> out [T, ...]``.

    Forward (paper eq. 1-4, spec §2), per neuron with ``v = a = 0`` before ``t = 0``::

        u[t] = (1 - 1/tau_m) v + c[t];   s[t] = H(u[t] - threshold)   (H(0) = 1)
        v    = u[t] (1 - s[t]);          a[t] = (1 - 1/tau_s) a + s[t] / tau_s

    and ``out`` is ``a`` (``output="psc"``) or ``s`` (``output="spike"``). ``strict_threshold=True`` fires on
    ``u[t] > threshold`` instead (``H(0) = 0``: the authors' released code, ``mem > threshold``); it differs only
    on exact ties, and under NA makes ``phi(0) = +clip``. The backward depends on ``method``:

    - ``"na"``: Neighborhood Aggregation with simple neighbourhood selection (eq. 13, 16, 17): for every step
      ``p`` the firing there is flipped, the rest of the window re-simulated, and the first-order loss change
      ``dL_p`` is scaled by ``phi(threshold - u[p]) = clamp((threshold - u[p])^-dist_power, -clip, clip)``.
      ``first_order="paper"`` weighs PSC changes by the error signal e of eq. 7 (the authors' code);
      ``"taylor"`` by ``dL/da`` (the exact first-order term).
    - ``"stbp"``: BPTT with a surrogate derivative (``surrogate`` = "rect" | "triangle" | "sigmoid",
      width/slope ``surrogate_alpha``, defaults 1, 1, 4); ``detach_reset`` treats the reset as a constant.
    - ``"tssl"``: TSSL-BP (Zhang & Li 2020), ``output="psc"`` only.

    ``backend``: ``"native"`` = the compiled kernel for the tensor's device (error if not compiled), ``"torch"``
    = the pure-PyTorch reference, ``"auto"`` = native when compiled for that device, else the reference with a
    one-time warning. float16/bfloat16 are computed in float32.
    """
    _validate.input_tensor(c)
    p = _validate.neuron_params(
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
    return apply(c, p)


def apply(c: torch.Tensor, p: dict) -> torch.Tensor:
    """`lif` on already-validated parameters (as returned by `_validate.neuron_params`); used by `nn.LIF`."""
    _validate.params_fit_dtype(p, c.dtype)
    if _backend.use_native(p["backend"], c.device):
        return torch.ops.na_cuda.lif(
            c,
            p["tau_m"],
            p["tau_s"],
            p["threshold"],
            p["strict_threshold"],
            p["output"],
            p["method"],
            p["first_order"],
            p["dist_power"],
            p["clip"],
            p["surrogate"],
            p["surrogate_alpha"],
            p["detach_reset"],
        )
    kwargs = {k: v for k, v in p.items() if k != "backend"}
    return reference.lif(c, **kwargs)
