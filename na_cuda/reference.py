"""Pure-PyTorch reference implementation of the LIF neuron and its backward rules.

This module is the *oracle* the compiled CPU/CUDA kernels are tested against. It is written independently of
the kernels, directly from ``docs/algorithm.md`` (called "the spec" below) and the NA paper
(Yang et al., ICML 2021, "Backpropagated Neighborhood Aggregation for Accurate Training of Spiking Neural
Networks"; equation numbers refer to it). It must never import the compiled extension.

Conventions shared by every public function:

* ``c`` is the synaptic input, shape ``[T, ...]`` with time first (``T >= 1``). Internally it is reshaped to
  ``[T, N]`` (``N`` = product of the remaining dims); non-contiguous inputs are accepted (``reshape`` copies).
* Results have the shape and dtype of ``c``. The arithmetic is done in float32 when ``c`` is float16/bfloat16
  (half precision is too coarse for the membrane recursion) and in ``c``'s own dtype for float32/float64.
* Parameters are Python floats: ``lam = 1 - 1/tau_m`` (membrane leak; ``tau_m = inf`` is the IF neuron,
  ``lam = 1``), ``kappa = 1 - 1/tau_s`` (PSC decay), ``beta = 1/tau_m`` with ``decay_input`` else 1 (input scale).
* Neuron options (docs/algorithm.md sec. 9): ``v_reset = vr`` (a float, hard reset; 0 = the paper) or ``None``
  (soft reset: subtract the threshold). A hard reset is simulated in *shifted coordinates* ``w = v - vr``: then
  ``u - vr = lam * w + beta * c`` and the neuron is the paper's one with the threshold ``threshold - vr``,
  resetting to ``w = 0``. Mathematically this is ``u = lam (v - vr) + vr + beta c``; in floating point it is the
  chosen operation order (for ``vr = 0`` and ``beta = 1`` it is bit-for-bit the paper's recursion). The
  literal pipeline (:mod:`na_cuda.literal`) computes in the unshifted form, an independent check.
* Spike rule: ``u >= threshold`` fires, i.e. ``H(0) = 1`` (paper sec. 3.2; spec sec. 2); with
  ``strict_threshold=True``, ``u > threshold`` (the authors' released code, ``mem > threshold``).
* Vectorised over neurons; plain Python loops over time (the reference favours clarity over speed).

Contents:

* :func:`lif_states`, :func:`lif_forward` -- the forward pass (eq. 1-4, spec sec. 2).
* :func:`na_backward` -- NA with simple neighbourhood selection (SNS), eq. 13-17, spec sec. 3, computed the
  *direct* way (explicit neighbour simulation and ``a_p - a``), not via the efficient ``W`` form of the spec.
* :func:`stbp_forward` -- the same forward in differentiable torch ops with a surrogate spike derivative, so
  that autograd yields STBP (spec sec. 5).
* :func:`tssl_backward` -- the TSSL-BP backward (spec sec. 6, following the released code).
* :func:`lif` -- differentiable entry point choosing one of the above.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

import torch

__all__ = [
    "SURROGATE_DEFAULT_ALPHA",
    "lif_states",
    "lif_forward",
    "error_signal",
    "sns_neighbour_spikes",
    "sns_loss_change",
    "na_phi",
    "na_backward",
    "surrogate_grad",
    "stbp_forward",
    "tssl_backward",
    "lif",
]

#: Default width/steepness parameter of each STBP surrogate (spec sec. 5): rect width ``a``, triangle half-width
#: ``g``, sigmoid steepness ``k``, atan ``alpha`` (spikingjelly ``surrogate.ATan``), fast_sigmoid slope
#: (snnTorch ``surrogate.fast_sigmoid``).
SURROGATE_DEFAULT_ALPHA: dict[str, float] = {
    "rect": 1.0,
    "triangle": 1.0,
    "sigmoid": 4.0,
    "atan": 2.0,
    "fast_sigmoid": 25.0,
}

_OUTPUTS = ("psc", "spike")
_FIRST_ORDER = ("paper", "taylor")


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
    ``thr`` (``threshold - vr`` for a hard reset), ``soft`` (subtract ``thr`` on a spike, else reset to 0),
    ``strict`` firing, ``tau_s`` and the input scale ``beta``."""

    lam: float
    thr: float
    soft: bool
    strict: bool
    tau_s: float
    beta: float
    tau_m: float


