"""STBP: the forward in differentiable ops with a surrogate spike derivative (spec sec. 5).

Part of ``na_cuda.reference`` (see its docstring for the conventions). See docs/algorithm.md."""

from __future__ import annotations

import math
from typing import Optional

import torch

from ..params import LifParams, Reset
from ..rules import STBP, SURROGATE_DEFAULT_ALPHA
from ._core import (
    _compute_dtype,
    _core,
    _fires,
    _nonfinite_guard,
    _nonfinite_guard_decay,
    _scaled,
    _to_2d,
)


# ----------------------------------------------------------------------------------------------------------------
# STBP (spec sec. 5)
# ----------------------------------------------------------------------------------------------------------------
def surrogate_grad(u: torch.Tensor, threshold: float, surrogate: str, alpha: Optional[float] = None) -> torch.Tensor:
    """Surrogate ``h(u)`` for ``dH(u - threshold)/du`` (spec sec. 5).

    * ``rect`` (STBP, Wu et al. 2018): ``1/a`` where ``|u - threshold| < a/2``, else 0;
    * ``triangle`` (TET): ``max(0, g - |u - threshold|) / g^2``;
    * ``sigmoid``: ``k * sig * (1 - sig)``, ``sig = sigmoid(k (u - threshold))``;
    * ``atan`` (spikingjelly ``surrogate.ATan``): ``(alpha/2) / (1 + (pi/2 * alpha * x)^2)``, ``x = u - threshold``;
    * ``fast_sigmoid`` (snnTorch ``surrogate.fast_sigmoid``, slope ``alpha``): ``1 / (alpha |x| + 1)^2``;
    * ``soft_sign`` (spikingjelly ``SoftSign``): ``1 / (2 alpha (1/alpha + |x|)^2)``;
    * ``erf`` (spikingjelly ``Erf``): ``alpha / sqrt(pi) * exp(-(alpha x)^2)``;
    * ``piecewise_exp`` (spikingjelly ``PiecewiseExp``): ``alpha / 2 * exp(-alpha |x|)``;
    * ``piecewise_leaky_relu`` (spikingjelly ``PiecewiseLeakyReLU(w=alpha, c=0.01)``): ``1/(2w)`` on ``|x| < w``,
      else ``0.01``;
    * ``super_spike`` (spikingjelly ``SuperSpike``): ``alpha / (|x| + 1)^2``;
    * ``q_pseudo_spike`` (spikingjelly ``QPseudoSpike``, ``q = alpha > 1``): ``(1 + 2 |x| / (q - 1))^-q``;
    * ``triangular`` (snnTorch ``surrogate.triangular(threshold=alpha)``): ``alpha`` where ``x < 0``, ``-alpha``
      where ``x >= 0``;
    * ``straight_through_estimator`` (snnTorch ``surrogate.straight_through_estimator()``, ``alpha = 1``): ``alpha``
      everywhere;

    with ``x = u - threshold``; ``alpha`` is the parameter each line names, ``None`` picks
    :data:`SURROGATE_DEFAULT_ALPHA`.
    """
    if surrogate not in SURROGATE_DEFAULT_ALPHA:
        raise ValueError(f"surrogate must be one of {tuple(SURROGATE_DEFAULT_ALPHA)}, got {surrogate!r}")
    if alpha is None:
        alpha = SURROGATE_DEFAULT_ALPHA[surrogate]
    x = u - threshold
    if surrogate == "rect":
        return (x.abs() < alpha / 2).to(u.dtype) / alpha
    if surrogate == "triangle":
        return torch.clamp(alpha - x.abs(), min=0.0) / (alpha * alpha)
    if surrogate == "atan":
        return (alpha / 2) / (1.0 + (math.pi / 2 * alpha * x) ** 2)
    if surrogate == "fast_sigmoid":
        return 1.0 / (alpha * x.abs() + 1.0) ** 2
    if surrogate == "soft_sign":
        return 1.0 / (2.0 * alpha * (1.0 / alpha + x.abs()) ** 2)
    if surrogate == "erf":
        return alpha / math.sqrt(math.pi) * torch.exp(-((alpha * x) ** 2))
    if surrogate == "piecewise_exp":
        return alpha / 2.0 * torch.exp(-alpha * x.abs())
    if surrogate == "piecewise_leaky_relu":
        return torch.where(x.abs() < alpha, torch.full_like(x, 1.0 / (2.0 * alpha)), torch.full_like(x, 0.01))
    if surrogate == "super_spike":
        return alpha / (x.abs() + 1.0) ** 2
    if surrogate == "q_pseudo_spike":
        return torch.pow(1.0 + 2.0 / (alpha - 1.0) * x.abs(), -alpha)
    if surrogate == "triangular":
        return torch.where(x < 0, torch.full_like(x, alpha), torch.full_like(x, -alpha))
    if surrogate == "straight_through_estimator":
        return torch.full_like(u, alpha)
    sig = torch.sigmoid(alpha * x)
    return alpha * sig * (1.0 - sig)


