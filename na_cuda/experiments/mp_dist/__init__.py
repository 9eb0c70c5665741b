"""MP-distance quality evaluation of the NA paper (Yang, Zhang & Li, ICML 2021, section 4.1, Figure 5).

Trains the paper's MNIST network with TSSL-BP and records, per iteration, every neuron's spike train before and
after the optimiser step; ranks each changed train's destination by its exact MP-dist (sec. 3.2-3.3). Run::

    python -m na_cuda.experiments.mp_dist --out DIR [--data-dir D] [--iterations 100] [--T 10] [--lr 5e-4]

Writes ``DIR/mp_dist.json`` and ``DIR/mp_dist.png``. The method, the choices and the measurements:
docs/results.md, "MP-distance experiment: method".
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