def _core(
    tau_m: float, tau_s: float, threshold: float, strict: bool, v_reset: Optional[float], decay_input: bool
) -> _Core:
    thr = threshold if v_reset is None else threshold - v_reset
    beta = 1.0 / tau_m if decay_input else 1.0
    return _Core(1.0 - 1.0 / tau_m, thr, v_reset is None, strict, tau_s, beta, tau_m)


def _scaled(x: torch.Tensor, core: _Core) -> torch.Tensor:
    """``beta * x`` (differentiable); ``x`` itself when ``beta = 1`` (the product would be exact anyway)."""
    return x if core.beta == 1.0 else x * core.beta


def _reset(u: torch.Tensor, fired: torch.Tensor, core: _Core) -> torch.Tensor:
    """Post-spike potential: ``u - thr`` (soft) or 0 (hard, shifted coordinates) where ``fired``, else ``u``."""
    return torch.where(fired, u - core.thr, u) if core.soft else torch.where(fired, 0.0, u)


def _check_output(output: str) -> None:
    if output not in _OUTPUTS:
        raise ValueError(f"output must be one of {_OUTPUTS}, got {output!r}")


def _check_first_order(first_order: str) -> None:
    if first_order not in _FIRST_ORDER:
        raise ValueError(f"first_order must be one of {_FIRST_ORDER}, got {first_order!r}")


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
    lam, kappa, tau_s = core.lam, 1.0 - 1.0 / core.tau_s, core.tau_s
    u = torch.empty_like(x)
    s = torch.empty_like(x)
    a = torch.empty_like(x)
    v = torch.zeros_like(x[0])  # post-reset potential, v = 0 before t = 0
    acc = torch.zeros_like(x[0])  # PSC, a = 0 before t = 0
    for t in range(x.shape[0]):
        # Literally this operation order (multiply, then add; reset via where; PSC update) so that a float64
        # C++ loop doing the same ops without FMA contraction is bit-identical.
        ut = lam * v + x[t]
        fired = _fires(ut, core.thr, core.strict)  # H(0) = 1 unless strict (paper sec. 3.2, spec sec. 2)
        st = fired.to(x.dtype)
        v = _reset(ut, fired, core)  # eq. 4 (hard reset) or the soft reset
        acc = kappa * acc + st / tau_s  # eq. 3
        u[t] = ut
        s[t] = st
        a[t] = acc
    return u, s, a


