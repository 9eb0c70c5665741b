"""Recording spike trains and accumulating transfer statistics (ranks by MP-dist and Hamming).

Part of the MP-distance experiment (``na_cuda.experiments.mp_dist``; see its docstring). See docs/results.md."""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import torch
from torch import nn

from na_cuda import LifParams, reference
from na_cuda.nn import LIF

from .constants import _CHUNK, _LOG_BINS, PAPER_RANK1
from .distance import SegmentTable, key_neighbour_sq_distances
from .patterns import pattern_codes, popcount, spikes_from_psc


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
        neuron = LifParams(tau_m=self.tau_m, tau_s=self.tau_s, threshold=self.threshold, strict_threshold=self.strict)
        u, _, _ = reference.lif_states(cT, neuron)
        sns = reference.sns_neighbour_spikes(cT, neuron)  # [p, T, K]
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
