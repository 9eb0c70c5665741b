"""Shared pieces of the reference: dtypes, the [T, N] view, the neuron's coefficients, the forward recursion.

Part of ``na_cuda.reference`` (see its docstring for the conventions). See docs/algorithm.md."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Union

import torch

from ..params import LifParams, Reset


# ----------------------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------------------
def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Dtype the reference computes in: float32 for half types, else the input's float dtype."""
    if dtype in (torch.float16, torch.bfloat16):
        return torch.float32
    if dtype in (torch.float32, torch.float64):
        return dtype
    raise TypeError(f"c must be a floating-point tensor (float16/bfloat16/float32/float64), got {dtype}")


def _to_2d(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """View ``x`` of shape ``[T, ...]`` as ``[T, N]`` in ``dtype`` (copies if non-contiguous; differentiable)."""
    if x.dim() == 0:
        raise ValueError("c must have a leading time dimension, shape [T, ...]")
    n = math.prod(x.shape[1:])  # math.prod(()) == 1: a [T] input is one neuron
    return x.reshape(x.shape[0], n).to(dtype)


@dataclass(frozen=True)
class _Core:
    """The recursion's constants in the coordinates it runs in (module docstring): ``lam``, the threshold
    ``thr`` (``threshold - vr`` for a hard reset), the ``reset``, ``strict`` firing, ``tau_s`` and the input scale
    ``beta``. ``lam``/``beta`` are tensors ``[N]`` for a learnable decay (sec. 12: ``beta = 1 - lam`` under
    ``decay_input``)."""

    lam: Union[float, torch.Tensor]
    thr: float
    reset: Reset
    strict: bool
    tau_s: float
    beta: Union[float, torch.Tensor]
    tau_m: float
    decay_input: bool = False

    @property
    def after(self) -> bool:
        """snnTorch's reset after the leak (sec. 11): the subtraction comes one step after the spike."""
        return self.reset.after_leak

    @property
    def sub(self) -> float:
        """What the after-leak reset subtracts one step after a spike (sec. 11)."""
        return self.thr if self.reset is Reset.SUBTRACT else 0.0


def _core(neuron: LifParams, decay: Optional[torch.Tensor] = None) -> _Core:
    """The constants of ``neuron``; ``decay`` (sec. 12): the learnable leak ``lam`` per neuron ``[N]`` (None:
    ``1 - 1/tau_m``)."""
    if not isinstance(neuron, LifParams):
        raise TypeError(
            f"na_cuda.reference: `neuron` must be a na_cuda.LifParams; got {type(neuron).__name__} (the reference "
            "takes the typed objects, e.g. lif_forward(c, LifParams(tau_m=5.0)))"
        )
    lam: Union[float, torch.Tensor] = neuron.lam
    beta: Union[float, torch.Tensor] = neuron.beta
    if decay is not None:
        lam = decay
        beta = 1.0 - decay if neuron.decay_input else 1.0
    return _Core(
        lam,
        neuron.shifted_threshold,
        neuron.reset,
        neuron.strict_threshold,
        neuron.tau_s,
        beta,
        neuron.tau_m,
        neuron.decay_input,
    )


def _scaled(x: torch.Tensor, core: _Core) -> torch.Tensor:
    """``beta * x`` (differentiable); ``x`` itself when ``beta = 1`` (the product would be exact anyway)."""
    return x if isinstance(core.beta, float) and core.beta == 1.0 else x * core.beta


def _reset(u: torch.Tensor, fired: torch.Tensor, core: _Core) -> torch.Tensor:
    """Post-spike potential: ``u - thr`` (soft) or 0 (hard, shifted coordinates) where ``fired``, else ``u``;
    ``u`` itself under a reset after the leak (its subtraction comes with the next step, :func:`_step`)."""
    if core.after:
        return u
    return torch.where(fired, u - core.thr, u) if core.reset is Reset.SOFT else torch.where(fired, 0.0, u)


def _step(v: torch.Tensor, r: torch.Tensor, x: torch.Tensor, core: _Core) -> tuple:
    """One step of the recursion from the carried state ``(v, r)``: ``u = lam v + x`` (sec. 2, 9), minus ``r`` under
    a reset after the leak (sec. 11: ``u[t] = lam u[t-1] + x[t] - sub s[t-1]``, snnTorch's operation order).
    Returns ``(u, fired, v', r')``; ``r`` stays 0 under the other resets."""
    u = core.lam * v + x
    if core.after:
        u = u - r
    fired = _fires(u, core.thr, core.strict)
    if core.after:
        r = torch.where(fired, core.sub, 0.0).to(x.dtype) if core.sub else torch.zeros_like(u)
    return u, fired, _reset(u, fired, core), r


def _carried_2d(u: torch.Tensor, s: torch.Tensor, core: _Core) -> torch.Tensor:
    """The state carried into each step, ``v[t-1]`` (0 at ``t = 0``; shifted coordinates; ``u[t-1]`` under a reset
    after the leak): the direct partial ``du[t]/dlam`` of sec. 12 without the ``decay_input`` term."""
    prev = _reset(u[:-1], s[:-1] > 0, core)
    return torch.cat([torch.zeros_like(u[:1]), prev], 0)


def _decay_grad_2d(
    delta: torch.Tensor, x: torch.Tensor, u: torch.Tensor, s: torch.Tensor, core: _Core, c2: torch.Tensor
):
    """dL/dlam per neuron (sec. 12): ``sum_t delta[t] (v[t-1] - [decay_input] c[t])``, ``delta = dL/du`` of the rule,
    ``c2`` the raw input ``[T, N]``."""
    dudlam = _carried_2d(u, s, core)
    if core.decay_input:
        dudlam = dudlam - c2
    return (delta * dudlam).sum(0)


def _fires(u: torch.Tensor, threshold: float, strict: bool) -> torch.Tensor:
    """The spike test: ``u >= threshold`` (H(0) = 1, the paper) or ``u > threshold`` (``strict``, released code)."""
    return u > threshold if strict else u >= threshold


def _psc_2d(s: torch.Tensor, tau_s: float) -> torch.Tensor:
    """PSC of a spike train ``s`` ([T, N]), eq. 3: ``a[t] = kappa * a[t-1] + s[t] / tau_s``, ``a[-1] = 0``.

    Exactly the operation order of the forward, so a neighbour's PSC is bit-identical to ``a`` wherever the
    spike trains agree up to that time.
    """
    kappa = 1.0 - 1.0 / tau_s
    out = torch.empty_like(s)
    acc = torch.zeros_like(s[0])
    for t in range(s.shape[0]):
        acc = kappa * acc + s[t] / tau_s
        out[t] = acc
    return out


def _states_2d(x: torch.Tensor, core: _Core) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Forward recursion (eq. 1-4, spec sec. 2) on the *scaled* input ``x = beta c`` of shape [T, N].

    Returns the pre-reset potential ``u`` (shifted coordinates for a hard reset), spikes ``s`` (0/1 in x.dtype)
    and PSC ``a``.
    """
    kappa, tau_s = 1.0 - 1.0 / core.tau_s, core.tau_s
    u = torch.empty_like(x)
    s = torch.empty_like(x)
    a = torch.empty_like(x)
    v = torch.zeros_like(x[0])  # post-reset potential, v = 0 before t = 0
    r = torch.zeros_like(x[0])  # the after-leak reset's pending subtraction (sec. 11)
    acc = torch.zeros_like(x[0])  # PSC, a = 0 before t = 0
    for t in range(x.shape[0]):
        # Literally this operation order (multiply, then add; reset via where; PSC update) so that a float64
        # C++ loop doing the same ops without FMA contraction is bit-identical.
        # H(0) = 1 unless strict (paper sec. 3.2, spec sec. 2); eq. 4 (hard reset), the soft one, or after the leak
        ut, fired, v, r = _step(v, r, x[t], core)
        st = fired.to(x.dtype)
        acc = kappa * acc + st / tau_s  # eq. 3
        u[t] = ut
        s[t] = st
        a[t] = acc
    return u, s, a


def _bad_decay(lam: Optional[torch.Tensor]) -> Union[bool, torch.Tensor]:
    """Per neuron: a non-finite learnable leak (sec. 10: it reaches every step, like a non-finite input)."""
    return False if lam is None else ~lam.detach().isfinite()


def _nonfinite_guard_decay(
    gd: torch.Tensor, x: torch.Tensor, g: torch.Tensor, lam: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """dL/dlam ([N], sec. 12) under sec. 10: NaN for a neuron whose leak, input or incoming gradient has a
    non-finite value at any step (the leak reaches every step), as the kernels do (``DecayGrad::store``)."""
    bad = (~x.isfinite()).any(0) | (~g.isfinite()).any(0) | _bad_decay(lam)
    return gd.masked_fill(bad.reshape(gd.shape), float("nan"))


def _nonfinite_guard(
    grad: torch.Tensor, x: torch.Tensor, g: torch.Tensor, lam: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """A backward's ``grad_c`` ([T, N]) under spec sec. 10: NaN at step ``t`` of neuron ``n`` where ``x[:, n]``
    (the input) or the learnable leak ``lam[n]`` has a non-finite value anywhere or ``g[t:, n]`` (the incoming
    gradient) has one, ``grad`` elsewhere. What the kernels do (csrc/core/lif.h ``nonfinite_guard``)."""
    bad_g = (~g.isfinite()).flip(0).cumsum(0, dtype=torch.int32).flip(0) > 0  # any non-finite at a step >= t
    bad = bad_g | (~x.isfinite()).any(0, keepdim=True) | _bad_decay(lam)
    return grad.masked_fill(bad, float("nan"))
