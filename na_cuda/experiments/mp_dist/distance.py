"""Exact MP-dist to every pattern's key neighbour (segment costs, bounded QP).

Part of the MP-distance experiment (``na_cuda.experiments.mp_dist``; see its docstring). See docs/results.md."""

from __future__ import annotations

import torch

from .constants import MAX_T


# ----------------------------------------------------------------------------------------------------------------
# Exact MP-dist to every pattern's key neighbour.
# ----------------------------------------------------------------------------------------------------------------
class SegmentTable:
    """The segment problems of ``T`` steps and which patterns use them.

    Segment ``j`` is ``(start[j], end[j], spike[j])``: from rest at ``start`` to ``end`` (inclusive), ending with a
    spike at ``end`` (``spike``) or silent up to ``T - 1``. The last index is the empty segment after a spike at
    ``T - 1`` (cost 0). ``incidence[j, code]`` is 1 when pattern ``code`` is made of segment ``j``.
    """

    def __init__(self, T: int) -> None:
        if isinstance(T, bool) or not isinstance(T, int) or not 1 <= T <= MAX_T:
            raise ValueError(f"na_cuda.experiments.mp_dist: `T` must be an int in [1, {MAX_T}]; got {T!r}")
        self.T = T
        segs = [(r, e, True) for r in range(T) for e in range(r, T)] + [(r, T - 1, False) for r in range(T)]
        self.start = torch.tensor([r for r, _, _ in segs], dtype=torch.int64)
        self.end = torch.tensor([e for _, e, _ in segs], dtype=torch.int64)
        self.spike = torch.tensor([sp for _, _, sp in segs], dtype=torch.bool)
        self.n_problems = len(segs)
        index = {seg: j for j, seg in enumerate(segs)}
        empty = len(segs)
        incidence = torch.zeros(len(segs) + 1, 2**T, dtype=torch.float64)
        for code in range(2**T):
            r = 0
            for t in range(T):
                if (code >> (T - 1 - t)) & 1:
                    incidence[index[(r, t, True)], code] = 1.0
                    r = t + 1
            incidence[index[(r, T - 1, False)] if r < T else empty, code] = 1.0
        self.incidence = incidence


def _tridiag_solve(active: torch.Tensor, b: torch.Tensor, diag: torch.Tensor, off: torch.Tensor) -> torch.Tensor:
    """Solve, per column of the batch, ``y[i] = b[i]`` where ``active`` and ``(H y)[i] = 0`` elsewhere, ``H`` the
    symmetric tridiagonal matrix with ``diag`` and ``off[i] = H[i, i+1]`` (Thomas algorithm, no pivoting: the
    rows of ``H`` are strictly diagonally dominant, so every pivot is >= 1 - lam > 0).

    Shapes ``[n, M]`` (step first, so that each step of the recurrence reads contiguous rows); ``off[n-1]`` is
    unused (zero).
    """
    n = b.shape[0]
    zero = torch.zeros((), dtype=b.dtype, device=b.device)
    sub = torch.where(active[1:], zero, off[:-1])  # H[i, i-1] of the free rows
    sup = torch.where(active, zero, off)
    d = torch.where(active, torch.ones_like(diag), diag)
    rhs = torch.where(active, b, zero)
    cp = torch.empty_like(b)
    rp = torch.empty_like(b)
    cp[0] = sup[0] / d[0]
    rp[0] = rhs[0] / d[0]
    for i in range(1, n):
        m = d[i] - sub[i - 1] * cp[i - 1]
        cp[i] = sup[i] / m
        rp[i] = (rhs[i] - sub[i - 1] * rp[i - 1]) / m
    y = rp
    for i in range(n - 2, -1, -1):
        y[i] -= cp[i] * y[i + 1]
    return y


def _tridiag_mul(y: torch.Tensor, diag: torch.Tensor, off: torch.Tensor) -> torch.Tensor:
    """``H y`` for the tridiagonal ``H`` of ``_tridiag_solve`` (shapes ``[n, M]``)."""
    hy = diag * y
    hy[:-1] += off[:-1] * y[1:]
    hy[1:] += off[:-1] * y[:-1]
    return hy


