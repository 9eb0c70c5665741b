"""Tests of the pure-PyTorch reference (``na_cuda/reference/``), the oracle of the kernel tests (spec =
docs/algorithm.md): hand-computed forwards, H(0) = 1 at ties, shapes, dtypes and non-contiguous inputs; (a) NA's
direct SNS backward == the literal paper pipeline (Algorithm 1/2, eq. 15), float64, < 1e-9; (b)
``first_order="taylor"`` == the true loss change of a linear loss; the spec's ``W`` form and early exit, phi(0) =
-b; STBP == hand-unrolled BPTT, its forward == ``lif_forward`` bit for bit; TSSL-BP == a literal scalar computation
of the released code on a hand-made 3-step case."""

from __future__ import annotations

import math

import pytest
import torch

from na_cuda import NA, STBP, LifParams
from na_cuda import literal as L
from na_cuda import reference as R

F64 = torch.float64
PARAMS = [(5.0, 2.0, 1.0), (3.0, 4.0, 0.7)]  # (tau_m, tau_s, threshold)


def _inputs(T: int, shape: tuple[int, ...], threshold: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random float64 input that makes neurons fire a fair fraction of steps (~20-50 %), and a random G."""
    gen = torch.Generator().manual_seed(seed)
    c = (torch.rand((T,) + shape, generator=gen, dtype=F64) * 1.5 - 0.3) * threshold
    g = torch.randn((T,) + shape, generator=gen, dtype=F64)
    return c, g


# ------------------------------------------------------------------------------------------------------------------
# forward
# ------------------------------------------------------------------------------------------------------------------
def test_forward_hand_computed():
    # tau_m = 5 -> lam = 0.8; tau_s = 2 -> kappa = 0.5, 1/tau_s = 0.5; threshold 1.
    c = torch.tensor([0.6, 0.6, 1.0], dtype=F64)
    u, s, a = R.lif_states(c, LifParams(tau_m=5.0, tau_s=2.0, threshold=1.0))
    # u0 = 0.6 (silent, v = 0.6); u1 = 0.8*0.6 + 0.6 = 1.08 (fires, v = 0); u2 = 0 + 1.0 = 1.0: a tie, fires (H(0)=1)
    assert torch.allclose(u, torch.tensor([0.6, 1.08, 1.0], dtype=F64), rtol=0, atol=1e-15)
    assert u[2].item() == 1.0
    assert s.tolist() == [0.0, 1.0, 1.0]
    assert a.tolist() == [0.0, 0.5, 0.75]  # 0; 0.5*0 + 0.5; 0.5*0.5 + 0.5
    assert R.lif_forward(c, LifParams(tau_m=5.0, tau_s=2.0, threshold=1.0, output="psc")).tolist() == [0.0, 0.5, 0.75]
    assert R.lif_forward(c, LifParams(tau_m=5.0, tau_s=2.0, threshold=1.0, output="spike")).tolist() == [0.0, 1.0, 1.0]

    # reset, then leak and re-integrate: u = 1.5 (fire), 0.5, 0.9, 1.22 (fire)
    c = torch.tensor([1.5, 0.5, 0.5, 0.5], dtype=F64)
    u, s, a = R.lif_states(c, LifParams(tau_m=5.0, tau_s=2.0, threshold=1.0))
    assert torch.allclose(u, torch.tensor([1.5, 0.5, 0.9, 1.22], dtype=F64), rtol=0, atol=1e-15)
    assert s.tolist() == [1.0, 0.0, 0.0, 1.0]
    assert a.tolist() == [0.5, 0.25, 0.125, 0.5625]


def test_forward_float64_bitwise_equals_scalar_loop():
    # The reference's op order (u = lam*v + c; v = 0 if s else u; a = kappa*a + s/tau_s) in IEEE double scalars
    # (Python floats, no FMA) gives bit-identical u and a: what a float64 C++ loop doing the same ops must match.
    for tau_m, tau_s, thr in PARAMS + [(7.3, 2.9, 1.1)]:
        c, _ = _inputs(20, (6,), thr, seed=4)
        u, s, a = R.lif_states(c, LifParams(tau_m=tau_m, tau_s=tau_s, threshold=thr))
        lam, kappa = 1.0 - 1.0 / tau_m, 1.0 - 1.0 / tau_s
        for n in range(6):
            v = acc = 0.0
            for t in range(20):
                ut = lam * v + c[t, n].item()
                st = 1.0 if ut >= thr else 0.0
                v = 0.0 if st else ut
                acc = kappa * acc + st / tau_s
                assert (u[t, n].item(), s[t, n].item(), a[t, n].item()) == (ut, st, acc)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_forward_exact_tie_fires(dtype):
    # tau_m = 2 -> lam = 0.5: u1 = 0.5*0.5 + 0.75 = 1.0 exactly (all values exact in every dtype) -> fires.
    c = torch.tensor([[0.5, 1.0], [0.75, 0.0]], dtype=dtype)  # neuron 1 hits the threshold exactly at t = 0
    s = R.lif_forward(c, LifParams(tau_m=2.0, tau_s=2.0, threshold=1.0, output="spike"))
    assert s.dtype == dtype
    assert s.tolist() == [[0.0, 1.0], [1.0, 0.0]]
    u, _, _ = R.lif_states(c, LifParams(tau_m=2.0, tau_s=2.0, threshold=1.0))
    assert u.dtype == (F64 if dtype == F64 else torch.float32)
    assert u[1, 0].item() == 1.0 and u[0, 1].item() == 1.0


def test_forward_shapes_dtypes_noncontiguous():
    c, _ = _inputs(7, (3, 4), 1.0, seed=1)
    ref = R.lif_forward(c, LifParams(tau_m=5.0, tau_s=2.0, threshold=1.0))
    assert ref.shape == c.shape and ref.dtype == F64
    # a non-contiguous view of the same values gives the same result
    cnc = c.permute(0, 2, 1).contiguous().permute(0, 2, 1)
    assert not cnc.is_contiguous()
    assert torch.equal(R.lif_forward(cnc, LifParams(tau_m=5.0, tau_s=2.0, threshold=1.0)), ref)
    # [T] input: one neuron; [T, 0]: no neurons
    assert torch.equal(R.lif_forward(c[:, 1, 2], LifParams(tau_m=5.0, tau_s=2.0, threshold=1.0)), ref[:, 1, 2])
    assert R.lif_forward(torch.zeros(4, 0), LifParams(tau_m=5.0, tau_s=2.0, threshold=1.0)).shape == (4, 0)
    # half inputs are computed in float32 and cast back
    h = c.to(torch.float16)
    out = R.lif_forward(h, LifParams(tau_m=5.0, tau_s=2.0, threshold=1.0))
    assert out.dtype == torch.float16 and out.shape == c.shape
    assert torch.equal(out, R.lif_forward(h.float(), LifParams(tau_m=5.0, tau_s=2.0, threshold=1.0)).half())
    g = torch.randn_like(c).half()
    gh = R.na_backward(g, h, LifParams(tau_m=5.0, tau_s=2.0, threshold=1.0))
    assert gh.dtype == torch.float16
    assert torch.equal(gh, R.na_backward(g.float(), h.float(), LifParams(tau_m=5.0, tau_s=2.0, threshold=1.0)).half())


# ------------------------------------------------------------------------------------------------------------------
# the literal pipeline's building blocks (paper sec. 3.3 claims)
# ------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("vr, beta", [(0.0, 1.0), (0.3, 1.0), (-0.5, 0.25), (None, 1.0), (None, 0.2)])
def test_algorithm1_algorithm2_are_inverse(vr, beta):
    gen = torch.Generator().manual_seed(3)
    n = L.Neuron(0.8, 1.0, vr, beta)
    for _ in range(20):
        c = (torch.rand(9, generator=gen, dtype=F64) * 1.5 / beta - 0.3).tolist()
        eps = (torch.randn(9, generator=gen, dtype=F64) * 0.4).tolist()
        u = L.f(c, n)
        assert L.f_inv(u, n) == pytest.approx(c, abs=1e-14)
        up = L.mp_add(u, eps, n)
        # u' = u (+) (u' (-) u): Algorithm 2 recovers the perturbation of Algorithm 1 ...
        assert L.mp_sub(up, u, n) == pytest.approx(eps, abs=1e-14)
        # ... and u' (-) u = -(u (-) u') (paper sec. 3.3)
        back = L.mp_sub(u, up, n)
        assert [-e for e in back] == pytest.approx(L.mp_sub(up, u, n), abs=1e-14)
        # u (+) eps is f(c + eps / beta): the perturbation joins the membrane at unit weight
        assert up == pytest.approx(L.f([a + b / beta for a, b in zip(c, eps)], n), abs=1e-13)


# ------------------------------------------------------------------------------------------------------------------
# (a) direct SNS backward == literal paper pipeline
# ------------------------------------------------------------------------------------------------------------------
# Max abs error seen over all the cases below: 6.2e-11 with the default eta = 1e-13 * threshold (firing rates
# 17-32 %). It scales linearly with eta (x10 per decade), i.e. it is the eta shift of d_MP, not rounding.
@pytest.mark.parametrize("T", [1, 2, 5, 16])
@pytest.mark.parametrize("output", ["psc", "spike"])
@pytest.mark.parametrize("first_order", ["paper", "taylor"])
def test_na_backward_matches_literal_pipeline(T, output, first_order):
    worst = 0.0
    clipped = 0
    for i, (tau_m, tau_s, thr) in enumerate(PARAMS):
        c, g = _inputs(T, (3, 4), thr, seed=100 * T + i)
        c[0, 0, 0] = thr  # an exact tie at t = 0: fires, d = 0, phi = -b
        u, s, _ = R.lif_states(c, LifParams(tau_m=tau_m, tau_s=tau_s, threshold=thr))
        assert 0.1 < s.mean().item() < 0.7 or T < 5
        for k in (1, 3):
            for b in (10.0, 0.5):
                fast = R.na_backward(
                    g,
                    c,
                    LifParams(tau_m=tau_m, tau_s=tau_s, threshold=thr, output=output),
                    NA(first_order=first_order, dist_power=k, clip=b),
                )
                lit = L.literal_na_gradient(c, g, tau_m, tau_s, thr, output, first_order, k, b)
                assert fast.shape == c.shape and fast.dtype == F64
                worst = max(worst, (fast - lit).abs().max().item())
                phi = R.na_phi(thr - u, k, b)
                clipped += int((phi.abs() == b).sum())
    assert worst < 1e-9, worst
    assert clipped > 0  # the clamp is exercised (at least by the tie)


@pytest.mark.parametrize("T", [1, 5, 16])
@pytest.mark.parametrize("output", ["psc", "spike"])
def test_strict_threshold_na_matches_literal_pipeline(T, output):
    """Strict firing (u > threshold, the released code): a tie is silent, the SNS flip raises u and phi(0) = +b;
    the direct NA backward still equals Algorithm 1/2 + eq. 15 run with H(0) = 0."""
    worst = 0.0
    for i, (tau_m, tau_s, thr) in enumerate(PARAMS):
        c, g = _inputs(T, (3, 4), thr, seed=7 * T + i)
        c[0, 0, 0] = thr  # exact tie at t = 0: silent under strict
        _, s, _ = R.lif_states(c, LifParams(tau_m=tau_m, tau_s=tau_s, threshold=thr, strict_threshold=True))
        assert s[0, 0, 0] == 0
        _, s_paper, _ = R.lif_states(c, LifParams(tau_m=tau_m, tau_s=tau_s, threshold=thr))
        assert s_paper[0, 0, 0] == 1
        fast = R.na_backward(
            g,
            c,
            LifParams(tau_m=tau_m, tau_s=tau_s, threshold=thr, output=output, strict_threshold=True),
            NA(first_order="paper", dist_power=3, clip=10.0),
        )
        lit = L.literal_na_gradient(c, g, tau_m, tau_s, thr, output, "paper", 3, 10.0, strict_threshold=True)
        worst = max(worst, (fast - lit).abs().max().item())
        # at the tie: dL_0 * phi(0) with phi(0) = +10 (the flip adds the spike)
        dL = R.sns_loss_change(
            g,
            c,
            LifParams(tau_m=tau_m, tau_s=tau_s, threshold=thr, output=output, strict_threshold=True),
            NA(first_order="paper"),
        )
        assert fast[0, 0, 0].item() == pytest.approx(10.0 * dL[0, 0, 0].item(), rel=1e-15)
    assert worst < 1e-9, worst


def test_na_backward_not_trivial():
    # guard against a vacuous (a): gradients are non-zero and the two first-order modes differ for PSC output
    c, g = _inputs(8, (3, 4), 1.0, seed=7)
    gp = R.na_backward(g, c, LifParams(tau_m=5.0, tau_s=2.0, threshold=1.0, output="psc"), NA(first_order="paper"))
    gt = R.na_backward(g, c, LifParams(tau_m=5.0, tau_s=2.0, threshold=1.0, output="psc"), NA(first_order="taylor"))
    assert (gp != 0).float().mean() > 0.5
    assert not torch.allclose(gp, gt)
    # for spike output, first_order does not matter
    assert torch.equal(
        R.na_backward(g, c, LifParams(tau_m=5.0, tau_s=2.0, threshold=1.0, output="spike"), NA(first_order="paper")),
        R.na_backward(g, c, LifParams(tau_m=5.0, tau_s=2.0, threshold=1.0, output="spike"), NA(first_order="taylor")),
    )


# ------------------------------------------------------------------------------------------------------------------
# (b) taylor first-order change == true change of a loss linear in the output
# ------------------------------------------------------------------------------------------------------------------
# Max abs error seen: exactly 0 for dL_p; 2.2e-16 relative for grad * d (the neighbour trajectories are identical).
@pytest.mark.parametrize("T", [1, 5, 16])
@pytest.mark.parametrize("output", ["psc", "spike"])
def test_taylor_equals_true_linear_loss_change(T, output):
    tau_m, tau_s, thr = 5.0, 2.0, 1.0
    c, W = _inputs(T, (3, 4), thr, seed=200 + T)
    eta = 1e-13 * thr
    u, s, _ = R.lif_states(c, LifParams(tau_m=tau_m, tau_s=tau_s, threshold=thr))
    out0 = R.lif_forward(c, LifParams(tau_m=tau_m, tau_s=tau_s, threshold=thr, output=output))
    dL = R.sns_loss_change(
        W, c, LifParams(tau_m=tau_m, tau_s=tau_s, threshold=thr, output=output), NA(first_order="taylor")
    )
    # na_backward with k = 1 and no effective clip is dL / d (eq. 14), d = threshold - u
    grad = R.na_backward(
        W,
        c,
        LifParams(tau_m=tau_m, tau_s=tau_s, threshold=thr, output=output),
        NA(first_order="taylor", dist_power=1, clip=1e300),
    )
    worst = 0.0
    for p in range(T):
        d = thr - u[p]
        # SNS perturbation of every neuron at p at once (neurons are independent): just over / under threshold
        eps = torch.where(s[p] > 0, d - eta, d + eta)
        cp = c.clone()
        cp[p] += eps
        sp = R.lif_forward(cp, LifParams(tau_m=tau_m, tau_s=tau_s, threshold=thr, output="spike"))
        assert torch.equal(sp[p], 1 - s[p])  # the firing at p really flipped
        outp = R.lif_forward(cp, LifParams(tau_m=tau_m, tau_s=tau_s, threshold=thr, output=output))
        true = (W * (outp - out0)).sum(0)  # L(out(c + eps_p)) - L(out(c)), L = sum W * out
        worst = max(worst, (true - dL[p]).abs().max().item())
        assert torch.allclose(grad[p] * d, true, rtol=1e-12, atol=1e-14)
    assert worst < 1e-13, worst


# ------------------------------------------------------------------------------------------------------------------
# phi, the spec's efficient form and early exit
# ------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("b", [10.0, 0.5])
def test_phi(k, b):
    d = torch.tensor([0.0, 1e-9, -1e-9, 2.0, -2.0, 0.5], dtype=F64)
    phi = R.na_phi(d, k, b)
    assert phi[0].item() == -b  # phi(0) = -b: a tie fires, the flip lowers u
    assert phi[1].item() == b and phi[2].item() == -b
    assert phi[3].item() == pytest.approx(min(2.0**-k, b))
    assert phi[4].item() == pytest.approx(-min(2.0**-k, b))
    assert phi[5].item() == pytest.approx(min(0.5**-k, b))

    # through na_backward: u[0] == threshold exactly -> grad[0] = -b * dL_0
    c = torch.tensor([[1.0], [0.3], [0.9]], dtype=F64)
    g = torch.tensor([[0.7], [-0.2], [0.4]], dtype=F64)
    dL = R.sns_loss_change(g, c, LifParams(tau_m=5.0, tau_s=2.0, threshold=1.0))
    grad = R.na_backward(
        g,
        c,
        LifParams(tau_m=5.0, tau_s=2.0, threshold=1.0, output="psc"),
        NA(first_order="paper", dist_power=k, clip=b),
    )
    assert dL[0, 0].item() != 0.0
    assert grad[0, 0].item() == -b * dL[0, 0].item()


def test_spec_efficient_W_form_and_early_exit():
    """Spec sec. 3.2/3.3 claims: sum_t X (a_p - a) = sum_t W ds_p with W = r(X)/tau_s, r(X)[t] = X[t] + kappa r[t+1];
    and once s_p[t] == s[t] == 1 for some t > p, ds_p is zero from there on."""
    for tau_m, tau_s, thr in PARAMS:
        c, g = _inputs(12, (5,), thr, seed=11)
        kappa = 1.0 - 1.0 / tau_s
        _, s, a = R.lif_states(c, LifParams(tau_m=tau_m, tau_s=tau_s, threshold=thr))
        sp = R.sns_neighbour_spikes(c, LifParams(tau_m=tau_m, tau_s=tau_s, threshold=thr))  # [p, T, N]
        for first_order in ("paper", "taylor"):
            X = R.error_signal(g, tau_s, "psc", first_order)
            r = torch.zeros_like(X)
            nxt = torch.zeros_like(X[0])
            for t in range(X.shape[0] - 1, -1, -1):
                nxt = X[t] + kappa * nxt
                r[t] = nxt
            W = r / tau_s
            direct = R.sns_loss_change(
                g, c, LifParams(tau_m=tau_m, tau_s=tau_s, threshold=thr, output="psc"), NA(first_order=first_order)
            )
            fast = torch.stack([(W * (sp[p] - s)).sum(0) for p in range(12)])
            assert torch.allclose(direct, fast, rtol=0, atol=1e-13)
        for p in range(12):
            for n in range(5):
                both = [t for t in range(p + 1, 12) if sp[p, t, n] == 1 and s[t, n] == 1]
                if both:
                    assert torch.equal(sp[p, both[0] :, n], s[both[0] :, n])
                assert torch.equal(sp[p, :p, n], s[:p, n]) and sp[p, p, n] == 1 - s[p, n]


# ------------------------------------------------------------------------------------------------------------------
# STBP
# ------------------------------------------------------------------------------------------------------------------
def _h(u: float, surrogate: str) -> float:
    """Default surrogates (a = g = 1, k = 4), threshold 1, written out as scalars."""
    x = u - 1.0
    if surrogate == "rect":
        return 1.0 if abs(x) < 0.5 else 0.0
    if surrogate == "triangle":
        return max(0.0, 1.0 - abs(x))
    sig = 1.0 / (1.0 + math.exp(-4.0 * x))
    return 4.0 * sig * (1.0 - sig)


def _bptt_3steps(c: list[float], W: list[float], output: str, surrogate: str, detach: bool) -> list[float]:
    """Hand-unrolled BPTT of L = sum_t W[t] * out[t] for one neuron, T = 3, tau_m = 5, tau_s = 2, thr = 1."""
    lam, kappa, tau_s = 0.8, 0.5, 2.0
    H = lambda x: 1.0 if x >= 1.0 else 0.0  # noqa: E731
    # forward
    u0 = c[0]
    s0 = H(u0)
    v0 = u0 * (1 - s0)
    u1 = lam * v0 + c[1]
    s1 = H(u1)
    v1 = u1 * (1 - s1)
    u2 = lam * v1 + c[2]
    # direct dL/ds[t] (through the output only)
    if output == "psc":  # a[t] = kappa a[t-1] + s[t]/tau_s
        ga2 = W[2]
        ga1 = W[1] + kappa * ga2
        ga0 = W[0] + kappa * ga1
        gs0, gs1, gs2 = ga0 / tau_s, ga1 / tau_s, ga2 / tau_s
    else:
        gs0, gs1, gs2 = W
    # t = 2: u2 only drives s2
    gu2 = gs2 * _h(u2, surrogate)
    # t = 1: u1 drives s1 and v1 = u1 (1 - s1), and u2 = lam v1 + c2
    gv1 = gu2 * lam
    gs1_tot = gs1 + (0.0 if detach else gv1 * (-u1))  # reset path dv1/ds1 = -u1, cut when detached
    gu1 = gs1_tot * _h(u1, surrogate) + gv1 * (1 - s1)
    # t = 0
    gv0 = gu1 * lam
    gs0_tot = gs0 + (0.0 if detach else gv0 * (-u0))
    gu0 = gs0_tot * _h(u0, surrogate) + gv0 * (1 - s0)
    return [gu0, gu1, gu2]  # dL/dc[t] = dL/du[t]


@pytest.mark.parametrize("surrogate", ["rect", "triangle", "sigmoid"])
@pytest.mark.parametrize("detach_reset", [True, False])
@pytest.mark.parametrize("output", ["psc", "spike"])
def test_stbp_autograd_matches_hand_bptt(surrogate, detach_reset, output):
    # neuron 0: u = 0.7, 1.16 (fires), 0.9 -- all inside the rect window
    # neuron 1: u = 1.2 (fires), 0.3, 0.44 -- the last two outside the rect window, inside the triangle
    cols = [[0.7, 0.6, 0.9], [1.2, 0.3, 0.2]]
    Ws = [[0.3, -1.1, 0.8], [-0.6, 0.5, 1.3]]
    c = torch.tensor(cols, dtype=F64).T.contiguous().requires_grad_(True)  # [3, 2]
    W = torch.tensor(Ws, dtype=F64).T
    out = R.stbp_forward(
        c,
        LifParams(tau_m=5.0, tau_s=2.0, threshold=1.0, output=output),
        STBP(surrogate=surrogate, alpha=None, detach_reset=detach_reset),
    )
    (W * out).sum().backward()
    expected = torch.tensor(
        [_bptt_3steps(cols[n], Ws[n], output, surrogate, detach_reset) for n in range(2)], dtype=F64
    ).T
    assert torch.allclose(c.grad, expected, rtol=0, atol=1e-14), (c.grad, expected)
    assert (expected != 0).sum() >= 3
    # lif(method="stbp") is the same thing
    c2 = c.detach().clone().requires_grad_(True)
    o2 = R.lif(c2, output=output, method="stbp", surrogate=surrogate, detach_reset=detach_reset)
    (W * o2).sum().backward()
    assert torch.equal(c2.grad, c.grad)


def test_stbp_reset_detach_changes_gradient():
    c = torch.tensor([[0.7], [0.6], [0.9]], dtype=F64)
    grads = []
    for detach in (True, False):
        cc = c.clone().requires_grad_(True)
        R.stbp_forward(
            cc,
            LifParams(tau_m=5.0, tau_s=2.0, threshold=1.0, output="psc"),
            STBP(surrogate="rect", alpha=None, detach_reset=detach),
        ).sum().backward()
        grads.append(cc.grad)
    assert not torch.allclose(grads[0], grads[1])


def test_stbp_surrogate_alpha():
    u = torch.tensor([0.55, 0.8, 1.0, 1.3, 2.0], dtype=F64)
    assert R.surrogate_grad(u, 1.0, "rect", 0.5).tolist() == [0.0, 2.0, 2.0, 0.0, 0.0]
    assert R.surrogate_grad(u, 1.0, "rect").tolist() == [1.0, 1.0, 1.0, 1.0, 0.0]
    assert torch.allclose(R.surrogate_grad(u, 1.0, "triangle", 0.5), torch.tensor([0.2, 1.2, 2.0, 0.8, 0.0], dtype=F64))
    k = 2.0
    sig = torch.sigmoid(k * (u - 1.0))
    assert torch.allclose(R.surrogate_grad(u, 1.0, "sigmoid", k), k * sig * (1 - sig))
    assert R.surrogate_grad(torch.tensor([1.0], dtype=F64), 1.0, "sigmoid").item() == 1.0  # 4 * 0.5 * 0.5
    assert {k: R.SURROGATE_DEFAULT_ALPHA[k] for k in ("rect", "triangle", "sigmoid", "atan", "fast_sigmoid")} == {
        "rect": 1.0,
        "triangle": 1.0,
        "sigmoid": 4.0,
        "atan": 2.0,
        "fast_sigmoid": 25.0,
    }


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
@pytest.mark.parametrize("output", ["psc", "spike"])
def test_stbp_forward_bitwise_equals_lif_forward(dtype, output):
    c, _ = _inputs(16, (4, 5), 1.0, seed=5)
    c[3, 0, 0] = 1.0  # a tie
    c[0, 1, 1] = -0.0
    c = c.to(dtype)
    for detach in (True, False):
        a = R.stbp_forward(
            c,
            LifParams(tau_m=5.0, tau_s=2.0, threshold=1.0, output=output),
            STBP(surrogate="sigmoid", alpha=None, detach_reset=detach),
        )
        b = R.lif_forward(c, LifParams(tau_m=5.0, tau_s=2.0, threshold=1.0, output=output))
        assert a.dtype == dtype
        assert torch.equal(a, b)


# ------------------------------------------------------------------------------------------------------------------
# TSSL-BP
# ------------------------------------------------------------------------------------------------------------------
def _tssl_scalar(c: list[float], G: list[float], tau_m: float, tau_s: float, thr: float) -> tuple[list[float], dict]:
    """Literal scalar transcription of the released TSSL-BP backward (stonezwr/TSSL-BP functions/tsslbp.py at its
    head, with `partial_u = clamp(-1/delta_u, -8, 0) * out`) on one neuron, with this project's forward (u >= thr
    fires). Also reports which branches were taken."""
    T = len(c)
    theta_m = 1.0 / tau_m
    # forward, keeping u (pre-reset), s, the membrane update du and the PSC a
    u, s, du, a = [], [], [], []
    mem, syn = 0.0, 0.0
    for t in range(T):
        upd = (-theta_m) * mem + c[t]
        m = mem + upd
        fired = 1.0 if m >= thr else 0.0
        u.append(m)
        s.append(fired)
        du.append(upd)
        mem = m * (1 - fired)
        syn = (1 - 1 / tau_s) * syn + fired / tau_s
        a.append(syn)
    sig = [(1 / tau_s) * (1 - 1 / tau_s) ** k for k in range(T)]
    grad = [0.0] * T
    info = {"fallback": [], "theta_nonzero_used": [], "gated": []}
    theta = 0.0
    for t in range(T - 1, -1, -1):
        pu = min(max(-1.0 / du[t], -8.0), 0.0)
        if s[t] == 0 and pu != 0 and a[t] >= 1 / (4 * tau_s):
            info["gated"].append(t)  # where the gating changes the output
        pu = pu * s[t]  # released head: "* out"
        gt = 0.0
        for k in range(T - t):
            gt += (-sig[k] / tau_s) * pu * G[t + k] * tau_s
        if t != T - 1:
            if theta != 0:
                info["theta_nonzero_used"].append(t)
            gt += theta * u[t] * (-theta_m) * pu
            gt += theta * (1 - theta_m) * (1 - s[t])
        theta = gt * s[t] + theta * (1 - s[t]) * (1 - theta_m)
        x = min(max((thr - u[t]) / 0.2, -8.0), 8.0)
        f = math.exp(x) / ((1 + math.exp(x)) ** 2 * 0.2)
        ga = sum(sig[k] * G[t + k] for k in range(T - t)) * f
        if a[t] < 1 / (4 * tau_s):
            grad[t] = ga
            info["fallback"].append(t)
        else:
            grad[t] = gt
    return grad, info


def test_tssl_backward_hand_case():
    tau_m, tau_s, thr = 5.0, 2.0, 1.0
    # A: u = 0.5, 1.1 (fire), 1.3 (fire); a = 0, .5, .75  -> t = 0 warm-up fallback, theta != 0 used at t = 1
    # B: u = 1.2 (fire), 0.4, 1.22 (fire); a = .5, .25, .625 -> gt everywhere; at t = 1 s = 0 and -1/du = -2.5,
    #    which the "* s[t]" gating zeroes, so only the leak term theta*lam*(1-s) is left
    # C: du = 0.05 (pu clamps to -8), du = -0.31 (pu = 0), then fires: a = 0, 0, .5
    cols = [[0.5, 0.7, 1.3], [1.2, 0.4, 0.9], [0.05, -0.3, 1.5]]
    Gs = [[0.3, -0.5, 0.8], [-0.4, 0.9, 0.6], [0.7, 0.2, -0.3]]
    c = torch.tensor(cols, dtype=F64).T.contiguous()
    G = torch.tensor(Gs, dtype=F64).T.contiguous()
    _, s, a = R.lif_states(c, LifParams(tau_m=tau_m, tau_s=tau_s, threshold=thr))
    assert s.T.tolist() == [[0, 1, 1], [1, 0, 1], [0, 0, 1]]
    assert a.T.tolist() == [[0, 0.5, 0.75], [0.5, 0.25, 0.625], [0, 0, 0.5]]

    got = R.tssl_backward(G, c, LifParams(tau_m=tau_m, tau_s=tau_s, threshold=thr))
    infos = []
    for n in range(3):
        exp, info = _tssl_scalar(cols[n], Gs[n], tau_m, tau_s, thr)
        infos.append(info)
        assert got[:, n].tolist() == pytest.approx(exp, rel=1e-13, abs=1e-15), (n, got[:, n], exp)
    # the case exercises what it claims to
    assert 0 in infos[0]["fallback"] and 1 in infos[0]["theta_nonzero_used"]
    assert infos[1]["fallback"] == [] and 1 in infos[1]["gated"] and 0 in infos[1]["theta_nonzero_used"]
    assert infos[2]["fallback"] == [1, 0]

    # hand check of one number: neuron A, t = 2 (last step, fires, a = .75 >= 1/8 -> inter term only):
    # du = 1.3, pu = -1/1.3, gt = (-sig0/tau_s) * pu * G2 * tau_s = -(0.5) * (-1/1.3) * 0.8
    assert got[2, 0].item() == pytest.approx(0.5 * 0.8 / 1.3, rel=1e-14)
    # neuron A, t = 0 (fallback): ga = (sig0 G0 + sig1 G1 + sig2 G2) f(0.5), f from x = (1 - 0.5)/0.2 = 2.5
    f = math.exp(2.5) / ((1 + math.exp(2.5)) ** 2 * 0.2)
    assert got[0, 0].item() == pytest.approx((0.5 * 0.3 + 0.25 * -0.5 + 0.125 * 0.8) * f, rel=1e-14)
    # neuron B, t = 1 (no spike, gated): grad = theta * lam with theta = gt at t = 2, where du = 0.9 - 0.4/5 = 0.82
    # and gt = -(0.5) * (-1/0.82) * 0.6; the ungated code (08ff1d7) would add -pu * S = 2.5 * (0.5*0.9 + 0.25*0.6)
    assert got[1, 1].item() == pytest.approx(0.5 * 0.6 / 0.82 * 0.8, rel=1e-14)
    # under strict firing a tie is silent: the same numbers where no u equals the threshold
    torch.testing.assert_close(
        R.tssl_backward(G, c, LifParams(tau_m=tau_m, tau_s=tau_s, threshold=thr, strict_threshold=True)),
        got,
        rtol=0,
        atol=0,
    )


# ------------------------------------------------------------------------------------------------------------------
# lif(): autograd wiring
# ------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["na", "tssl"])
def test_lif_autograd_wiring(method):
    c, g = _inputs(6, (2, 3), 1.0, seed=9)
    cc = c.clone().requires_grad_(True)
    out = R.lif(cc, method=method, **(dict(dist_power=1, clip=5.0) if method == "na" else {}))
    assert torch.equal(out.detach(), R.lif_forward(c, LifParams(tau_m=5.0, tau_s=2.0, threshold=1.0)))
    out.backward(g)
    if method == "na":
        exp = R.na_backward(
            g,
            c,
            LifParams(tau_m=5.0, tau_s=2.0, threshold=1.0, output="psc"),
            NA(first_order="paper", dist_power=1, clip=5.0),
        )
    else:
        exp = R.tssl_backward(g, c, LifParams(tau_m=5.0, tau_s=2.0, threshold=1.0))
    assert torch.equal(cc.grad, exp)


def test_lif_na_spike_output_and_errors():
    c, g = _inputs(5, (3,), 1.0, seed=10)
    cc = c.clone().requires_grad_(True)
    out = R.lif(cc, output="spike")
    out.backward(g)
    assert torch.equal(cc.grad, R.na_backward(g, c, LifParams(tau_m=5.0, tau_s=2.0, threshold=1.0, output="spike")))
    with pytest.raises(ValueError):
        R.lif(c, method="tssl", output="spike")
    with pytest.raises(ValueError):
        R.lif(c, method="bogus")
    with pytest.raises(ValueError):
        R.lif_forward(c, LifParams(tau_m=5.0, tau_s=2.0, threshold=1.0, output="voltage"))
