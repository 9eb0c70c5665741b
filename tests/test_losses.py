"""na_cuda.losses: hand-computed values, gradients, desired trains and argument checks (all CPU, fast)."""

from __future__ import annotations

import math

import pytest
import torch

from na_cuda import losses

D = torch.float64


def _t(x) -> torch.Tensor:
    return torch.tensor(x, dtype=D)


def _ce(z: list[float], y: int) -> float:
    """Softmax cross-entropy of one logit vector, in plain Python."""
    return -z[y] + math.log(sum(math.exp(v) for v in z))


def _rand(*shape, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(*shape, generator=g, dtype=D)


# ------------------------------------------------------------------------------------------------------- psc
def test_psc_hand_values():
    # a[t] = (1 - 1/2) a[t-1] + s[t]/2 with s = 1, 0, 1, 1
    a = losses.psc(_t([1.0, 0.0, 1.0, 1.0]), 2.0)
    assert a.tolist() == pytest.approx([0.5, 0.25, 0.625, 0.8125], abs=1e-15)


def test_psc_matches_python_recursion_any_shape():
    s = (_rand(6, 2, 3, seed=3) > 0.5).to(D)
    tau_s = 3.0
    a = losses.psc(s, tau_s)
    assert a.shape == s.shape and a.dtype == D
    for i in range(2):
        for j in range(3):
            acc = 0.0
            for t in range(6):
                acc = (1 - 1 / tau_s) * acc + float(s[t, i, j]) / tau_s
                assert float(a[t, i, j]) == pytest.approx(acc, abs=1e-14)


def test_psc_tau_one_is_identity_and_grad():
    s = _rand(4, 3).requires_grad_(True)
    assert torch.equal(losses.psc(s, 1.0), s)
    # d sum_t a[t] / d s[0] = (1/tau) sum_k kappa^k, k = 0..T-1 ; tau = 2, T = 4: 0.5 * (1 + .5 + .25 + .125)
    losses.psc(s, 2.0).sum().backward()
    assert s.grad[0].tolist() == pytest.approx([0.9375] * 3)
    assert s.grad[3].tolist() == pytest.approx([0.5] * 3)


@pytest.mark.parametrize("tau_s", [0.0, -1.0, 0.5, float("nan"), float("inf")])
def test_psc_bad_tau(tau_s):
    with pytest.raises(ValueError, match="tau_s"):
        losses.psc(_rand(3, 2), tau_s)


def test_psc_bad_inputs():
    with pytest.raises(TypeError, match="tau_s"):
        losses.psc(_rand(3, 2), "2")
    with pytest.raises(TypeError, match="spikes"):
        losses.psc(torch.ones(3, 2, dtype=torch.int64), 2.0)
    with pytest.raises(ValueError, match="spikes"):
        losses.psc(torch.tensor(1.0), 2.0)
    with pytest.raises(TypeError, match="spikes"):
        losses.psc([1.0, 0.0], 2.0)


# ------------------------------------------------------------------------------------------------- van Rossum
def test_van_rossum_hand_value():
    # T = 2, B = 1, classes = 2, label 0, all-ones desired train, tau_s = 2 -> psc(d) = [0.5, 0.75] on class 0.
    out = _t([[[0.2, 0.1]], [[0.5, 0.3]]])
    d = losses.na_desired_spikes(torch.tensor([0]), 2, 2, dtype=D)
    expected = 0.5 * ((0.5 - 0.2) ** 2 + (0 - 0.1) ** 2 + (0.75 - 0.5) ** 2 + (0 - 0.3) ** 2)
    assert float(losses.van_rossum(out, d, 2.0)) == pytest.approx(expected, abs=1e-15)


def test_van_rossum_released_double_filtered_target():
    # The released NA main.py PSC-filters the all-ones train and loss_kernel filters it again (spec §7).
    T, tau_s = 5, 2.0
    d = losses.na_desired_spikes(torch.tensor([0]), 1, T, dtype=D)
    out = torch.zeros(T, 1, 1, dtype=D, requires_grad=True)
    (g,) = torch.autograd.grad(losses.van_rossum(out, d, tau_s, target_filters=2), out)
    assert (-g).flatten().tolist() == pytest.approx([0.25, 0.5, 0.6875, 0.8125, 0.890625], abs=1e-15)
    (g1,) = torch.autograd.grad(losses.van_rossum(out, d, tau_s), out)
    assert (-g1).flatten().tolist() == pytest.approx([0.5, 0.75, 0.875, 0.9375, 0.96875], abs=1e-15)
    for bad in (0, 3, True, 1.5):
        with pytest.raises(ValueError, match="target_filters"):
            losses.van_rossum(out, d, tau_s, target_filters=bad)


def test_van_rossum_reduction_and_gradient():
    T, B, C, tau_s = 5, 3, 4, 2.0
    out = _rand(T, B, C, seed=1).requires_grad_(True)
    labels = torch.tensor([1, 3, 0])
    d = losses.tssl_desired_spikes(labels, C, T, dtype=D)
    target = losses.psc(d, tau_s)
    per_sample = [0.5 * float(((target[:, b] - out[:, b].detach()) ** 2).sum()) for b in range(B)]
    l_sum = losses.van_rossum(out, d, tau_s, reduction="sum")
    l_mean = losses.van_rossum(out, d, tau_s)
    assert float(l_sum.detach()) == pytest.approx(sum(per_sample), rel=1e-12)
    assert float(l_mean.detach()) == pytest.approx(sum(per_sample) / B, rel=1e-12)
    (g,) = torch.autograd.grad(l_mean, out)
    assert torch.isfinite(g).all()
    torch.testing.assert_close(g, (out.detach() - target) / B)


def test_van_rossum_validation():
    out = _rand(5, 2, 3)
    d = torch.zeros(5, 2, 3, dtype=D)
    with pytest.raises(ValueError, match="target_spikes"):
        losses.van_rossum(out, torch.zeros(5, 2, 4, dtype=D), 2.0)
    with pytest.raises(ValueError, match="target_spikes"):
        losses.van_rossum(out, torch.zeros(4, 2, 3, dtype=D), 2.0)
    with pytest.raises(ValueError, match="out_psc"):
        losses.van_rossum(out[0], d[0], 2.0)
    with pytest.raises(TypeError, match="target_spikes"):
        losses.van_rossum(out, None, 2.0)
    with pytest.raises(ValueError, match="tau_s"):
        losses.van_rossum(out, d, 0.0)
    with pytest.raises(ValueError, match="reduction"):
        losses.van_rossum(out, d, 2.0, reduction="none")
    with pytest.raises(TypeError, match="out_psc"):
        losses.van_rossum(torch.zeros(5, 2, 3, dtype=torch.int64), d, 2.0)


# --------------------------------------------------------------------------------------------- desired trains
def test_na_desired_spikes_pattern():
    d = losses.na_desired_spikes(torch.tensor([2, 0]), 3, 4)
    assert d.shape == (4, 2, 3) and d.dtype == torch.float32 and d.is_contiguous()
    for t in range(4):
        assert d[t].tolist() == [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]
    d64 = losses.na_desired_spikes(torch.tensor([1], dtype=torch.int32), 2, 1, dtype=D, device="cpu")
    assert d64.dtype == D and d64.tolist() == [[[0.0, 1.0]]]


def test_tssl_desired_spikes_pattern():
    d = losses.tssl_desired_spikes(torch.tensor([1, 0, 1]), 2, 10)
    assert d.shape == (10, 3, 2)
    assert d[:, 0, 1].tolist() == [0, 1, 1, 1, 1, 0, 1, 1, 1, 1]
    assert d[:, 1, 0].tolist() == [0, 1, 1, 1, 1, 0, 1, 1, 1, 1]
    assert d[:, 0, 0].tolist() == [0] * 10 and d[:, 1, 1].tolist() == [0] * 10
    alt = losses.tssl_desired_spikes(torch.tensor([0]), 1, 20, pattern=(0, 1) * 5)
    assert alt[:, 0, 0].tolist() == [0, 1] * 10


def test_desired_spikes_validation():
    labels = torch.tensor([0, 1])
    with pytest.raises(ValueError, match="`T`"):
        losses.tssl_desired_spikes(labels, 2, 7)
    with pytest.raises(ValueError, match="pattern"):
        losses.tssl_desired_spikes(labels, 2, 5, pattern=(0, 2, 1, 1, 1))
    with pytest.raises(TypeError, match="pattern"):
        losses.tssl_desired_spikes(labels, 2, 5, pattern=())
    with pytest.raises(ValueError, match="`T`"):
        losses.na_desired_spikes(labels, 2, 0)
    with pytest.raises(TypeError, match="num_classes"):
        losses.na_desired_spikes(labels, 2.0, 5)
    with pytest.raises(TypeError, match="dtype"):
        losses.na_desired_spikes(labels, 2, 5, dtype=torch.int64)
    with pytest.raises(ValueError, match="labels"):
        losses.na_desired_spikes(labels, 1, 5)  # label 1 not in [0, 1)


# ------------------------------------------------------------------------------------------------ spike count
def _spikes(T, B, C, ones):
    """[T, B, C] float64 with spikes[t, b, c] = 1 for t < ones[b][c]."""
    x = torch.zeros(T, B, C, dtype=D)
    for b in range(B):
        for c in range(C):
            x[: ones[b][c], b, c] = 1.0
    return x


def test_spike_count_hand_value_and_dead_zones():
    T, desired, undesired = 5, 4.0, 1.0
    # sample 0 (label 0): counts 2 (too few: penalised), 3 (too many: penalised), 0 (below undesired: dead)
    # sample 1 (label 2): counts 1 (== undesired: 0), 0 (dead), 5 (above desired: dead for the label neuron)
    out = _spikes(T, 2, 3, [[2, 3, 0], [1, 0, 5]]).requires_grad_(True)
    labels = torch.tensor([0, 2])
    d00, d01 = (2 - 4) / 5, (3 - 1) / 5
    expected_sum = 0.5 * T * (d00**2 + d01**2)  # = 0.8
    l_sum = losses.spike_count(out, labels, desired, undesired, reduction="sum")
    assert float(l_sum.detach()) == pytest.approx(expected_sum, abs=1e-14)
    l_mean = losses.spike_count(out, labels, desired, undesired)
    assert float(l_mean.detach()) == pytest.approx(expected_sum / 2, abs=1e-14)
    # Gradient = delta at every step (the released straight-through backward), / B for "mean".
    (g,) = torch.autograd.grad(l_mean, out)
    expected_g = torch.zeros(2, 3, dtype=D)
    expected_g[0, 0], expected_g[0, 1] = d00 / 2, d01 / 2
    torch.testing.assert_close(g, expected_g.expand(T, 2, 3))


def _released_loss_count(out: list, target: list, desired: float, undesired: float):
    """Plain-Python transcription of TSSL-BP loss_count + spike_count on [B][C][T] lists: (loss, grad)."""
    B, C, T = len(out), len(out[0]), len(out[0][0])
    loss, grad = 0.0, [[[0.0] * T for _ in range(C)] for _ in range(B)]
    for b in range(B):
        for c in range(C):
            delta = (sum(out[b][c]) - target[b][c]) / T
            if not (target[b][c] == undesired or delta < 0):
                delta = 0.0
            if not (target[b][c] == desired or delta > 0):
                delta = 0.0
            loss += 0.5 * T * delta**2
            grad[b][c] = [delta] * T
    return loss, grad


@pytest.mark.parametrize("desired,undesired", [(4.0, 1.0), (3.0, 0.5), (2.0, 2.0), (0.0, 0.0)])
def test_spike_count_matches_released_transcription(desired, undesired):
    T, B, C = 5, 6, 4
    out = (_rand(T, B, C, seed=7) * 1.6).requires_grad_(True)  # PSC-like values, counts spread around targets
    labels = torch.tensor([0, 1, 2, 3, 1, 0])
    target = [[desired if c == int(labels[b]) else undesired for c in range(C)] for b in range(B)]
    out_bct = out.detach().permute(1, 2, 0).tolist()
    exp_loss, exp_grad = _released_loss_count(out_bct, target, desired, undesired)
    loss = losses.spike_count(out, labels, desired, undesired, reduction="sum")
    assert float(loss.detach()) == pytest.approx(exp_loss, rel=1e-12, abs=1e-15)
    (g,) = torch.autograd.grad(loss, out)
    torch.testing.assert_close(g.permute(1, 2, 0), _t(exp_grad))


def test_spike_count_psc_filtering():
    # One spike at t = 0, T = 3, tau_s = 2: PSC = 0.5, 0.25, 0.125 -> "count" 0.875 (the released code sums PSCs).
    s = torch.zeros(3, 1, 2, dtype=D)
    s[0, 0, 0] = 1.0
    labels = torch.tensor([0])
    loss = losses.spike_count(s, labels, 2.0, 0.0, tau_s=2.0)
    assert float(loss) == pytest.approx(0.5 * 3 * ((0.875 - 2.0) / 3) ** 2, abs=1e-14)
    a = losses.psc(s, 2.0)
    assert float(losses.spike_count(a, labels, 2.0, 0.0)) == pytest.approx(float(loss), abs=1e-15)
    # Without tau_s the spikes themselves are counted: 1 spike.
    assert float(losses.spike_count(s, labels, 2.0, 0.0)) == pytest.approx(0.5 * 3 * (1 / 3) ** 2, abs=1e-14)


def test_spike_count_validation():
    out = _rand(5, 2, 3)
    labels = torch.tensor([0, 2])
    with pytest.raises(ValueError, match="desired_count"):
        losses.spike_count(out, labels, -1.0, 0.0)
    with pytest.raises(ValueError, match="undesired_count"):
        losses.spike_count(out, labels, 3.0, -0.5)
    with pytest.raises(TypeError, match="desired_count"):
        losses.spike_count(out, labels, "3", 0.0)
    with pytest.raises(ValueError, match="tau_s"):
        losses.spike_count(out, labels, 3.0, 0.0, tau_s=0.0)
    with pytest.raises(ValueError, match="labels"):
        losses.spike_count(out, torch.tensor([0, 3]), 3.0, 0.0)
    with pytest.raises(ValueError, match="outputs"):
        losses.spike_count(out[:, :, 0], labels, 3.0, 0.0)
    with pytest.raises(ValueError, match="reduction"):
        losses.spike_count(out, labels, 3.0, 0.0, reduction="batchmean")


# ---------------------------------------------------------------------------------------------- predictions
def test_spike_count_predictions_ties_lowest():
    # counts per sample: [2, 2, 1] -> 0 ; [0, 1, 1] -> 1 ; [0, 0, 0] -> 0 ; [1, 0, 3] -> 2
    x = _spikes(3, 4, 3, [[2, 2, 1], [0, 1, 1], [0, 0, 0], [1, 0, 3]])
    for inp in (x, x.bool(), x.float()):
        p = losses.spike_count_predictions(inp)
        assert p.dtype == torch.int64 and p.tolist() == [0, 1, 0, 2]
    with pytest.raises(ValueError, match="outputs"):
        losses.spike_count_predictions(x[0])


# ------------------------------------------------------------------------------------------------- TET / SDT
OUT_2x2x3 = [[[1.0, 2.0, 0.5], [0.0, -1.0, 0.3]], [[0.2, 0.1, 3.0], [1.5, 0.5, -0.5]]]  # [T=2][B=2][C=3]
LABELS_2 = [1, 0]


def test_tet_lamb0_is_mean_of_per_step_ce():
    out = _t(OUT_2x2x3)
    expected = sum(_ce(OUT_2x2x3[t][b], LABELS_2[b]) for t in range(2) for b in range(2)) / 4
    assert float(losses.tet(out, torch.tensor(LABELS_2))) == pytest.approx(expected, abs=1e-14)


def test_tet_lamb1_is_mse_and_mix():
    out = _t(OUT_2x2x3)
    phi = 0.7
    vals = [v for t in OUT_2x2x3 for b in t for v in b]
    mse = sum((v - phi) ** 2 for v in vals) / len(vals)
    ce = sum(_ce(OUT_2x2x3[t][b], LABELS_2[b]) for t in range(2) for b in range(2)) / 4
    labels = torch.tensor(LABELS_2)
    assert float(losses.tet(out, labels, lamb=1.0, phi=phi)) == pytest.approx(mse, abs=1e-14)
    assert float(losses.tet(out, labels, lamb=0.25, phi=phi)) == pytest.approx(0.75 * ce + 0.25 * mse, abs=1e-14)


def test_sdt_is_ce_of_mean_and_bounded_by_tet():
    out = _t(OUT_2x2x3)
    expected = (
        sum(_ce([(OUT_2x2x3[0][b][c] + OUT_2x2x3[1][b][c]) / 2 for c in range(3)], LABELS_2[b]) for b in range(2)) / 2
    )
    assert float(losses.sdt(out, torch.tensor(LABELS_2))) == pytest.approx(expected, abs=1e-14)
    # Lemma 4.1 of the TET paper: L_SDT <= L_TET.
    x = _rand(6, 8, 5, seed=11) * 4 - 2
    y = torch.arange(8) % 5
    assert float(losses.sdt(x, y)) <= float(losses.tet(x, y)) + 1e-12


def test_tet_sdt_validation():
    out = _rand(3, 2, 4)
    labels = torch.tensor([1, 3])
    for lamb in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="lamb"):
            losses.tet(out, labels, lamb=lamb)
    with pytest.raises(ValueError, match="phi"):
        losses.tet(out, labels, lamb=0.1, phi=float("inf"))
    for fn in (losses.tet, losses.sdt):
        with pytest.raises(ValueError, match="outputs"):
            fn(out[0], labels)
        with pytest.raises(ValueError, match="outputs"):
            fn(out[..., None], labels)
        with pytest.raises(TypeError, match="labels"):
            fn(out, labels.float())
        with pytest.raises(TypeError, match="labels"):
            fn(out, labels.bool())
        with pytest.raises(ValueError, match="labels"):
            fn(out, torch.tensor([1, 4]))
        with pytest.raises(ValueError, match="labels"):
            fn(out, torch.tensor([-1, 0]))
        with pytest.raises(ValueError, match="labels"):
            fn(out, torch.tensor([1, 2, 3]))  # B mismatch
        with pytest.raises(ValueError, match="labels"):
            fn(out, torch.tensor([[1], [2]]))  # not [B]
        with pytest.raises(ValueError, match="labels"):
            fn(out, torch.tensor([1, 2], device="meta"))  # device mismatch
        with pytest.raises(TypeError, match="outputs"):
            fn(torch.ones(3, 2, 4, dtype=torch.int64), labels)


