"""MP-dist quality experiment (NA paper 4.1, Fig. 5): exact key-neighbour distances and the counting pipeline."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from na_cuda import LifParams, reference
from na_cuda.data import idx
from na_cuda.experiments import mp_dist as md

TAU_M, TAU_S, THR = 5.0, 2.0, 1.0
LAM = 1.0 - 1.0 / TAU_M
SAMPLE = 300  # sampled changed trains per iteration in the end-to-end test


def _inputs(K: int, T: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(K, T, generator=g, dtype=torch.float64) * 0.6 + 0.35


def test_codes_follow_the_paper():
    T = 10
    s = torch.zeros(T, 3, dtype=torch.int64)
    s[:, 0] = 1  # [1]*10 -> 1023
    s[7, 1] = 1  # [0,0,0,0,0,0,0,1,0,0] -> 4
    s[7, 2] = s[9, 2] = 1  # [0,0,0,0,0,0,0,1,0,1] -> 5
    codes = md.pattern_codes(s)
    assert codes.tolist() == [1023, 4, 5]
    assert torch.equal(md.code_bits(codes, T), s)
    assert md.popcount(codes[1] ^ codes[2:3], T).tolist() == [1]


def test_spikes_from_psc_match_the_forward():
    c = _inputs(200, 10, 0).T.contiguous()
    u, s, a = reference.lif_states(c.float(), LifParams(tau_m=TAU_M, tau_s=TAU_S, threshold=THR))
    assert torch.equal(md.spikes_from_psc(a, TAU_S), s.to(torch.int64))


def test_segment_costs_are_the_exact_qp_minimum():
    lsq_linear = pytest.importorskip("scipy.optimize").lsq_linear
    T = 6
    table = md.SegmentTable(T)
    c = _inputs(12, T, 1)
    costs, bad = md.segment_costs(c, table, TAU_M, THR)
    assert bad == 0 and costs.shape == (12, table.n_problems + 1) and bool((costs[:, -1] == 0).all())
    for k in range(c.shape[0]):
        for j in range(table.n_problems):
            r, e, spike = int(table.start[j]), int(table.end[j]), bool(table.spike[j])
            n = e - r + 1
            u0 = np.zeros(n)
            acc = 0.0
            for i in range(n):
                acc = LAM * acc + float(c[k, r + i])
                u0[i] = acc
            lo, hi = np.full(n, -np.inf), THR - u0
            if spike:
                lo[-1], hi[-1] = hi[-1], np.inf
            D = np.eye(n) - LAM * np.eye(n, k=-1)  # eps = D y
            res = lsq_linear(D, np.zeros(n), bounds=(lo, hi), method="bvls", tol=1e-14)
            assert float(costs[k, j]) == pytest.approx(float(np.sum((D @ res.x) ** 2)), rel=1e-8, abs=1e-12)


def test_key_neighbour_distance_is_the_least_perturbation():
    """d_MP(u, s')^2 is 0 for the neuron's own pattern, at most ||eps||^2 for the pattern any perturbation eps
    reaches (Algorithm 1: u' = f(c + eps)), and at most (threshold - u[p])^2 for the SNS neighbour p."""
    T, K = 8, 64
    table = md.SegmentTable(T)
    c = _inputs(K, T, 2)
    d2, bad = md.key_neighbour_sq_distances(c, table, TAU_M, THR)
    assert bad == 0 and d2.shape == (K, 2**T)
    u, s, _ = reference.lif_states(c.T, LifParams(tau_m=TAU_M, tau_s=TAU_S, threshold=THR))
    own = md.pattern_codes(s)
    rows = torch.arange(K)
    assert torch.allclose(d2[rows, own], torch.zeros(K, dtype=torch.float64), atol=1e-20)
    others = d2.clone()
    others[rows, own] = float("inf")
    assert bool((others > 0).all())
    g = torch.Generator().manual_seed(3)
    for scale in (0.05, 0.3, 1.0):
        eps = torch.randn(K, T, generator=g, dtype=torch.float64) * scale
        _, s_eps, _ = reference.lif_states((c + eps).T, LifParams(tau_m=TAU_M, tau_s=TAU_S, threshold=THR))
        reached = md.pattern_codes(s_eps)
        assert bool((d2[rows, reached] <= (eps * eps).sum(1) * (1 + 1e-9) + 1e-12).all())
    sns = reference.sns_neighbour_spikes(c.T, LifParams(tau_m=TAU_M, tau_s=TAU_S, threshold=THR))
    for p in range(T):
        code = md.pattern_codes(sns[p])
        assert bool((d2[rows, code] <= (THR - u[p]) ** 2 * (1 + 1e-9) + 1e-12).all())


def test_hamming_rank_cdf_breaks_ties_uniformly():
    T = 4
    counts = [0, 8, 6, 0, 0]
    cdf = md.hamming_rank_cdf(counts, T)
    assert cdf.shape == (2**T - 1,)
    assert cdf[0] == pytest.approx(2.0)  # 8 transfers spread over the 4 ranks of distance 1
    assert cdf[3] == pytest.approx(8.0) and cdf[4] == pytest.approx(9.0) and cdf[9] == pytest.approx(14.0)
    assert cdf[-1] == pytest.approx(14.0)


def _fake_mnist(root, n_train=32, n_test=8):
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for train, n in ((True, n_train), (False, n_test)):
        img_stem, lab_stem = idx.IDX_STEMS[train]
        idx.write_idx(root / (img_stem + ".gz"), rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        idx.write_idx(root / (lab_stem + ".gz"), rng.integers(0, 10, n).astype(np.uint8))


def test_main_counts_every_train(tmp_path):
    data = tmp_path / "mnist"
    _fake_mnist(data)
    out = tmp_path / "out"
    iters, batch, T = 3, 4, 5
    result = md.main(
        [
            "--out",
            str(out),
            "--data-dir",
            str(data),
            "--iterations",
            str(iters),
            "--T",
            str(T),
            "--batch-size",
            str(batch),
            "--sample",
            str(SAMPLE),
            "--device",
            "cpu",
            "--no-progress",
        ]
    )
    assert (out / "mp_dist.png").stat().st_size > 0
    with open(out / "mp_dist.json") as f:
        saved = json.load(f)
    assert saved["summary"] == result["summary"]
    cfg, s = saved["config"], saved["summary"]
    assert cfg["method"] == "tssl" and cfg["T"] == T and cfg["arch"] == "15C5-P2-40C5-P2-300-10"
    assert cfg["neurons_per_sample"] == 15 * 24 * 24 + 40 * 8 * 8 + 300 + 10
    assert len(cfg["layers"]) == 4
    # every neuron of every sample at every iteration is one transfer (the diagonal: unchanged)
    assert s["transfers_total"] == cfg["neurons_per_sample"] * iters * batch
    unchanged = sum(n for _, n in saved["unchanged_counts"])
    changed = sum(n for _, _, n in saved["transfer_counts"])
    assert changed == s["transfers_changed"] and unchanged + changed == s["transfers_total"]
    assert all(a != b and 0 <= a < 2**T and 0 <= b < 2**T for a, b, _ in saved["transfer_counts"])
    assert sum(saved["hamming_counts"]) == changed and saved["hamming_counts"][0] == 0
    # the MP-dist statistics: a uniform sample of at most --sample changed trains per iteration
    per_it = saved["per_iteration"]
    assert [it["sampled"] for it in per_it] == [min(it["changed"], SAMPLE) for it in per_it]
    sampled = s["sampled_changed"]
    assert sampled == sum(it["sampled"] for it in per_it) == sum(r["sampled"] for r in saved["layers"].values())
    assert sum(saved["mp_rank_counts"]) == sampled and saved["mp_rank_counts"][0] == 0
    assert sum(saved["sample_hamming_counts"]) == sampled and sum(saved["mp_dist_hist"]["counts"]) == sampled
    assert sum(r["trains"] for r in saved["layers"].values()) == s["transfers_total"]
    assert sum(r["changed"] for r in saved["layers"].values()) == changed
    assert [it["trains"] for it in per_it] == [cfg["neurons_per_sample"] * batch] * iters
    assert s["unconverged_segment_problems"] == 0
    assert changed > 0, "a TSSL-BP step should change some spike trains"
    assert saved["mp_rank_cdf"][-1] == pytest.approx(1.0) and saved["hamming_rank_cdf"][-1] == pytest.approx(1.0)
    for key in ("frac_mp_rank1", "frac_mp_top10", "frac_hamming1", "frac_sns_neighbour", "frac_sns_nearest"):
        assert 0.0 <= s[key] <= 1.0, key
    assert s["frac_mp_rank1"] <= s["frac_mp_top10"] and s["frac_sns_nearest"] <= s["frac_sns_neighbour"]
    assert len(saved["train_loss_per_sample"]) == iters
    assert all(math.isfinite(v) for v in saved["train_loss_per_sample"])


def test_bad_arguments():
    with pytest.raises(ValueError, match="T"):
        md.SegmentTable(0)
    with pytest.raises(ValueError, match="iterations"):
        md.run_experiment(None, iterations=0)
    with pytest.raises(SystemExit):
        md.main(["--T", "20", "--out", "unused"])
