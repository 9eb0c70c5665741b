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

from .constants import DEFAULTS, MAX_T, PAPER_RANK1
from .distance import SegmentTable, key_neighbour_sq_distances, segment_costs
from .patterns import code_bits, pattern_codes, popcount, spikes_from_psc
from .plot import plot
from .run import format_summary, main, run_experiment
from .stats import SpikeRecorder, TransferStats, hamming_rank_cdf

__all__ = [
    "DEFAULTS",
    "MAX_T",
    "PAPER_RANK1",
    "SegmentTable",
    "SpikeRecorder",
    "TransferStats",
    "code_bits",
    "format_summary",
    "hamming_rank_cdf",
    "key_neighbour_sq_distances",
    "main",
    "pattern_codes",
    "plot",
    "popcount",
    "run_experiment",
    "segment_costs",
    "spikes_from_psc",
]