class _SurrogateSpike(torch.autograd.Function):
    """``s = H(u - threshold)`` exactly in the forward; ``ds/du = h(u)`` (surrogate) in the backward."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx, u: torch.Tensor, threshold: float, surrogate: str, alpha: Optional[float], strict: bool
    ):
        ctx.save_for_backward(u)
        ctx.threshold, ctx.surrogate, ctx.alpha = threshold, surrogate, alpha
        return _fires(u, threshold, strict).to(u.dtype)  # the same spike test as the forward

    @staticmethod
    def backward(ctx, grad_s: torch.Tensor):  # type: ignore[override]
        (u,) = ctx.saved_tensors
        return grad_s * surrogate_grad(u, ctx.threshold, ctx.surrogate, ctx.alpha), None, None, None, None


class _GuardState:
    """What the guards of one :func:`stbp_forward` call share: the incoming gradient ``g`` ([T, N]) and the
    learnable leak ``lam`` ([N], detached; None without one)."""

    g: Optional[torch.Tensor] = None
    lam: Optional[torch.Tensor] = None


class _GuardOut(torch.autograd.Function):
    """Identity at the output ([T, N]); its backward records the incoming gradient for :class:`_GuardIn`."""

    @staticmethod
    def forward(ctx, y: torch.Tensor, state: _GuardState):  # type: ignore[override]
        ctx.state = state
        return y.view_as(y)

    @staticmethod
    def backward(ctx, g: torch.Tensor):  # type: ignore[override]
        ctx.state.g = g
        return g, None


class _GuardIn(torch.autograd.Function):
    """Identity at the input ([T, N]); its backward applies spec sec. 10 (NaN where a non-finite input or
    incoming gradient makes the gradient undefined), as the kernels do."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, state: _GuardState):  # type: ignore[override]
        ctx.state = state
        ctx.save_for_backward(x)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        g = ctx.state.g if ctx.state.g is not None else torch.zeros_like(grad)
        return _nonfinite_guard(grad, x, g, ctx.state.lam), None


class _GuardDecay(torch.autograd.Function):
    """Identity on the learnable decay ``[N]`` (sec. 12); its backward applies sec. 10 per neuron: NaN where the
    neuron's input or incoming gradient has a non-finite value at any step (the leak reaches every step)."""

    @staticmethod
    def forward(ctx, d: torch.Tensor, x: torch.Tensor, state: _GuardState):  # type: ignore[override]
        ctx.state = state
        ctx.save_for_backward(x)
        return d.view_as(d)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        g = ctx.state.g if ctx.state.g is not None else torch.zeros_like(x)
        return _nonfinite_guard_decay(grad, x, g, ctx.state.lam), None, None