def _upper_bounded_qp(
    b: torch.Tensor, bounded: torch.Tensor, fixed: torch.Tensor, diag: torch.Tensor, off: torch.Tensor, max_iter: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """min ``1/2 y^T H y`` s.t. ``y[i] <= b[i]`` where ``bounded``, ``y[i] = b[i]`` where ``fixed`` (H an M-matrix),
    by the primal-dual active-set method: ``A = {i: mu[i] + (y[i] - b[i]) > 0}``, solve with ``y_A = b_A``,
    ``mu = -(H y)`` on ``A``; stops when no active set changes. Shapes ``[n, M]``. Returns ``(y, converged)``
    (``converged`` per problem, ``[M]`` bool)."""
    y = torch.zeros_like(b)
    mu = torch.zeros_like(b)
    prev = None
    for _ in range(max_iter):
        act = fixed | (bounded & (mu + (y - b) > 0))
        if prev is not None and torch.equal(act, prev):
            break
        y = _tridiag_solve(act, b, diag, off)
        mu = torch.where(act & ~fixed, -_tridiag_mul(y, diag, off), 0.0)
        prev = act
    act = fixed | (bounded & (mu + (y - b) > 0))
    converged = (act == prev).all(dim=0) if prev is not None else torch.ones_like(b[0], dtype=torch.bool)
    return y, converged


def segment_costs(
    c: torch.Tensor, table: SegmentTable, tau_m: float, threshold: float, max_iter: int = 50
) -> tuple[torch.Tensor, int]:
    """Squared MP-dist cost of every segment problem for every neuron (see the module docstring).

    ``c``: synaptic inputs ``[K, T]`` (one neuron per row; computed in float64). Returns ``(costs [K, S + 1]``
    (the last column is the empty segment, 0), ``unconverged``: the number of problems whose active set still
    changed after ``max_iter`` steps; their cost is the last iterate's, an upper bound of the minimum if feasible).
    """
    K, T = c.shape
    if T != table.T:
        raise ValueError(f"na_cuda.experiments.mp_dist: `c` has T = {T} steps but the segment table {table.T}")
    c = c.to(torch.float64)
    lam = 1.0 - 1.0 / tau_m
    dev = c.device
    start, end, spike = table.start.to(dev), table.end.to(dev), table.spike.to(dev)
    S = table.n_problems
    i = torch.arange(T, device=dev)[:, None]  # local step of a segment, [T, 1]
    length = (end - start + 1)[None, :]
    valid = i < length  # [T, S]
    last = i == length - 1
    t = (start[None, :] + i).clamp_max(T - 1)  # absolute step, [T, S]
    # Segment-local potential from rest at r: u0(r, t) = P[t] - lam^(t-r+1) P[r-1], P the no-reset integral.
    cT = c.T  # [T, K]
    P = torch.empty_like(cT)
    acc = torch.zeros_like(cT[0])
    for k in range(T):
        acc = lam * acc + cT[k]
        P[k] = acc
    P_before = torch.cat([torch.zeros_like(P[:1]), P[:-1]])  # P[r-1], P[-1] = 0
    decay = lam ** (i + 1).to(torch.float64)  # [T, 1]
    u0 = P[t] - decay[:, :, None] * P_before[start][None, :, :]  # [T, S, K]
    shape = (T, S * K)
    b = torch.where(valid[:, :, None], threshold - u0, 0.0).reshape(shape)

    def spread(x: torch.Tensor) -> torch.Tensor:  # [T, S] -> [T, S * K]
        return x[:, :, None].expand(T, S, K).reshape(shape)

    # H = D^T D, D = bidiagonal (1, -lam): diag 1 + lam^2, 1 at the segment's last step; padding decoupled.
    diag = spread(torch.where(valid & ~last, 1.0 + lam * lam, 1.0).to(torch.float64))
    off = spread(torch.where(valid & ~last, -lam, 0.0).to(torch.float64))
    spike_at = last & spike[None, :]  # the single lower bound y[e] >= b[e]
    silent = spread(valid & ~spike_at)  # upper bounds y <= b (no spike there)
    spike_at = spread(spike_at)
    # Relaxed problem (lower bound dropped) and the one with it active, both upper-bounded only.
    y_rel, ok_rel = _upper_bounded_qp(b, silent, torch.zeros_like(silent), diag, off, max_iter)
    y_fix, ok_fix = _upper_bounded_qp(b, silent, spike_at, diag, off, max_iter)
    rel_ok = ~(spike_at & (y_rel < b)).any(dim=0)  # relaxed optimum satisfies y[e] >= b[e]
    y = torch.where(rel_ok, y_rel, y_fix)
    converged = torch.where(rel_ok, ok_rel, ok_rel & ok_fix)
    valid_m = spread(valid)
    y = torch.where(valid_m, y, 0.0)
    eps = torch.where(valid_m, y - lam * torch.cat([torch.zeros_like(y[:1]), y[:-1]]), 0.0)
    costs = (eps * eps).sum(dim=0).reshape(S, K).T  # [K, S]
    costs = torch.cat([costs, torch.zeros_like(costs[:, :1])], dim=1)
    return costs, int((~converged).sum())


def key_neighbour_sq_distances(
    c: torch.Tensor, table: SegmentTable, tau_m: float, threshold: float
) -> tuple[torch.Tensor, int]:
    """``d_MP(u, s')^2`` from each neuron's potential ``u = f(c)`` (``c`` ``[K, T]``) to the key neighbour of every
    pattern ``s'``: ``[K, 2^T]`` float64, and the number of unconverged segment problems (see ``segment_costs``)."""
    costs, bad = segment_costs(c, table, tau_m, threshold)
    return costs @ table.incidence.to(costs.device), bad