# ----------------------------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("name", ["van_rossum", "spike_count", "spike_count_psc", "tet", "tet_mix", "sdt"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gradients_exist_and_finite(name, dtype):
    T, B, C = 5, 4, 3
    out = (_rand(T, B, C, seed=5) * 2).to(dtype).requires_grad_(True)
    labels = torch.tensor([0, 2, 1, 2])
    if name == "van_rossum":
        loss = losses.van_rossum(out, losses.na_desired_spikes(labels, C, T, dtype=dtype), 2.0)
    elif name == "spike_count":
        loss = losses.spike_count(out, labels, 8.0, 1.0)
    elif name == "spike_count_psc":
        loss = losses.spike_count(out, labels, 8.0, 1.0, tau_s=2.0)
    elif name == "tet":
        loss = losses.tet(out, labels)
    elif name == "tet_mix":
        loss = losses.tet(out, labels, lamb=0.05, phi=1.0)
    else:
        loss = losses.sdt(out, labels)
    assert loss.dim() == 0 and loss.dtype == dtype
    (g,) = torch.autograd.grad(loss, out)
    assert g.shape == out.shape and torch.isfinite(g).all() and g.abs().sum() > 0


def test_cross_entropy_gradients_match_hand_formula():
    # TET: dL/dO[t, b] = (softmax(O[t, b]) - onehot(y_b)) / (T B); SDT: (softmax(mean_t O[:, b]) - onehot) / (T B).
    out = _t(OUT_2x2x3).requires_grad_(True)
    labels = torch.tensor(LABELS_2)
    (g_tet,) = torch.autograd.grad(losses.tet(out, labels), out)
    (g_sdt,) = torch.autograd.grad(losses.sdt(out, labels), out)
    for t in range(2):
        for b in range(2):
            z = OUT_2x2x3[t][b]
            zm = [(OUT_2x2x3[0][b][c] + OUT_2x2x3[1][b][c]) / 2 for c in range(3)]
            for c in range(3):
                oh = 1.0 if c == LABELS_2[b] else 0.0
                sm = math.exp(z[c]) / sum(math.exp(v) for v in z)
                smm = math.exp(zm[c]) / sum(math.exp(v) for v in zm)
                assert float(g_tet[t, b, c]) == pytest.approx((sm - oh) / 4, abs=1e-14)
                assert float(g_sdt[t, b, c]) == pytest.approx((smm - oh) / 4, abs=1e-14)


# -- loss arguments that passed without a word ----------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8, torch.bool])
def test_van_rossum_refuses_an_integer_target(dtype):
    out = torch.rand(5, 2, 3)
    with pytest.raises(TypeError, match="target_spikes.*floating"):
        losses.van_rossum(out, torch.ones(5, 2, 3, dtype=dtype), 2.0)


@pytest.mark.parametrize("lamb", [0.0, 0.05, 1.0])
def test_tet_on_nan_outputs_is_nan(lamb):
    """Decided: no check (a host sync per step); the NaN propagates to the loss, never a finite number."""
    out = torch.rand(5, 2, 3)
    out[2, 1, 0] = float("nan")
    assert torch.isnan(losses.tet(out, torch.tensor([0, 2]), lamb=lamb))
    assert torch.isnan(losses.sdt(out, torch.tensor([0, 2])))