def stbp_forward(
    c: torch.Tensor, neuron: LifParams, rule: STBP = STBP(), decay: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """The LIF forward (spec sec. 2) in differentiable torch ops; autograd through it is STBP (spec sec. 5).

    The spike function returns the exact Heaviside but back-propagates the surrogate ``h(u)``
    (:func:`surrogate_grad`). The reset is ``v = u * (1 - s)``; with ``detach_reset=True`` (spec sec. 5, the
    default) the factor ``(1 - s)`` is a constant for autograd, so ``du[t+1]/du[t] = lam * (1 - s[t])``; with
    ``False`` the gradient also flows through ``s`` into the reset (``dv/du = (1 - s) - u * h(u)``).
    Hard reset to ``vr`` (shifted coordinates ``w = v - vr``): ``w = w_u (1 - s)``, so ``dv/ds = vr - u``; soft
    reset: ``v = u - threshold * s``, ``dv/ds = -threshold``; ``detach_reset`` makes ``s`` a constant in either
    (spikingjelly's ``spike_d``). The input enters as ``beta * c``, so ``dL/dc`` carries ``beta``.
    (The NA paper's sec. 2.4 describes STBP as ``du[t+1]/du[t] = lam``, without the ``(1 - s[t])``; the spec's
    detached reset is followed here.)

    The forward values are bit-identical to :func:`lif_forward`: ``u * 1 == u`` and ``u * 0 == +-0``, and a
    signed zero in ``v`` does not change ``lam * v + c[t]`` (except for its own sign when c[t] is a zero), so
    ``u``, ``s`` and ``a`` agree exactly. A ``u = +inf`` (which fires) is reset to 0 before the product, since
    ``inf * 0`` is NaN.

    snnTorch's resets after the leak (``reset_mechanism``, sec. 11): ``u[t] = lam u[t-1] + x[t] - sub s[t-1]``,
    the spike in it detached or not as above (snnTorch detaches it). ``decay`` (sec. 12): the leak ``lam`` per
    neuron ``[N]``, a tensor that autograd differentiates like any other (BPTT's exact ``dL/dlam``).
    ``output="membrane"`` returns ``u`` (``+ v_reset``), whose gradient BPTT defines.
    """
    dtype = _compute_dtype(c.dtype)
    guard = _GuardState()
    x2 = _GuardIn.apply(_to_2d(c, dtype), guard)  # differentiable reshape + cast
    if decay is not None:  # sec. 10 for dL/dlam too: NaN for a neuron with a non-finite lam, c or G anywhere
        guard.lam = decay.detach()
        decay = _GuardDecay.apply(decay, x2.detach(), guard)
    core = _core(neuron, decay)
    lam, kappa, tau_s, output = core.lam, 1.0 - 1.0 / core.tau_s, core.tau_s, neuron.output
    x = _scaled(x2, core)  # (+ scale)
    v = torch.zeros_like(x[0])
    sub = torch.zeros_like(x[0])  # the after-leak reset's pending subtraction sub * s[t-1]
    acc = torch.zeros_like(x[0])
    outs = []
    for t in range(x.shape[0]):
        ut = lam * v + x[t]
        if core.after:
            ut = ut - sub
        st = _SurrogateSpike.apply(ut, core.thr, rule.surrogate, rule.alpha, core.strict)
        sr = st.detach() if rule.detach_reset else st  # the spike as the reset sees it
        if core.after:
            v, sub = ut, core.sub * sr
        elif core.reset is Reset.SOFT:
            v = ut - core.thr * sr
        else:
            # An infinite u fired; it resets to 0 like any other (inf * 0 would be NaN, unlike the native forward).
            v = torch.where(torch.isposinf(ut), 0.0, ut) * (1.0 - sr)
        acc = kappa * acc + st / tau_s
        outs.append(acc if output == "psc" else (ut + (neuron.v_reset or 0.0) if output == "membrane" else st))
    return _GuardOut.apply(torch.stack(outs, 0), guard).reshape(c.shape).to(c.dtype)
