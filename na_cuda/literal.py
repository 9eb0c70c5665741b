"""The literal paper pipeline of NA (Algorithm 1, Algorithm 2, eq. 13-15), for tests only. Slow.

Float64 Python scalars (IEEE double, same as torch float64), one neuron at a time, computed in the *unshifted*
form of the neuron (docs/algorithm.md §9): ``u = lam (v - vr) + vr + beta c`` for a hard reset to ``vr``,
``u = lam v + beta c`` for a soft reset (``soft=True``), with the reset ``v = vr`` / ``v = u - threshold``. The
reference (``na_cuda.reference``) runs a hard reset in shifted coordinates ``w = v - vr``; agreement of the two
checks that choice as well as the direct SNS form of :func:`na_cuda.reference.na_backward`.

A perturbation ``eps`` of Algorithm 1 is added to the membrane potential ``u`` (as an input at unit weight);
the aggregated ``grad_u`` of eq. 15 therefore becomes ``grad_c = beta * grad_u``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch

from .reference._core import _to_2d  # the shape helper only: no neuron code is shared with the reference

__all__ = ["Neuron", "literal_na_gradient"]


@dataclass(frozen=True)
class Neuron:
    """The neuron of the literal pipeline: leak ``lam``, threshold, reset (``vr`` or soft), input scale ``beta``."""

    lam: float
    threshold: float
    vr: Optional[float] = 0.0  # None: soft reset
    beta: float = 1.0
    strict: bool = False

    @property
    def v0(self) -> float:
        """The membrane potential before ``t = 0``: ``vr`` (hard reset) or 0 (soft)."""
        return 0.0 if self.vr is None else self.vr

    def H(self, x: float) -> float:
        """Heaviside with ``H(0) = 1`` (paper sec. 3.2: ``u[t] >= threshold`` fires), ``H(0) = 0`` if ``strict``."""
        return 1.0 if (x > 0.0 if self.strict else x >= 0.0) else 0.0

    def leak(self, v: float) -> float:
        """The leaky part of ``u[t]``: ``lam (v - vr) + vr`` (hard reset) or ``lam v`` (soft)."""
        return self.lam * v if self.vr is None else self.lam * (v - self.vr) + self.vr

    def reset(self, u: float) -> float:
        """The post-step potential: ``u`` if silent, else ``vr`` (hard) or ``u - threshold`` (soft)."""
        if not self.H(u - self.threshold):
            return u
        return u - self.threshold if self.vr is None else self.vr


def f(c: list[float], n: Neuron) -> list[float]:
    """``u = f(c)`` (paper sec. 3.3): the pre-reset membrane potential from the input."""
    u, v = [], n.v0
    for ct in c:
        ut = n.leak(v) + n.beta * ct
        u.append(ut)
        v = n.reset(ut)
    return u


def f_inv(u: list[float], n: Neuron) -> list[float]:
    """``c = f^{-1}(u)`` (paper sec. 3.3): invert the membrane update using the reset implied by ``u`` itself."""
    c, v = [], n.v0
    for ut in u:
        c.append((ut - n.leak(v)) / n.beta)
        v = n.reset(ut)
    return c


def mp_add(u: list[float], eps: list[float], n: Neuron) -> list[float]:
    """Algorithm 1, ``u' = u (+) eps``: ``eps[t]`` joins the membrane at ``t`` and its chain effect is simulated."""
    c = f_inv(u, n)
    up, v = [], n.v0
    for t in range(len(u)):
        ut = n.leak(v) + eps[t] + n.beta * c[t]
        up.append(ut)
        v = n.reset(ut)
    return up


def mp_sub(up: list[float], u: list[float], n: Neuron) -> list[float]:
    """Algorithm 2, ``eps = u' (-) u``: the membrane perturbation that turns ``u`` into ``u'``."""
    c = f_inv(u, n)
    eps, v = [], n.v0
    for t in range(len(u)):
        ut = n.leak(v) + n.beta * c[t]  # what u[t] would be given the perturbed history (u' reset state v)
        eps.append(up[t] - ut)
        v = n.reset(up[t])
    return eps


def psc(s: list[float], tau_s: float) -> list[float]:
    """PSC of a spike train (eq. 3)."""
    kappa = 1.0 - 1.0 / tau_s
    out, acc = [], 0.0
    for st in s:
        acc = kappa * acc + st / tau_s
        out.append(acc)
    return out