# ----------------------------------------------------------------------------------------------------------------
# forward
# ----------------------------------------------------------------------------------------------------------------
def lif_states(
    c: torch.Tensor,
    tau_m: float,
    tau_s: float,
    threshold: float,
    strict_threshold: bool = False,
    *,
    v_reset: Optional[float] = 0.0,
    decay_input: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """LIF states over time (paper eq. 1-4, spec sec. 2; options: docs/algorithm.md sec. 9).

    Per neuron, with ``v = vr`` (hard reset) or 0 (soft), ``a = 0`` before ``t = 0``::

        u[t] = lam * (v - vr) + vr + beta * c[t]   # pre-reset membrane potential (vr := 0 for a soft reset)
        s[t] = 1 if u[t] >= threshold              # H(0) = 1 (u > threshold with strict_threshold)
        v    = vr (hard) or u[t] - threshold (soft) if s[t] else u[t]
        a[t] = kappa * a + s[t] / tau_s            # PSC

    Args:
        c: synaptic input ``[T, ...]``.
        tau_m, tau_s, threshold: neuron parameters (Python floats).
        strict_threshold: fire on ``u > threshold`` (the released code) instead of ``u >= threshold``.
        v_reset: hard-reset level, or None for a soft reset. decay_input: scale ``c`` by ``1/tau_m``.

    Returns:
        ``(u, s, a)``, each of shape ``c.shape`` in the *compute* dtype (float32 for half inputs). ``u`` is
        ``w + vr`` with ``w`` the shifted-coordinate potential (``u`` itself for ``vr = 0``).
    """
    dtype = _compute_dtype(c.dtype)
    core = _core(tau_m, tau_s, threshold, strict_threshold, v_reset, decay_input)
    u, s, a = _states_2d(_scaled(_to_2d(c, dtype), core), core)
    if v_reset:
        u = u + v_reset
    return u.reshape(c.shape), s.reshape(c.shape), a.reshape(c.shape)


def lif_forward(
    c: torch.Tensor,
    tau_m: float,
    tau_s: float,
    threshold: float,
    output: str = "psc",
    strict_threshold: bool = False,
    *,
    v_reset: Optional[float] = 0.0,
    decay_input: bool = False,
) -> torch.Tensor:
    """LIF forward (spec sec. 2): the PSC ``a`` (eq. 3, ``output="psc"``) or the spikes ``s`` (``"spike"``).

    Returns a tensor of ``c``'s shape and dtype (spikes as 0/1 values).
    """
    _check_output(output)
    _, s, a = lif_states(c, tau_m, tau_s, threshold, strict_threshold, v_reset=v_reset, decay_input=decay_input)
    out = a if output == "psc" else s
    return out.to(c.dtype)


# ----------------------------------------------------------------------------------------------------------------
# NA backward (spec sec. 3)
# ----------------------------------------------------------------------------------------------------------------
def _error_signal_2d(g: torch.Tensor, tau_s: float, output: str, first_order: str) -> torch.Tensor:
    """Vector ``X`` that multiplies the output change in the first-order loss change (eq. 13, spec sec. 3.2).

    * ``output="psc"``, ``first_order="paper"``: the PSC error signal of eq. 7, ``e[t] = G[t] + kappa e[t+1]``,
      ``e[T] = 0`` (what the authors' code uses).
    * ``output="psc"``, ``first_order="taylor"``: ``G`` itself (the exact gradient w.r.t. ``a``).
    * ``output="spike"``: ``G`` in both modes (the loss change is measured on the spikes directly).
    """
    _check_output(output)
    _check_first_order(first_order)
    if output == "spike" or first_order == "taylor":
        return g
    kappa = 1.0 - 1.0 / tau_s
    e = torch.empty_like(g)
    nxt = torch.zeros_like(g[0])
    for t in range(g.shape[0] - 1, -1, -1):
        nxt = g[t] + kappa * nxt
        e[t] = nxt
    return e


def error_signal(grad_out: torch.Tensor, tau_s: float, output: str = "psc", first_order: str = "paper") -> torch.Tensor:
    """Public wrapper of the eq. 7 error signal selection (see :func:`_error_signal_2d`); shape/dtype of grad_out."""
    dtype = _compute_dtype(grad_out.dtype)
    x = _error_signal_2d(_to_2d(grad_out, dtype), tau_s, output, first_order)
    return x.reshape(grad_out.shape).to(grad_out.dtype)


def _sns_neighbours_2d(u: torch.Tensor, s: torch.Tensor, x: torch.Tensor, core: _Core) -> torch.Tensor:
    """Spike trains of all SNS neighbours (paper sec. 3.4, spec sec. 3.3), shape ``[P=T, T, N]``.

    Neighbour ``p`` flips the firing at ``p`` with the least perturbation of the input at ``p`` and re-simulates
    the rest of the sequence with the unchanged input (Algorithm 1 with ``eps = (threshold - u[p]) e_p`` in the
    limit of a vanishing overshoot):

    * ``t < p``: unchanged (``eps`` is zero before ``p``, and the recursion is causal);
    * ``t = p``: flipped;
    * post-reset potential after ``p``: ``threshold`` if a spike was cancelled (``u'[p]`` is just below the
      threshold, the limit from below, and is not reset), ``0`` if a spike was added (reset);
    * ``t > p``: ``u' = lam * v' + c[t]``, ``s' = u' >= threshold``, ``v' = where(s', 0, u')``.

    With ``strict`` firing (``u > threshold``) a cancelled spike leaves ``u'[p] = threshold`` exactly (no limit
    needed: a tie is silent), so ``v' = threshold`` as well.

    A soft reset gives the same post-flip state: an added spike leaves ``u'[p] = threshold``, which resets to
    ``threshold - threshold = 0``; a cancelled one is not reset. After ``p`` the neighbour runs with the soft reset;
    its states no longer merge with the original's at the next common spike, so every neighbour is simulated to
    the end of the window (the direct form below does that for every reset mode).

    No early exit is taken here (the spec's early exit is exact, so the result is the same; the direct form is
    the independent check of it).
    """
    lam, threshold = core.lam, core.thr
    T = x.shape[0]
    out = s.unsqueeze(0).repeat(T, 1, 1)  # out[p] starts as a copy of s
    for p in range(T):
        sp = out[p]
        fired_p = s[p] > 0
        sp[p] = 1.0 - s[p]
        # spec sec. 3.3: v' = threshold if s[p] == 1 else 0 (built in x.dtype: threshold must not pass via float32)
        v = torch.where(fired_p, torch.full_like(x[0], threshold), torch.zeros_like(x[0]))
        for t in range(p + 1, T):
            ut = lam * v + x[t]
            fired = _fires(ut, threshold, core.strict)
            sp[t] = fired.to(x.dtype)
            v = _reset(ut, fired, core)
    return out


def sns_neighbour_spikes(
    c: torch.Tensor,
    tau_m: float,
    tau_s: float,
    threshold: float,
    strict_threshold: bool = False,
    *,
    v_reset: Optional[float] = 0.0,
    decay_input: bool = False,
) -> torch.Tensor:
    """Spike trains of the ``T`` SNS neighbours of every neuron (spec sec. 3.3), shape ``[T(p), *c.shape]``.

    ``tau_s`` is unused (kept for a uniform signature). Returned in the compute dtype.
    """
    dtype = _compute_dtype(c.dtype)
    core = _core(tau_m, tau_s, threshold, strict_threshold, v_reset, decay_input)
    x = _scaled(_to_2d(c, dtype), core)
    u, s, _ = _states_2d(x, core)
    sp = _sns_neighbours_2d(u, s, x, core)
    return sp.reshape((x.shape[0],) + tuple(c.shape))


def _sns_loss_change_2d(
    g: torch.Tensor, x: torch.Tensor, core: _Core, output: str, first_order: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """First-order loss change ``dL_p`` of each SNS neighbour (eq. 13, spec sec. 3.2), direct form.

    ``dL_p = sum_t X[t] * (a_p[t] - a[t])`` (``X`` from :func:`_error_signal_2d`) for ``output="psc"``,
    ``dL_p = sum_t G[t] * (s_p[t] - s[t])`` for ``output="spike"``. ``a_p`` is the PSC (eq. 3) of the
    neighbour's simulated spike train; ``x`` is the scaled input. Returns ``(dL [T, N], u [T, N])``.
    """
    u, s, a = _states_2d(x, core)
    X = _error_signal_2d(g, core.tau_s, output, first_order)
    sp_all = _sns_neighbours_2d(u, s, x, core)
    dL = torch.empty_like(x)
    for p in range(x.shape[0]):
        if output == "psc":
            diff = _psc_2d(sp_all[p], core.tau_s) - a
        else:
            diff = sp_all[p] - s
        dL[p] = (X * diff).sum(0)
    return dL, u


def sns_loss_change(
    grad_out: torch.Tensor,
    c: torch.Tensor,
    tau_m: float,
    tau_s: float,
    threshold: float,
    output: str = "psc",
    first_order: str = "paper",
    strict_threshold: bool = False,
    *,
    v_reset: Optional[float] = 0.0,
    decay_input: bool = False,
) -> torch.Tensor:
    """``dL_p`` (eq. 13) of the SNS neighbour at every time step ``p``; shape and dtype of ``c``.

    This is :func:`na_backward` before the distance scaling ``phi`` and the input scale ``beta`` (so
    ``na_backward = beta * dL * phi(threshold - u)``).
    """
    dtype = _compute_dtype(c.dtype)
    core = _core(tau_m, tau_s, threshold, strict_threshold, v_reset, decay_input)
    x = _scaled(_to_2d(c, dtype), core)
    g = _to_2d(grad_out, dtype)
    dL, _ = _sns_loss_change_2d(g, x, core, output, first_order)
    return dL.reshape(c.shape).to(c.dtype)


def na_phi(d: torch.Tensor, dist_power: float = 3, clip: float = 10.0, strict_threshold: bool = False) -> torch.Tensor:
    """Distance scaling of the aggregated finite difference (eq. 14/16/17, spec sec. 3.4).

    ``phi(d) = clamp(d ** (-k), -b, b)`` with ``k = dist_power``, ``b = clip``, applied to the *signed* SNS
    MP-distance ``d = threshold - u[p]`` (``|d| = d_MP``; the sign is that of the unit vector ``o_p = +-e_p``,
    which the pseudo-inverse of eq. 15 reduces to). ``k = 1`` is eq. 14, ``k = 3`` is eq. 17; both clamped.

    ``phi(0) = -b``: ``u == threshold`` fires (H(0) = 1), so the flip must *lower* ``u`` and the direction is
    ``-e_p`` with a distance that tends to 0 (the clamp then saturates). With ``strict_threshold`` (``u > threshold``
    fires) a tie is silent, the flip raises ``u``, and ``phi(0) = +b`` (what the released code's
    ``clamp(0 ** -k, -b, b)`` gives).

    Note: for odd integer ``k`` this equals ``sign(d) * min(|d|^-k, b)``, the literal pipeline. For even or
    non-integer ``k`` the spec formula ``d ** (-k)`` loses the sign or is NaN for ``d < 0``; it is kept as the
    spec writes it.
    """
    val = torch.clamp(torch.pow(d, -dist_power), -clip, clip)
    return torch.where(d == 0, torch.full_like(d, clip if strict_threshold else -clip), val)


def na_backward(
    grad_out: torch.Tensor,
    c: torch.Tensor,
    tau_m: float,
    tau_s: float,
    threshold: float,
    output: str = "psc",
    first_order: str = "paper",
    dist_power: float = 3,
    clip: float = 10.0,
    strict_threshold: bool = False,
    *,
    v_reset: Optional[float] = 0.0,
    decay_input: bool = False,
) -> torch.Tensor:
    """NA backward with SNS (paper sec. 3.4-3.5.1, eq. 13-17; spec sec. 3), the direct way.

    For every neuron and every ``p``: simulate the SNS neighbour that flips the firing at ``p`` (spec sec. 3.3),
    compute its first-order loss change ``dL_p`` (eq. 13 with ``X = e`` of eq. 7 for ``first_order="paper"``,
    ``X = G`` for ``"taylor"``, spikes for ``output="spike"``) from the neighbour's actual PSC / spikes, and
    scale it by the distance: ``grad_c[p] = dL_p * phi(threshold - u[p])`` (eq. 16/17, :func:`na_phi`).

    Since ``c = f^{-1}(u)`` enters ``u`` with weight ``beta`` at the same time step and the aggregated gradient
    replaces ``delta = dL/du`` in eq. 10, ``beta`` times this is ``dL/dc``. With a soft reset every neighbour is
    simulated to the end of the window (see :func:`_sns_neighbours_2d`); ``d = threshold - u`` as always.

    Args:
        grad_out: ``G = dL/d out``, shape of ``c``.
        c: synaptic input ``[T, ...]``.
        output: "psc" or "spike" (what the forward returned).
        first_order: "paper" or "taylor" (ignored for "spike").
        dist_power: ``k`` of ``phi``; clip: ``b`` of ``phi``.
        strict_threshold: fire on ``u > threshold`` (released code) instead of ``u >= threshold``.

    Returns:
        ``grad_c``, shape and dtype of ``c``.
    """
    dtype = _compute_dtype(c.dtype)
    core = _core(tau_m, tau_s, threshold, strict_threshold, v_reset, decay_input)
    x = _scaled(_to_2d(c, dtype), core)
    g = _to_2d(grad_out, dtype)
    dL, u = _sns_loss_change_2d(g, x, core, output, first_order)
    grad = _scaled(dL * na_phi(core.thr - u, dist_power, clip, strict_threshold), core)
    return grad.reshape(c.shape).to(c.dtype)


# ----------------------------------------------------------------------------------------------------------------
# STBP (spec sec. 5)
# ----------------------------------------------------------------------------------------------------------------
def surrogate_grad(u: torch.Tensor, threshold: float, surrogate: str, alpha: Optional[float] = None) -> torch.Tensor:
    """Surrogate ``h(u)`` for ``dH(u - threshold)/du`` (spec sec. 5).

    * ``rect`` (STBP, Wu et al. 2018): ``1/a`` where ``|u - threshold| < a/2``, else 0;
    * ``triangle`` (TET): ``max(0, g - |u - threshold|) / g^2``;
    * ``sigmoid``: ``k * sig * (1 - sig)``, ``sig = sigmoid(k (u - threshold))``;
    * ``atan`` (spikingjelly ``surrogate.ATan``): ``(alpha/2) / (1 + (pi/2 * alpha * x)^2)``, ``x = u - threshold``;
    * ``fast_sigmoid`` (snnTorch ``surrogate.fast_sigmoid``, slope ``alpha``): ``1 / (alpha |x| + 1)^2``.

    ``alpha`` is ``a`` / ``g`` / ``k`` / ``alpha`` / the slope; ``None`` picks :data:`SURROGATE_DEFAULT_ALPHA`.
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


def stbp_forward(
    c: torch.Tensor,
    tau_m: float,
    tau_s: float,
    threshold: float,
    output: str = "psc",
    surrogate: str = "rect",
    surrogate_alpha: Optional[float] = None,
    detach_reset: bool = True,
    strict_threshold: bool = False,
    *,
    v_reset: Optional[float] = 0.0,
    decay_input: bool = False,
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
    """
    _check_output(output)
    if surrogate not in SURROGATE_DEFAULT_ALPHA:
        raise ValueError(f"surrogate must be one of {tuple(SURROGATE_DEFAULT_ALPHA)}, got {surrogate!r}")
    core = _core(tau_m, tau_s, threshold, strict_threshold, v_reset, decay_input)
    lam, kappa = core.lam, 1.0 - 1.0 / tau_s
    dtype = _compute_dtype(c.dtype)
    x = _scaled(_to_2d(c, dtype), core)  # differentiable reshape + cast (+ scale)
    v = torch.zeros_like(x[0])
    acc = torch.zeros_like(x[0])
    outs = []
    for t in range(x.shape[0]):
        ut = lam * v + x[t]
        st = _SurrogateSpike.apply(ut, core.thr, surrogate, surrogate_alpha, strict_threshold)
        sr = st.detach() if detach_reset else st  # the spike as the reset sees it
        if core.soft:
            v = ut - core.thr * sr
        else:
            # An infinite u fired; it resets to 0 like any other (inf * 0 would be NaN, unlike the native forward).
            v = torch.where(torch.isposinf(ut), 0.0, ut) * (1.0 - sr)
        acc = kappa * acc + st / tau_s
        outs.append(acc if output == "psc" else st)
    return torch.stack(outs, 0).reshape(c.shape).to(c.dtype)


# ----------------------------------------------------------------------------------------------------------------
# TSSL-BP (spec sec. 6)
# ----------------------------------------------------------------------------------------------------------------
def tssl_backward(
    grad_out: torch.Tensor,
    c: torch.Tensor,
    tau_m: float,
    tau_s: float,
    threshold: float,
    strict_threshold: bool = False,
    *,
    v_reset: Optional[float] = 0.0,
    decay_input: bool = False,
) -> torch.Tensor:
    """TSSL-BP backward (Zhang & Li 2020; spec sec. 6), a port of the released ``functions/tsslbp.py``.

    Defined for a hard reset (TSSL-BP models reset-to-rest): with ``v_reset = vr`` it runs in the shifted
    coordinates ``w = v - vr`` (the released formulas with ``u``, ``v``, ``threshold`` replaced by ``u - vr``,
    ``v - vr``, ``threshold - vr``), and ``decay_input`` scales the input and the gradient by ``beta``.
    A soft reset raises ValueError.

    Only for ``output="psc"``. Per neuron, ``sig[k] = kappa^k / tau_s`` (PSC kernel), ``du[t] = c[t] -
    v[t-1]/tau_m`` (the membrane update, ``v`` = post-reset potential of *this* forward, ``u >= threshold``
    fires, or ``u > threshold`` with ``strict_threshold``), ``theta = 0``, for ``t = T-1 .. 0``::

        pu    = clamp(-1/du[t], -8, 0) * s[t]               # d t_spike / d u: only where a spike is
        gt    = sum_k (-sig[k]/tau_s) * pu * G[t+k] * tau_s  # inter-neuron term
        gt   += theta*u[t]*(-1/tau_m)*pu + theta*lam*(1-s[t])   (t < T-1)  # intra-neuron term
        theta = gt*s[t] + theta*(1-s[t])*lam
        ga    = sum_k sig[k] * G[t+k] * f(u[t]),   f = exp(x)/((1+exp(x))^2 * 0.2),  x = clamp((thr-u)/0.2, -8, 8)
        grad_c[t] = ga if a[t] < 1/(4 tau_s) else gt         # warm-up fallback

    The ``* s[t]`` gating is the head of the released code (``partial_u = torch.clamp(-1/delta_u[..., t], -8, 0)
    * out``, commits c1c030c and ca5da51); only an intermediate commit (08ff1d7) dropped it. It matters at steps
    with ``s[t] = 0`` and ``a[t] >= 1/(4 tau_s)``, where ``gt`` is the output.
    """
    if v_reset is None:
        raise ValueError(
            "na_cuda: TSSL-BP is defined for a reset to rest; v_reset=None (soft reset) is not "
            "supported, use method='na' or 'stbp' or a float v_reset"
        )
    dtype = _compute_dtype(c.dtype)
    core = _core(tau_m, tau_s, threshold, strict_threshold, v_reset, decay_input)
    threshold = core.thr
    x = _scaled(_to_2d(c, dtype), core)
    G = _to_2d(grad_out, dtype)
    T = x.shape[0]
    u, s, a = _states_2d(x, core)
    theta_m = 1.0 / tau_m
    lam = 1.0 - theta_m
    # sig[k] = kappa^k / tau_s, as Python doubles first (then cast once to the compute dtype)
    sig_list, val = [], 1.0 / tau_s
    kappa = 1.0 - 1.0 / tau_s
    for _ in range(T):
        sig_list.append(val)
        val *= kappa
    sig = torch.tensor(sig_list, dtype=dtype).unsqueeze(1)  # [T, 1]
    partial_a = sig / (-tau_s)  # d a / d t_spike per unit of spike-time shift, released code's partial_a
    # post-reset potential before each step: v[-1] = 0, v[t] = u[t] * (1 - s[t])
    v_prev = torch.cat([torch.zeros_like(u[:1]), torch.where(s[:-1] > 0, 0.0, u[:-1])], 0)
    du = (-theta_m) * v_prev + x  # released code: mem_update = (-theta_m) * mem + inputs
    th = 1.0 / (4.0 * tau_s)
    grad = torch.empty_like(x)
    theta = torch.zeros_like(x[0])
    for t in range(T - 1, -1, -1):
        L = T - t
        out_t = s[t]
        pu = torch.clamp(-1.0 / du[t], -8.0, 0.0) * out_t  # released head: `... * out`
        gt = ((pu.unsqueeze(0) * partial_a[:L]) * G[t:] * tau_s).sum(0)  # inter-neuron term
        if t != T - 1:
            gt = gt + theta * u[t] * (-1.0) * theta_m * pu  # intra-neuron term via the spike time
            gt = gt + theta * lam * (1.0 - out_t)  # ... and via the leak when no spike resets
        theta = gt * out_t + theta * (1.0 - out_t) * lam
        ga = (sig[:L] * G[t:]).sum(0)
        xf = torch.clamp((-1.0 * u[t] + threshold) / 0.2, -8.0, 8.0)
        ef = torch.exp(xf)
        ga = ga * (ef / ((1.0 + ef) * (1.0 + ef) * 0.2))
        grad[t] = torch.where(a[t] < th, ga, gt)  # warm-up fallback where the PSC is (nearly) silent
    return _scaled(grad, core).reshape(c.shape).to(c.dtype)


# ----------------------------------------------------------------------------------------------------------------
# differentiable entry point
# ----------------------------------------------------------------------------------------------------------------
class CustomBackward(torch.autograd.Function):
    """Forward = :func:`lif_forward` of ``neuron`` (a ``LifParams``); backward = ``backward(grad_out, c)``, a rule's
    reference backward (NA, TSSL-BP). Saves only ``c``."""

    @staticmethod
    def forward(ctx, c: torch.Tensor, neuron, backward) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(c)
        ctx.backward_fn = backward
        return lif_forward(
            c,
            neuron.tau_m,
            neuron.tau_s,
            neuron.threshold,
            neuron.output,
            neuron.strict_threshold,
            v_reset=neuron.v_reset,
            decay_input=neuron.decay_input,
        )

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):  # type: ignore[override]
        (c,) = ctx.saved_tensors
        return ctx.backward_fn(grad_out, c), None, None


def lif(c: torch.Tensor, **options: Any) -> torch.Tensor:
    """Differentiable LIF layer over time, reference version of the public ``na_cuda.lif``: the same keywords
    (the neuron's and the rule's, validated the same way by ``na_cuda._validate.build``), without ``backend``.

    ``method`` names a rule of ``na_cuda.rules.RULES``: ``"na"`` (NA-SNS backward, spec sec. 3), ``"tssl"``
    (TSSL-BP, spec sec. 6, PSC output only) or ``"stbp"`` (autograd through :func:`stbp_forward`, spec sec. 5).
    Returns the PSC or the spikes (``output``) with the shape and dtype of ``c``.
    """
    from . import _validate  # lazy: the rules import this module

    if "backend" in options:
        raise TypeError("na_cuda.reference.lif() is the pure-PyTorch backend; it takes no `backend` (use na_cuda.lif)")
    neuron, rule, _ = _validate.build(**options)
    return rule.reference(c, neuron)
