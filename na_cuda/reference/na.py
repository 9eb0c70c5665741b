"""NA backward with simple neighbourhood selection, the direct way (eq. 7, 13-17, spec sec. 3).

Part of ``na_cuda.reference`` (see its docstring for the conventions). See docs/algorithm.md."""

from __future__ import annotations

from typing import Any, Optional

import torch

from ..params import OUTPUTS, LifParams, Reset, choice
from ..rules import FIRST_ORDERS, NA
from ._core import (
    _compute_dtype,
    _Core,
    _core,
    _decay_grad_2d,
    _fires,
    _nonfinite_guard,
    _nonfinite_guard_decay,
    _psc_2d,
    _scaled,
    _states_2d,
    _step,
    _to_2d,
)


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
    choice("output", output, OUTPUTS)
    choice("first_order", first_order, FIRST_ORDERS)
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

    A reset after the leak (sec. 11) starts the neighbour at ``u'[p] = threshold`` in both cases; the next step
    subtracts nothing after a cancelled spike and ``sub`` after an added one (:func:`_step` carries it).

    No early exit is taken here (the spec's early exit is exact, so the result is the same; the direct form is
    the independent check of it).
    """
    threshold = core.thr
    T = x.shape[0]
    out = s.unsqueeze(0).repeat(T, 1, 1)  # out[p] starts as a copy of s
    for p in range(T):
        sp = out[p]
        fired_p = s[p] > 0
        sp[p] = 1.0 - s[p]
        # spec sec. 3.3: v' = threshold if s[p] == 1 else 0 (built in x.dtype: threshold must not pass via float32)
        v = torch.where(fired_p, torch.full_like(x[0], threshold), torch.zeros_like(x[0]))
        r = torch.zeros_like(x[0])
        if core.after:  # sec. 11: u'[p] = threshold; the added spike's subtraction comes next step
            v = torch.full_like(x[0], threshold)
            r = torch.where(fired_p, 0.0, core.sub).to(x.dtype)
        for t in range(p + 1, T):
            _, fired, v, r = _step(v, r, x[t], core)
            sp[t] = fired.to(x.dtype)
    return out


def _sns_windowed_2d(s: torch.Tensor, x: torch.Tensor, core: _Core, window: int) -> torch.Tensor:
    """Spike trains of the SNS neighbours under ``na_window = window`` (docs/algorithm.md §3.8), ``[P=T, T, N]``.

    The definition, computed directly (no exits): neighbour ``p`` flips step ``p`` and re-simulates at most the
    steps ``p+1 .. p+window`` (its own steps); it equals the original at every other step after ``p``, except that
    under a hard reset its own steps end at its first spike ``f``: a common spike merges the two (nothing differs
    after ``f``), an added one leaves it in the state of neighbour ``f`` (reset to 0), so after ``f`` it differs
    from the original as the windowed neighbour ``f`` does. ``window >= T - 1`` gives :func:`_sns_neighbours_2d`.
    """
    T = x.shape[0]
    hard = core.reset is Reset.HARD
    d = torch.zeros((T,) + tuple(x.shape), dtype=x.dtype)  # d[p] = (windowed neighbour p's train) - s
    for p in range(T - 1, -1, -1):
        fired_p = s[p] > 0
        d[p, p] = 1.0 - 2.0 * s[p]
        # the post-flip state of _sns_neighbours_2d (spec sec. 3.3, sec. 11)
        v = torch.where(fired_p, torch.full_like(x[0], core.thr), torch.zeros_like(x[0]))
        r = torch.zeros_like(x[0])
        if core.after:
            v = torch.full_like(x[0], core.thr)
            r = torch.where(fired_p, 0.0, core.sub).to(x.dtype)
        own = torch.ones_like(fired_p)  # the neighbour's own steps still count
        src = torch.full(fired_p.shape, -1, dtype=torch.long)  # hard reset: the added first spike f, or -1
        for k in range(p + 1, min(p + window, T - 1) + 1):
            _, fired, v, r = _step(v, r, x[k], core)
            d[p, k] = torch.where(own, fired.to(x.dtype) - s[k], 0.0)
            if hard:
                src = torch.where(own & fired & (s[k] == 0), k, src)
                own = own & ~fired
        if hard:
            for k in range(p + 1, T):
                rest = d[:, k].gather(0, src.clamp(min=0).unsqueeze(0)).squeeze(0)  # d[f, k] per neuron
                d[p, k] = torch.where((src >= 0) & (k > src), rest, d[p, k])
    return s.unsqueeze(0) + d


def sns_neighbour_spikes(c: torch.Tensor, neuron: LifParams) -> torch.Tensor:
    """Spike trains of the ``T`` SNS neighbours of every neuron (spec sec. 3.3), shape ``[T(p), *c.shape]``, in the
    compute dtype."""
    dtype = _compute_dtype(c.dtype)
    core = _core(neuron)
    x = _scaled(_to_2d(c, dtype), core)
    u, s, _ = _states_2d(x, core)
    sp = _sns_neighbours_2d(u, s, x, core)
    return sp.reshape((x.shape[0],) + tuple(c.shape))


def _sns_loss_change_2d(
    g: torch.Tensor, x: torch.Tensor, core: _Core, output: str, first_order: str, window: Optional[int] = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """First-order loss change ``dL_p`` of each SNS neighbour (eq. 13, spec sec. 3.2), direct form.

    ``dL_p = sum_t X[t] * (a_p[t] - a[t])`` (``X`` from :func:`_error_signal_2d`) for ``output="psc"``,
    ``dL_p = sum_t G[t] * (s_p[t] - s[t])`` for ``output="spike"``. ``a_p`` is the PSC (eq. 3) of the
    neighbour's simulated spike train; ``x`` is the scaled input; ``window``: ``na_window`` (None: exact).
    Returns ``(dL [T, N], u [T, N])``.
    """
    u, s, a = _states_2d(x, core)
    X = _error_signal_2d(g, core.tau_s, output, first_order)
    sp_all = _sns_neighbours_2d(u, s, x, core) if window is None else _sns_windowed_2d(s, x, core, window)
    dL = torch.empty_like(x)
    for p in range(x.shape[0]):
        if output == "psc":
            diff = _psc_2d(sp_all[p], core.tau_s) - a
        else:
            diff = sp_all[p] - s
        # From p on: before p the neighbour equals the original exactly (causality), and X[t < p] may be non-finite
        # without concerning step p (spec sec. 10: inf * 0 there would make dL_p NaN).
        dL[p] = (X[p:] * diff[p:]).sum(0)
    return dL, u


def sns_loss_change(grad_out: torch.Tensor, c: torch.Tensor, neuron: LifParams, rule: NA = NA()) -> torch.Tensor:
    """``dL_p`` (eq. 13) of the SNS neighbour at every time step ``p``; shape and dtype of ``c``.

    This is :func:`na_backward` before the distance scaling ``phi`` and the input scale ``beta`` (so
    ``na_backward = beta * dL * phi(threshold - u)``).
    """
    dtype = _compute_dtype(c.dtype)
    core = _core(neuron)
    x = _scaled(_to_2d(c, dtype), core)
    g = _to_2d(grad_out, dtype)
    dL, _ = _sns_loss_change_2d(g, x, core, neuron.output, rule.first_order, rule.window)
    return dL.reshape(c.shape).to(c.dtype)


def na_phi(
    d: torch.Tensor, dist_power: float = NA.dist_power, clip: float = NA.clip, strict_threshold: bool = False
) -> torch.Tensor:
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
    neuron: LifParams,
    rule: NA = NA(),
    decay: Optional[torch.Tensor] = None,
) -> Any:
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
        neuron: the neuron (``output`` "psc" or "spike": what the forward returned).
        rule: ``NA(first_order, dist_power, clip)``: the error signal (ignored for "spike"), ``k`` and ``b`` of
            ``phi``.

    Returns:
        ``grad_c``, shape and dtype of ``c``; with a learnable ``decay`` (``[N]``, sec. 12) the pair
        ``(grad_c, dL/dlam [N])``, ``dL/dlam = sum_t (dL_t phi_t) du[t]/dlam``.
    """
    dtype = _compute_dtype(c.dtype)
    core = _core(neuron, decay)
    c2 = _to_2d(c, dtype)
    x = _scaled(c2, core)
    g = _to_2d(grad_out, dtype)
    dL, u = _sns_loss_change_2d(g, x, core, neuron.output, rule.first_order, rule.window)
    delta = dL * na_phi(core.thr - u, rule.dist_power, rule.clip, core.strict)  # NA's dL/du (eq. 16/17)
    grad = _nonfinite_guard(_scaled(delta, core), x, g, decay).reshape(c.shape).to(c.dtype)
    if decay is None:
        return grad
    s = _fires(u, core.thr, core.strict).to(dtype)
    return grad, _nonfinite_guard_decay(_decay_grad_2d(delta, x, u, s, core, c2), x, g, decay)