def literal_na_gradient(
    c: torch.Tensor,
    grad_out: torch.Tensor,
    tau_m: float,
    tau_s: float,
    threshold: float,
    output: str = "psc",
    first_order: str = "paper",
    dist_power: float = 3,
    clip: float = 10.0,
    eta: Optional[float] = None,
    strict_threshold: bool = False,
    *,
    v_reset: Optional[float] = 0.0,
    decay_input: bool = False,
) -> torch.Tensor:
    """The NA aggregated gradient computed literally as the paper describes it (sec. 3.3-3.5, eq. 13-15).

    Per neuron, in float64 Python scalars (IEEE double, same as torch float64) and torch float64 for eq. 15:

    1. ``u = f(c)``, ``s = H(u - threshold)``, ``a`` = PSC of ``s``.
    2. SNS (sec. 3.4): ``eps_p = (threshold - u[p] + eta) e_p`` if ``s[p] == 0`` (push just over the threshold),
       ``(threshold - u[p] - eta) e_p`` if ``s[p] == 1`` (push just below it); ``u_p = u (+) eps_p``
       (Algorithm 1). It is checked that the firing at ``p`` really flipped.
    3. ``eps'_p = u_p (-) u`` (Algorithm 2), ``d_MP = ||eps'_p||_2``, ``o_p = eps'_p / d_MP``.
    4. ``dL_p = X . (a_p - a)`` (eq. 13) from the neighbour's *simulated* spikes ``s_p = H(u_p - threshold)``,
       with ``X = e`` (eq. 7) for "paper", ``G`` for "taylor"; ``G . (s_p - s)`` for ``output="spike"``.
    5. ``f_p = dL_p * clip(1 / d_MP**k, -b, b)`` (eq. 14 for k = 1, eq. 17 for k = 3, both clipped).
    6. Eq. 15: ``grad_u = pinv(O) f`` with the rows of ``O`` the ``o_p`` (``torch.linalg.pinv``).

    Why ``eta`` (default ``1e-13 * threshold``): the least perturbation that flips the firing is only reached in
    the limit; a finite overshoot ``eta`` is needed so the flip happens in floating point, so it must be well
    above the rounding of ``u ~ O(threshold)`` (ulp(1) ~ 2.2e-16; 1e-13 is ~450 ulps, and the flip is checked).
    It shifts ``d_MP`` by ``eta`` (and the reset level of a cancelled spike by ``eta``, which only matters at a
    measure-zero tie later on), so the result differs from the exact limit computed by :func:`na_backward` by
    about ``|dL_p| * |phi'(d)| * eta`` with ``|phi'| <= k * b**((k+1)/k)`` (~65 for k = 3, b = 10; 100 for k = 1,
    b = 10). Measured on random O(1) inputs the difference scales linearly with eta: 3.5e-9 at 1e-11, 3.5e-10 at
    1e-12, 3.5e-11 at 1e-13, 3.5e-12 at 1e-14 -- so the spec's ``eta ~ 1e-9`` would not pass a 1e-9 check, and
    1e-13 leaves a 30x margin.

    The neuron options (module docstring) enter through ``f``, ``f^{-1}`` and the reset; with a soft reset the
    perturbed sequence of Algorithm 1 is simulated to the end as for any reset.

    Returns ``grad_c`` (= ``beta`` times the aggregated ``grad_u``) with the shape and dtype of ``c``.
    """
    if eta is None:
        eta = 1e-13 * abs(threshold)
    neuron = Neuron(1.0 - 1.0 / tau_m, threshold, v_reset, 1.0 / tau_m if decay_input else 1.0, strict_threshold)
    kappa = 1.0 - 1.0 / tau_s
    x = _to_2d(c, torch.float64)
    g = _to_2d(grad_out, torch.float64)
    T, N = x.shape
    result = torch.empty((T, N), dtype=torch.float64)
    for n in range(N):
        cn = x[:, n].tolist()
        gn = g[:, n].tolist()
        u = f(cn, neuron)
        s = [neuron.H(ut - threshold) for ut in u]
        a = psc(s, tau_s)
        # eq. 7: PSC error signal, or G itself
        if output == "psc" and first_order == "paper":
            X, nxt = [0.0] * T, 0.0
            for t in range(T - 1, -1, -1):
                nxt = gn[t] + kappa * nxt
                X[t] = nxt
        else:
            X = gn
        rows, fd = [], []
        for p in range(T):
            eps = [0.0] * T
            eps[p] = threshold - u[p] + (eta if s[p] == 0.0 else -eta)
            up = mp_add(u, eps, neuron)  # Algorithm 1
            sp = [neuron.H(v - threshold) for v in up]
            if sp[p] == s[p]:
                raise RuntimeError(
                    f"SNS perturbation at p={p} did not flip the firing (neuron {n}); eta={eta} is below the "
                    "rounding of u here -- choose a larger eta"
                )
            eps_back = mp_sub(up, u, neuron)  # Algorithm 2
            d_mp = math.sqrt(sum(e * e for e in eps_back))  # d_MP = ||u_p (-) u||_2
            rows.append([e / d_mp for e in eps_back])  # unit vector o_p
            if output == "psc":
                ap = psc(sp, tau_s)
                dL = sum(X[t] * (ap[t] - a[t]) for t in range(T))  # eq. 13
            else:
                dL = sum(gn[t] * (sp[t] - s[t]) for t in range(T))
            scale = min(max(1.0 / d_mp**dist_power, -clip), clip)  # eq. 17 (eq. 14 for k = 1), clipped
            fd.append(dL * scale)
        units = torch.tensor(rows, dtype=torch.float64)  # the unit vectors o_p (eq. 15)
        fvec = torch.tensor(fd, dtype=torch.float64)
        result[:, n] = (torch.linalg.pinv(units) @ fvec) * neuron.beta  # eq. 15; grad_c = beta grad_u
    return result.reshape(c.shape).to(c.dtype)
