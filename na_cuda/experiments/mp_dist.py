"""MP-distance quality evaluation of the NA paper (Yang, Zhang & Li, ICML 2021, section 4.1, Figure 5).

The paper's MNIST network (15C5-P2-40C5-P2-300-10, the network of its Table 2) is trained with TSSL-BP at
T = 10 for 100 iterations; at every iteration the SAME input batch goes through the network before and after the
optimiser step and every neuron's spike train (hidden and output layers, every sample) is recorded both times.
Each (before, after) pair is one transfer between spike-train patterns, indexed by their binary code with the
first time step as the most significant bit (``[1]*10 -> 1023``, ``[0,0,0,0,0,0,0,1,0,1] -> 5``). Run::

    python -m na_cuda.experiments.mp_dist --out DIR [--data-dir D] [--iterations 100] [--T 10] [--seed 0]
                                          [--batch-size 64] [--sample 2048] [--lr 5e-4] [--device cpu|cuda]
                                          [--no-progress]

Writes ``DIR/mp_dist.json`` and ``DIR/mp_dist.png``:

- (a) the transfer-count matrix (y: pattern before, x: pattern after), diagonal (unchanged trains) set to zero
  and a log colour scale, as in the paper's Figure 5(a);
- (b) the CDF of the rank of each changed train's destination among all ``2^T - 1`` other patterns, ordered by
  MP-dist from the neuron's membrane potential before the step (Figure 5(b); the paper: 63 % at rank 1), next to
  the same CDF with the patterns ordered by Hamming distance from the train before the step (ties, e.g. the 10
  trains at Hamming distance 1, are broken uniformly at random: the expected CDF is drawn);
- (c) the transfers by Hamming distance and (d) by the MP-dist of the destination.

MP-dist (sec. 3.3). ``u = f(c)`` is the pre-reset membrane potential a neuron integrates from its synaptic input
``c`` (eq. 1-4, hard reset to 0). Algorithm 2 gives ``u' ⊟ u = eps`` with ``eps[t] = u'[t] - (lam v'[t-1] + c[t])``,
``v'`` the post-reset potential of ``u'``: the input perturbation that turns ``u`` into ``u'`` (``u' = u ⊞ eps =
f(c + eps)``, Algorithm 1), and ``d_MP(u, u') = ||u' ⊟ u||_2``. The distance from ``u`` to a spike-train pattern
``s'`` is the distance to its *key neighbour* (sec. 3.2: the closest waveform of the region of ``s'``)::

    d_MP(u, s')^2 = min ||eps||_2^2  over eps with  spikes(f(c + eps)) = s'.

With SNS (sec. 3.4-3.5.1) NA uses the N_t neighbours reached by a single-step perturbation, at distance
``|threshold - u[p]|``; the key neighbour of the same region is at most that far (a spread perturbation can be
shorter). The minimum is computed exactly:

- ``s'`` fixes every reset, so its potential splits into independent segments between its spikes: a segment
  ``[r, e]`` starts from rest after the spike at ``r - 1`` (or at t = 0) and ends with the spike at ``e`` (or at
  ``T - 1`` without one). The squared distance is the sum of the segments' costs, and a segment's cost depends on
  ``(r, e, spike at e)`` only: ``T (T + 1) / 2 + T`` segment problems per neuron give the distances to all
  ``2^T`` patterns (one matrix product with the pattern/segment incidence matrix).
- In a segment, with ``y[t] = u'[t] - u0[t]`` (``u0`` the segment's unperturbed potential from rest at ``r``),
  ``eps[t] = y[t] - lam y[t-1]`` (``y[r-1] = 0``) and the firing conditions are bounds: ``y[t] <= threshold -
  u0[t]`` where ``s'`` is silent, ``y[e] >= threshold - u0[e]`` at its spike (the infimum over the open region).
  Minimising ``||eps||^2`` is a box-constrained QP with the tridiagonal Hessian ``D^T D`` (an M-matrix). With the
  single lower bound dropped, or held active, only upper bounds remain and the primal-dual active-set method
  (Hintermüller, Ito & Kunisch 2002) solves it exactly in a few steps; the relaxed solution is the answer when it
  satisfies the dropped bound, else the one with the bound active is (convexity).

The transfer matrix and the Hamming distances count every train. The exact distances cost about a millisecond
per changed train on a CPU and a TSSL-BP step changes several percent of the 11,510 x 64 trains of a batch, so the
MP-dist statistics use a uniform random sample of at most ``--sample`` (2048) changed trains per iteration
(200,000 over the run: a fraction's standard error is below 0.2 points); the Hamming CDF drawn next to the MP-dist
one is that of the same sample.

Statistics (``summary`` in the JSON): the fraction of changed trains whose destination is the MP-nearest
pattern (``frac_mp_rank1``, the paper's 63 %), within the 10 MP-nearest (``frac_mp_top10``, the size of the
Hamming-distance-1 shell), and at Hamming distance 1 (``frac_hamming1``), the expected fraction at Hamming rank 1
under random tie-breaking (``frac_hamming_rank1``), the fraction of changed trains that moved to one of the neuron's
N_t SNS neighbours (the patterns NA's gradient considers; ``frac_sns_neighbour``) and to the SNS neighbour with
the smallest ``|threshold - u[p]|`` (``frac_sns_nearest``), and the same per layer.

Choices (the paper gives only "trained by TSSL-BP on MNIST, 100 iterations, N_T = 10"): the ``mnist`` preset of
``na_cuda.train`` (AdamW lr 5e-4, betas (0, 0.999), batch 64, van Rossum loss with the all-ones desired train,
gradient-norm clip 1, weight clamp [-4, 4], the preset's augmentation) with ``method="tssl"`` and ``T = 10``; the
batch of an iteration is augmented once and the same tensor is fed before and after the step. Spikes are
recovered from each LIF module's PSC output (``s[t] = tau_s (a[t] - kappa a[t-1])``, eq. 3) by forward hooks.
Memory stays bounded: per iteration only the codes of the current batch and the inputs ``c`` of the changed
neurons are kept; everything else is accumulated into counts.

Measured (seed 0, CPU, ``docs/results/mp_dist/``): with the preset's lr 5e-4, 6.4 % of the 73.7 M recorded trains
change per step and 36.1 % of the changed ones move to the MP-nearest pattern (80.5 % to one of the 10 MP-nearest;
30.2 % to a train at Hamming distance 1, the same 10-pattern shell); with the released code's lr 1e-5 (``--lr
1e-5``), 0.8 % change and 77.7 % move to the MP-nearest pattern (99.4 % within 10; Hamming distance 1: 40.2 %).
The paper's 63 % lies between the two: the fraction depends on the step size, which the paper does not state.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from typing import Any, Optional, Sequence

import torch
from torch import nn

from na_cuda import reference, train
from na_cuda.nn import LIF
from na_cuda.train import device_arg, nonneg_int, positive_float, positive_int

PAPER_RANK1 = 0.63  # sec. 4.1: transfers into the top-1 nearest region by MP-dist
DEFAULTS = dict(iterations=100, T=10, seed=0, batch_size=64, sample=2048)
MAX_T = 14  # the transfer matrix has 4^T entries (T = 14: 268 M int64 = 2 GiB)
_CHUNK = 2048  # neurons per batched key-neighbour solve ([chunk, segments, T] float64 work arrays)
_LOG_BINS = (-6.0, 1.5, 75)  # log10 d_MP histogram: lowest edge, highest edge, number of bins


# ----------------------------------------------------------------------------------------------------------------
# Spike-train patterns.
# ----------------------------------------------------------------------------------------------------------------
def spikes_from_psc(a: torch.Tensor, tau_s: float) -> torch.Tensor:
    """Spikes ``[T, ...]`` (0/1, int64) of a PSC train ``a`` (eq. 3: ``a[t] = kappa a[t-1] + s[t] / tau_s``)."""
    kappa = 1.0 - 1.0 / tau_s
    prev = torch.cat([torch.zeros_like(a[:1]), a[:-1]])
    return torch.round(tau_s * (a - kappa * prev)).to(torch.int64)


def pattern_codes(s: torch.Tensor) -> torch.Tensor:
    """Binary code of every spike train of ``s`` ``[T, N]`` (0/1), the first time step as the most significant
    bit (the paper's indexing); int64 ``[N]``."""
    T = s.shape[0]
    weights = 2 ** torch.arange(T - 1, -1, -1, device=s.device, dtype=torch.int64)
    return (s.to(torch.int64) * weights[:, None]).sum(dim=0)


def code_bits(codes: torch.Tensor, T: int) -> torch.Tensor:
    """Inverse of ``pattern_codes``: ``[T, N]`` 0/1 int64."""
    shifts = torch.arange(T - 1, -1, -1, device=codes.device, dtype=torch.int64)
    return (codes[None, :] >> shifts[:, None]) & 1


def popcount(x: torch.Tensor, T: int) -> torch.Tensor:
    """Number of set bits of the ``T``-bit codes ``x`` (the Hamming distance of two codes is popcount(a ^ b))."""
    return code_bits(x, T).sum(dim=0)


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


# ----------------------------------------------------------------------------------------------------------------
# Recording spike trains and accumulating transfer statistics.
# ----------------------------------------------------------------------------------------------------------------
class SpikeRecorder:
    """Forward hooks on every ``na_cuda.nn.LIF`` of a network: on each forward, per LIF layer, the pattern code of
    every neuron's spike train (``[B * neurons]``) and, when ``keep_inputs``, its input ``c`` (``[T, B *
    neurons]``, detached, not copied)."""

    def __init__(self, net: nn.Module) -> None:
        self.net = net
        self.layers = [(name, m) for name, m in net.named_modules() if isinstance(m, LIF)]
        if not self.layers:
            raise ValueError("na_cuda.experiments.mp_dist: the network has no na_cuda.nn.LIF module to record")
        self.keep_inputs = False
        self.codes: list[torch.Tensor] = []
        self.inputs: list[torch.Tensor] = []
        self._handles = [m.register_forward_hook(self._hook) for _, m in self.layers]

    @property
    def names(self) -> list[str]:
        """One name per LIF layer: the ``SpikingNet.shapes`` label (e.g. ``"15C5 p0 + LIF"``) where the network
        has them, else the module's name."""
        labels = [name for name, _ in getattr(self.net, "shapes", []) if name.endswith("+ LIF")]
        return labels if len(labels) == len(self.layers) else [name for name, _ in self.layers]

    def start(self, keep_inputs: bool) -> None:
        self.keep_inputs = keep_inputs
        self.codes, self.inputs = [], []

    def _hook(self, module: LIF, args: tuple, output: torch.Tensor) -> None:
        T = output.shape[0]
        s = spikes_from_psc(output.detach().reshape(T, -1), module.params["tau_s"])
        self.codes.append(pattern_codes(s))
        if self.keep_inputs:
            self.inputs.append(args[0].detach().reshape(T, -1))

    def remove(self) -> None:
        for h in self._handles:
            h.remove()


class TransferStats:
    """Counts accumulated over iterations. Over every train: the transfer matrix and the Hamming distances of the
    changed trains. Over a uniform random sample of at most ``sample`` changed trains per iteration (the exact
    key-neighbour distances cost about a millisecond per train on a CPU): the rank of the destination by MP-dist,
    its MP-dist, and SNS membership. Overall and per layer."""

    def __init__(
        self,
        T: int,
        layer_names: Sequence[str],
        tau_m: float,
        tau_s: float,
        threshold: float,
        device: torch.device,
        sample: int,
        seed: int = 0,
        strict_threshold: bool = False,
    ) -> None:
        if isinstance(sample, bool) or not isinstance(sample, int) or sample < 1:
            raise ValueError(f"na_cuda.experiments.mp_dist: --sample must be an int >= 1; got {sample!r}")
        self.T, self.P = T, 2**T
        self.tau_m, self.tau_s, self.threshold = tau_m, tau_s, threshold
        self.strict = strict_threshold  # the firing test of the SNS neighbours; the infimum distances are the same
        self.table = SegmentTable(T)
        self.names = list(layer_names)
        self.device = device
        self.sample = sample
        self.gen = torch.Generator().manual_seed(seed)
        self.matrix = torch.zeros(self.P * self.P, dtype=torch.int64, device=device)
        lo, hi, n = _LOG_BINS
        self.log_edges = torch.linspace(lo, hi, n + 1, dtype=torch.float64)
        z = lambda n: torch.zeros(n, dtype=torch.int64, device=device)  # noqa: E731
        self.hamming = z(T + 1)  # all changed trains
        self.sample_hamming = z(T + 1)  # the sampled ones
        self.mp_rank = z(self.P)  # mp_rank[k]: sampled transfers whose destination had MP rank k (1 .. P-1)
        self.mp_hist = z(n + 2)  # [underflow, bins..., overflow]
        self.layer = {
            name: dict(
                neurons=0,
                trains=0,
                changed=0,
                hamming1=0,
                sampled=0,
                mp_rank1=0,
                mp_top10=0,
                sns_neighbour=0,
                sns_nearest=0,
            )
            for name in self.names
        }
        self.unconverged = 0
        self.per_iteration: list[dict[str, int]] = []

    def update(
        self, before: Sequence[torch.Tensor], after: Sequence[torch.Tensor], inputs: Sequence[torch.Tensor], batch: int
    ) -> None:
        """Add one iteration: per layer the codes before/after (``[N]``) and the inputs before (``[T, N]``)."""
        if not (len(before) == len(after) == len(inputs) == len(self.names)):
            raise ValueError(
                f"na_cuda.experiments.mp_dist: expected {len(self.names)} layers before/after/inputs; got "
                f"{len(before)}, {len(after)}, {len(inputs)}"
            )
        it = dict(trains=0, changed=0, sampled=0, mp_rank1=0)
        changed_idx = []
        for name, s0, s1 in zip(self.names, before, after):
            self.matrix += torch.bincount(s0 * self.P + s1, minlength=self.P * self.P)
            idx = (s0 != s1).nonzero().squeeze(1)
            ham = popcount(s0[idx] ^ s1[idx], self.T)
            self.hamming += torch.bincount(ham, minlength=self.T + 1)
            rec = self.layer[name]
            rec["neurons"] = s0.numel() // batch
            rec["trains"] += s0.numel()
            rec["changed"] += idx.numel()
            rec["hamming1"] += int((ham == 1).sum())
            it["trains"] += s0.numel()
            it["changed"] += idx.numel()
            changed_idx.append(idx)
        # One uniform sample over the changed trains of all layers.
        sizes = [int(i.numel()) for i in changed_idx]
        total = sum(sizes)
        pick = torch.randperm(total, generator=self.gen)[: self.sample].sort().values.to(self.device)
        offset = 0
        for name, s0, s1, c, idx, n in zip(self.names, before, after, inputs, changed_idx, sizes):
            mine = idx[pick[(pick >= offset) & (pick < offset + n)] - offset]
            offset += n
            rec = self.layer[name]
            rec["sampled"] += mine.numel()
            it["sampled"] += mine.numel()
            for part in mine.split(_CHUNK):
                got = self._sampled(s0[part], s1[part], c[:, part].T)
                for key in ("mp_rank1", "mp_top10", "sns_neighbour", "sns_nearest"):
                    rec[key] += got[key]
                it["mp_rank1"] += got["mp_rank1"]
        self.per_iteration.append(it)

    def _sampled(self, s0: torch.Tensor, s1: torch.Tensor, c: torch.Tensor) -> dict[str, int]:
        """Statistics of sampled changed trains: codes before ``s0``, after ``s1`` (``[K]``), inputs ``c``
        ``[K, T]``."""
        d2, bad = key_neighbour_sq_distances(c, self.table, self.tau_m, self.threshold)
        self.unconverged += bad
        rows = torch.arange(d2.shape[0], device=d2.device)
        dest = d2[rows, s1]
        closer = d2 < dest[:, None]
        closer[rows, s0] = False  # the train's own pattern (distance 0) is not a destination
        rank = closer.sum(dim=1) + 1
        self.mp_rank += torch.bincount(rank, minlength=self.P)[: self.P]
        ham = popcount(s0 ^ s1, self.T)
        self.sample_hamming += torch.bincount(ham, minlength=self.T + 1)
        lo, hi, n = _LOG_BINS
        logd = torch.log10(dest.sqrt().clamp_min(1e-300))
        pos = torch.floor((logd - lo) / (hi - lo) * n).to(torch.int64).clamp(-1, n) + 1
        self.mp_hist += torch.bincount(pos, minlength=n + 2)
        # The N_t SNS neighbours (the patterns NA's gradient compares with) and the nearest one, |threshold - u[p]|.
        cT = c.T.to(torch.float64)
        u, _, _ = reference.lif_states(cT, self.tau_m, self.tau_s, self.threshold, self.strict)
        sns = reference.sns_neighbour_spikes(cT, self.tau_m, self.tau_s, self.threshold, self.strict)  # [p, T, K]
        sns_codes = torch.stack([pattern_codes(sns[p]) for p in range(self.T)])  # [p, K]
        nearest = (self.threshold - u).abs().argmin(dim=0)
        hit = sns_codes == s1[None, :]
        return dict(
            mp_rank1=int((rank == 1).sum()),
            mp_top10=int((rank <= 10).sum()),
            sns_neighbour=int(hit.any(dim=0).sum()),
            sns_nearest=int(hit[nearest, rows].sum()),
        )

    def summary(self) -> dict[str, Any]:
        """JSON-ready counts and statistics."""
        P, T = self.P, self.T
        mat = self.matrix.cpu().reshape(P, P)
        diag = mat.diagonal().clone()
        off = mat.clone()
        off.fill_diagonal_(0)
        nz = off.nonzero()
        total = int(mat.sum())
        changed = int(off.sum())
        mp_rank = self.mp_rank.cpu().tolist()
        sampled = sum(mp_rank)
        ham = self.hamming.cpu().tolist()
        sham = self.sample_hamming.cpu().tolist()
        cdf_mp = torch.tensor(mp_rank[1:], dtype=torch.float64).cumsum(0) / max(sampled, 1)
        cdf_ham = hamming_rank_cdf(sham, T) / max(sampled, 1)

        def frac(n: float, d: int) -> Optional[float]:
            return n / d if d else None

        layers = {}
        for name, rec in self.layer.items():
            ch, sa = rec["changed"], rec["sampled"]
            layers[name] = dict(
                rec,
                frac_changed=frac(ch, rec["trains"]),
                frac_hamming1=frac(rec["hamming1"], ch),
                frac_mp_rank1=frac(rec["mp_rank1"], sa),
                frac_mp_top10=frac(rec["mp_top10"], sa),
                frac_sns_neighbour=frac(rec["sns_neighbour"], sa),
                frac_sns_nearest=frac(rec["sns_nearest"], sa),
            )
        return {
            "summary": {
                "transfers_total": total,
                "transfers_changed": changed,
                "frac_changed": frac(changed, total),
                "sampled_changed": sampled,
                "frac_mp_rank1": frac(mp_rank[1], sampled),
                "frac_mp_top10": frac(sum(mp_rank[1:11]), sampled),
                "median_mp_rank": _median_rank(mp_rank),
                "frac_hamming1": frac(ham[1], changed),
                "frac_hamming_rank1": frac(ham[1] / T, changed),
                "sample_frac_hamming1": frac(sham[1], sampled),
                "frac_sns_neighbour": frac(sum(r["sns_neighbour"] for r in self.layer.values()), sampled),
                "frac_sns_nearest": frac(sum(r["sns_nearest"] for r in self.layer.values()), sampled),
                "paper_frac_mp_rank1": PAPER_RANK1,
                "unconverged_segment_problems": self.unconverged,
            },
            "layers": layers,
            "mp_rank_counts": mp_rank,  # index k: sampled transfers to the k-th MP-nearest pattern (index 0 unused)
            "mp_rank_cdf": cdf_mp.tolist(),  # entry k-1: fraction of the sample with rank <= k
            "hamming_counts": ham,  # index d: all changed trains at Hamming distance d
            "sample_hamming_counts": sham,  # the same for the sample
            "hamming_rank_cdf": cdf_ham.tolist(),  # expected CDF of the sample's Hamming rank, ties broken at random
            "mp_dist_hist": {
                "log10_edges": self.log_edges.tolist(),
                "counts": self.mp_hist.cpu().tolist(),
                "note": "sampled transfers; counts[0] below the first edge, counts[-1] above the last",
            },
            "unchanged_counts": [[int(i), int(diag[i])] for i in diag.nonzero().squeeze(1).tolist()],
            "transfer_counts": [[int(a), int(b), int(off[a, b])] for a, b in nz.tolist()],
            "per_iteration": self.per_iteration,
        }


def hamming_rank_cdf(hamming_counts: Sequence[int], T: int) -> torch.Tensor:
    """Expected number of transfers with Hamming rank <= k, k = 1 .. 2^T - 1: the C(T, d) patterns at distance d
    share the ranks after those of distances < d, each equally likely (random tie-breaking)."""
    P = 2**T
    k = torch.arange(1, P, dtype=torch.float64)
    out = torch.zeros(P - 1, dtype=torch.float64)
    first = 1
    for d in range(1, T + 1):
        size = math.comb(T, d)
        out += hamming_counts[d] * ((k - first + 1) / size).clamp(0, 1)
        first += size
    return out


def _median_rank(rank_counts: Sequence[int]) -> Optional[int]:
    total = sum(rank_counts)
    if total == 0:
        return None
    acc = 0
    for k, n in enumerate(rank_counts):
        acc += n
        if 2 * acc >= total:
            return k
    return None


# ----------------------------------------------------------------------------------------------------------------
# Figure.
# ----------------------------------------------------------------------------------------------------------------
def plot(result: dict, path: str) -> None:
    """Figure 5 of the paper: (a) transfer matrix, (b) CDF of the destination's rank (MP-dist vs Hamming), and the
    transfers by (c) Hamming distance and (d) MP-dist."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    cfg, s = result["config"], result["summary"]
    T = cfg["T"]
    P = 2**T
    mat = torch.zeros(P, P)
    for a, b, n in result["transfer_counts"]:
        mat[a, b] = n
    fig, axes = plt.subplots(2, 2, figsize=(15, 13))
    ax = axes[0, 0]
    shown = mat.masked_fill(mat == 0, float("nan")).numpy()
    im = ax.imshow(
        shown,
        cmap="viridis",
        norm=LogNorm(vmin=1, vmax=max(float(mat.max()), 2.0)),
        interpolation="nearest",
        origin="upper",
    )
    fig.colorbar(im, ax=ax, fraction=0.046, label="transfers (log scale)")
    ax.set(
        xlabel="spike train after the iteration (code)",
        ylabel="spike train before (code)",
        title=f"(a) transfer counts, diagonal set to 0 ({s['transfers_changed']:,} changed trains)",
    )
    ax = axes[0, 1]
    ranks = range(1, P)
    ax.plot(
        ranks,
        result["mp_rank_cdf"],
        color="tab:red",
        label=f"MP-dist (rank 1: {s['frac_mp_rank1']:.1%})" if s["frac_mp_rank1"] is not None else "MP-dist",
    )
    ax.plot(
        ranks,
        result["hamming_rank_cdf"],
        color="tab:blue",
        label="Hamming, ties at random"
        + (
            f" (rank 1: {s['sample_frac_hamming1'] / T:.1%}, distance 1: {s['sample_frac_hamming1']:.1%})"
            if s["sample_frac_hamming1"] is not None
            else ""
        ),
    )
    ax.axhline(PAPER_RANK1, color="gray", ls=":", label=f"paper: {PAPER_RANK1:.0%} at MP rank 1")
    ax.set_xscale("log")
    ax.set(
        xlim=(1, P - 1),
        ylim=(0, 1.02),
        xlabel=f"rank of the destination among the {P - 1} other patterns",
        ylabel="cumulative fraction of changed trains",
        title=f"(b) CDF of the destination's distance rank ({s['sampled_changed']:,} sampled trains)",
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax = axes[1, 0]
    ham = result["hamming_counts"]
    ax.bar(range(1, T + 1), ham[1:], color="tab:blue")
    ax.set_yscale("log")
    ax.set(
        xlabel="Hamming distance between the trains before and after",
        ylabel="transfers",
        title="(c) changed trains by Hamming distance (all)",
        xticks=range(1, T + 1),
    )
    ax = axes[1, 1]
    h = result["mp_dist_hist"]
    edges = h["log10_edges"]
    centers = [10 ** ((a + b) / 2) for a, b in zip(edges[:-1], edges[1:])]
    widths = [10**b - 10**a for a, b in zip(edges[:-1], edges[1:])]
    ax.bar(centers, h["counts"][1:-1], width=widths, color="tab:red")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set(
        xlabel="MP-dist from u before the step to the destination's key neighbour",
        ylabel="transfers",
        title="(d) sampled changed trains by MP-dist",
    )
    fig.suptitle(
        f"MP-dist quality (NA paper sec. 4.1, Fig. 5): {cfg['arch']}, TSSL-BP, T = {T}, "
        f"{cfg['iterations']} iterations x batch {cfg['batch_size']}, lr {cfg['lr']:g}, {cfg['dataset']}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ----------------------------------------------------------------------------------------------------------------
# Experiment.
# ----------------------------------------------------------------------------------------------------------------
def run_experiment(
    out: Optional[str] = "runs/mp_dist",
    *,
    iterations: int = DEFAULTS["iterations"],
    T: int = DEFAULTS["T"],
    seed: int = DEFAULTS["seed"],
    batch_size: int = DEFAULTS["batch_size"],
    sample: int = DEFAULTS["sample"],
    lr: Optional[float] = None,
    data_dir: Optional[str] = None,
    device: Optional[str] = None,
    progress: bool = True,
    plot_figure: bool = True,
) -> dict:
    """Train the MNIST network with TSSL-BP for ``iterations`` steps, counting spike-train transfers; writes
    ``out/mp_dist.json`` (and ``.png``) when ``out`` is given; returns the dict written to the JSON."""
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"na_cuda.experiments.mp_dist: --iterations must be an int >= 1; got {iterations!r}")
    if isinstance(T, bool) or not isinstance(T, int) or not 1 <= T <= MAX_T:
        raise ValueError(
            f"na_cuda.experiments.mp_dist: --T must be an int in [1, {MAX_T}] (the transfer matrix has "
            f"4^T entries); got {T!r}"
        )
    overrides = {} if lr is None else {"lr": lr}
    cfg = train.make_config(
        "mnist",
        method="tssl",
        T=T,
        seed=seed,
        batch_size=batch_size,
        data_dir=data_dir,
        device=device,
        out=out or "runs/mp_dist",
        progress=progress,
        **overrides,
    )
    run = train.setup(cfg)  # the training recipe: data, model, optimiser, input encoding
    net = run.net
    recorder = SpikeRecorder(net)
    stats = TransferStats(
        T, recorder.names, cfg.tau_m, cfg.tau_s, cfg.threshold, run.device, sample, seed, cfg.strict_threshold
    )
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=iterations, desc="mp_dist", unit="it")
    start = time.perf_counter()
    losses: list[float] = []
    done, epoch = 0, 0
    net.train()
    try:
        while done < iterations:
            for batch in run.batches(epoch):
                if done == iterations:
                    break
                x, y = run.train_ds.batch(run.train_index[batch], run.device)
                inp = run.prepare(x, train=True)  # augmented once: the same tensor before and after the step
                recorder.start(keep_inputs=True)
                out_psc = net(inp)
                before, inputs = recorder.codes, recorder.inputs
                loss = train.loss_sum(cfg, out_psc, y)  # summed over the batch (the preset's reduction)
                run.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(run.params, cfg.grad_clip)
                run.optimizer.step()
                net.clamp_weights_(cfg.weight_clip)
                with torch.no_grad():
                    recorder.start(keep_inputs=False)
                    net(inp)
                stats.update(before, recorder.codes, inputs, batch=int(y.numel()))
                losses.append(float(loss.detach()) / y.numel())
                done += 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{losses[-1]:.3f}", changed=stats.per_iteration[-1]["changed"])
            epoch += 1
    finally:
        recorder.remove()
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - start
    config = {
        "dataset": cfg.dataset,
        "arch": cfg.arch,
        "method": cfg.method,
        "T": T,
        "iterations": iterations,
        "batch_size": cfg.batch_size,
        "sample_per_iteration": sample,
        "seed": seed,
        "lr": cfg.lr,
        "loss": cfg.loss,
        "target": cfg.target,
        "augment": cfg.augment,
        "fidelity": cfg.fidelity,
        "strict_threshold": cfg.strict_threshold,
        "tau_m": cfg.tau_m,
        "tau_s": cfg.tau_s,
        "threshold": cfg.threshold,
        "device": str(run.device),
        "torch": torch.__version__,
        "layers": recorder.names,
        "neurons_per_sample": sum(r["neurons"] for r in stats.layer.values()),
        "elapsed_s": seconds,
    }
    result = {"config": config, **stats.summary(), "train_loss_per_sample": losses}
    if out is not None:
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "mp_dist.json"), "w") as f:
            json.dump(result, f)
        if plot_figure:
            plot(result, os.path.join(out, "mp_dist.png"))
    return result


def format_summary(result: dict) -> str:
    """The headline numbers next to the paper's claim."""
    s, cfg = result["summary"], result["config"]

    def pct(v: Optional[float]) -> str:
        return "n/a" if v is None else f"{v:.1%}"

    lines = [
        f"MP-dist quality (NA paper 4.1, Fig. 5): {cfg['arch']} on {cfg['dataset']}, TSSL-BP, T = {cfg['T']}, "
        f"{cfg['iterations']} iterations x batch {cfg['batch_size']}, lr {cfg['lr']:g} ({cfg['elapsed_s']:.0f} s)",
        f"  trains recorded: {s['transfers_total']:,}; changed by a step: {s['transfers_changed']:,} "
        f"({pct(s['frac_changed'])}); MP-dist ranks of a uniform sample of {s['sampled_changed']:,}",
        f"  destination = MP-nearest pattern (rank 1):   {pct(s['frac_mp_rank1'])}   (paper: {PAPER_RANK1:.0%})",
        f"  destination among the 10 MP-nearest:         {pct(s['frac_mp_top10'])}",
        f"  destination at Hamming distance 1 (10 trains): {pct(s['frac_hamming1'])}; Hamming rank 1 (ties at "
        f"random): {pct(s['frac_hamming_rank1'])}",
        f"  destination is an SNS neighbour: {pct(s['frac_sns_neighbour'])}; the nearest SNS neighbour: "
        f"{pct(s['frac_sns_nearest'])}; median MP rank: {s['median_mp_rank']}",
    ]
    for name, rec in result["layers"].items():
        lines.append(
            f"  layer {name:>16}: {rec['neurons']:>6} neurons, changed {pct(rec['frac_changed'])}, MP rank 1 "
            f"{pct(rec['frac_mp_rank1'])}, MP top 10 {pct(rec['frac_mp_top10'])}, Hamming 1 "
            f"{pct(rec['frac_hamming1'])}, SNS neighbour {pct(rec['frac_sns_neighbour'])}"
        )
    if s["unconverged_segment_problems"]:
        lines.append(f"  WARNING: {s['unconverged_segment_problems']} segment problems did not converge")
    return "\n".join(lines)


def main(argv: Optional[list] = None) -> dict:
    ap = argparse.ArgumentParser(
        prog="python -m na_cuda.experiments.mp_dist",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawTextHelpFormatter,
    )
    ap.add_argument("--out", default="runs/mp_dist", help="output folder (default runs/mp_dist)")
    ap.add_argument("--data-dir", default=None, help="MNIST directory (default: $NA_CUDA_DATA or ~/.cache/na_cuda)")
    ap.add_argument("--iterations", type=positive_int, default=DEFAULTS["iterations"])
    ap.add_argument("--T", type=positive_int, default=DEFAULTS["T"], help="time steps (patterns: 2^T)")
    ap.add_argument("--seed", type=nonneg_int, default=DEFAULTS["seed"])
    ap.add_argument("--batch-size", type=positive_int, default=DEFAULTS["batch_size"])
    ap.add_argument(
        "--sample",
        type=positive_int,
        default=DEFAULTS["sample"],
        help="changed trains per iteration whose MP-dist ranks are computed (uniform sample)",
    )
    ap.add_argument(
        "--lr",
        type=positive_float,
        default=None,
        help="learning rate (default: the mnist preset's 5e-4; the released code hard-codes 1e-5)",
    )
    ap.add_argument("--device", type=device_arg, default=None, help="cpu or cuda (default: cuda if available)")
    ap.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    args = ap.parse_args(argv)
    if args.T > MAX_T:
        ap.error(f"--T: at most {MAX_T} (the transfer matrix has 4^T entries); got {args.T}")
    result = run_experiment(
        args.out,
        iterations=args.iterations,
        T=args.T,
        seed=args.seed,
        batch_size=args.batch_size,
        sample=args.sample,
        lr=args.lr,
        data_dir=args.data_dir,
        device=args.device,
        progress=not args.no_progress,
    )
    print(format_summary(result))
    print(f"wrote {os.path.join(args.out, 'mp_dist.json')} and mp_dist.png")
    return result


if __name__ == "__main__":
    main()
