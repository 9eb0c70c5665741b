"""TSSL-BP backward (spec sec. 6), following the released code.

Part of ``na_cuda.reference`` (see its docstring for the conventions). See docs/algorithm.md."""

from __future__ import annotations

from typing import Any, Optional

import torch

from ..params import LifParams
from ..rules import TSSL
from ._core import (
    _compute_dtype,
    _core,
    _decay_grad_2d,
    _nonfinite_guard,
    _nonfinite_guard_decay,
    _scaled,
    _states_2d,
    _to_2d,
)


# ----------------------------------------------------------------------------------------------------------------
# TSSL-BP (spec sec. 6)
# ----------------------------------------------------------------------------------------------------------------
def tssl_backward(
    grad_out: torch.Tensor,
    c: torch.Tensor,
    neuron: LifParams,
    rule: TSSL = TSSL(),
    decay: Optional[torch.Tensor] = None,
) -> Any:
    """TSSL-BP backward (Zhang & Li 2020; spec sec. 6), a port of the released ``functions/tsslbp.py``.

    Defined for a hard reset (TSSL-BP models reset-to-rest): with ``v_reset = vr`` it runs in the shifted
    coordinates ``w = v - vr`` (the released formulas with ``u``, ``v``, ``threshold`` replaced by ``u - vr``,
    ``v - vr``, ``threshold - vr``), and ``decay_input`` scales the input and the gradient by ``beta``.
    Any other reset raises ValueError (``TSSL.check``).

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
    rule.check(neuron)
    dtype = _compute_dtype(c.dtype)
    core = _core(neuron, decay)
    threshold, tau_m, tau_s = core.thr, core.tau_m, core.tau_s
    c2 = _to_2d(c, dtype)
    x = _scaled(c2, core)
    G = _to_2d(grad_out, dtype)
    T = x.shape[0]
    u, s, a = _states_2d(x, core)
    # 1/tau_m and lam: fixed, or from the learnable decay (sec. 12: 1/tau_m = 1 - lam)
    lam = core.lam
    theta_m = 1.0 / tau_m if decay is None else 1.0 - core.lam
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
    out = _nonfinite_guard(_scaled(grad, core), x, G, decay).reshape(c.shape).to(c.dtype)
    if decay is None:
        return out
    # the rule's dL/du times du/dlam (sec. 12)
    return out, _nonfinite_guard_decay(_decay_grad_2d(grad, x, u, s, core, c2), x, G, decay)
