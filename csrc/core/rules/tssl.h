// TSSL-BP backward (§6), the released functions/tsslbp.py per neuron, and the rule's traits (TsslRule). Same value
// as the released code in another form (one reverse filter for its O(T^2) sums; its spike-gated
// d t_spike / d u = clamp(-1/du, -8, 0)); defined for a reset to rest (the soft reset is refused by the bindings).
// Pass 1 stores u[t] in `wu` and the warm-up slope (or -1 after it) in `wa`; pass 2 reads wu[t], wu[t-1], wa[t]
// before writing grad[t] (so `grad` may alias `wu`). The differences from the released code and the neuron
// options: docs/kernels.md.
#pragma once

#include "../lif.h"

namespace na {

struct TsslConfig {};  // no options

}  // namespace na

namespace na {
NA_ISA_BEGIN

// f(u) of the warm-up fallback: exp(x) / ((1 + exp(x))^2 * 0.2), x = clamp((thr - u) / 0.2, -8, 8).
template <typename V>
NA_HD V tssl_warmup_slope(V u, V thr) {
  using L = Lanes<V>;
  using A = typename L::scalar;
  const V width = L::splat(A(0.2)), lo = L::splat(-8), hi = L::splat(8), one = L::splat(1);
  V x = (thr - u) / width;
  x = L::select(x > hi, hi, L::select(x < lo, lo, x));
  const V e = L::exp(x);
  return e / ((one + e) * (one + e) * width);
}

// kGuard = false: the caller knows every c, G and lam of this neuron finite (and beta c with them), so the §10
// masks are all false and are not computed (the same bits; the CPU's finite blocks, as for STBP).
template <typename S, typename acc_t, typename V = acc_t, bool kGuard = true>
NA_HD void tssl_backward_neuron(const S* c, const S* g, acc_t* wu, acc_t* wa, S* grad, int64_t T, int64_t stride,
                                int64_t wstride, const LifCoef<acc_t>& lif) {
  using L = Lanes<V>;
  const V lam = decay_of<V>(lif), thr = L::splat(lif.thr), fire = L::splat(lif.fire), kappa = L::splat(lif.kappa);
  const V inv_tau_s = L::splat(lif.inv_tau_s), beta = input_scale_of(lif, lam);
  const V zero = L::splat(0), one = L::splat(1);
  // 1/tau_m of the released formulas: fixed, or 1 - lam for a learnable decay (§12)
  const bool learn = lif.lam_n != nullptr;
  const V tau_m = L::splat(lif.tau_m), inv_tau_m = one - lam;
  V v = zero, a = zero, u;
  auto bad = nonfinite(lam);  // §10: a non-finite lam or c anywhere, or a G at a step >= t
  // The warm-up fallback's slope f(u[t]) where a[t] < 1 / (4 tau_s), -1 (no slope is negative) where not: computed
  // here, off pass 2's dependency chain, and only where some lane of the pack is still warming up.
  const V warm = L::splat(lif.inv_tau_s * acc_t(0.25)), not_warm = L::splat(-1);
  for (int64_t t = 0; t < T; ++t) {
    const V xt = L::load(c + t * stride) * beta;
    if (kGuard) bad = bad | nonfinite(xt);
    const auto s = lif_step<Reset::Hard>(v, xt, lam, fire, thr, u);
    a = kappa * a + L::select(s, inv_tau_s, zero);
    const auto warming = a < warm;
    L::store(wu + t * wstride, u);
    L::store(wa + t * wstride, L::any(warming) ? L::select(warming, tssl_warmup_slope(u, thr), not_warm) : not_warm);
  }
  const V lo = L::splat(-8), minus_inv_tau_m = learn ? -inv_tau_m : L::splat(-acc_t(1) / lif.tau_m);
  DecayGrad<V> dlam(lif);
  V Sg = zero, theta = zero;
  for (int64_t t = T - 1; t >= 0; --t) {
    const V ut = L::load(wu + t * wstride);
    const V slope = L::load(wa + t * wstride);
    const auto s = ut >= fire;
    V v_prev = zero;  // post-reset potential v[t-1]
    if (t > 0) {
      const V up = L::load(wu + (t - 1) * wstride);
      v_prev = L::select(up >= fire, zero, up);
    }
    const V ct = L::load(c + t * stride);
    // d t_spike / d u, gated by s[t]: its divisions only where some lane of the pack fired (exactly the same
    // values: the gate gives +0 elsewhere either way)
    V pu = zero;
    if (L::any(s)) {
      const V du = ct * beta - (learn ? v_prev * inv_tau_m : v_prev / tau_m);  // the membrane update
      pu = L::splat(-1) / du;
      pu = L::select(s, L::select(pu > zero, zero, L::select(pu < lo, lo, pu)), zero);
    }
    const V G = L::load(g + t * stride);
    if (kGuard) bad = bad | nonfinite(G);
    Sg = G * inv_tau_s + kappa * Sg;
    V gt = -pu * Sg;  // inter-neuron term
    if (t < T - 1) gt = gt + theta * ut * minus_inv_tau_m * pu + L::select(s, zero, theta * lam);
    theta = L::select(s, gt, theta * lam);
    // the rule's dL/du[t]: the warm-up fallback where a[t] < 1 / (4 tau_s) (a nan slope, from a nan u, is one too)
    V gu = gt;
    const auto warming = (slope >= zero) | (slope != slope);
    if (L::any(warming)) gu = L::select(warming, Sg * slope, gt);
    if (dlam.on) dlam.add(gu, v_prev, ct);
    L::store(grad + t * stride, kGuard ? nonfinite_guard(bad, gu * beta) : gu * beta);
  }
  dlam.store(lif, bad);
}

struct TsslRule {
  using Config = TsslConfig;
  template <typename acc_t>
  struct Coef {
    explicit Coef(const TsslConfig&) {}
  };
  static constexpr int kCpuPlanes = 2;  // u, a
  static constexpr bool kOnChip = false;
  static constexpr int64_t kOnChipMaxT = 0;
  static constexpr int kCudaPlanes = 2;  // u (which the gradient can hold), a
  static constexpr bool kGradHoldsPlane0 = true;
  static constexpr bool kSoftReset = false;  // refused by the bindings (TsslOp); no soft instantiation is made
  static constexpr bool kGuardFree = true;   // neuron<..., kGuard = false> exists (the CPU's finite blocks)

  template <Reset R, int B, typename S, typename acc_t, typename V = acc_t, bool kGuard = true>
  static NA_HD void neuron(const S* c, const S* g, acc_t* w0, acc_t* w1, S* grad, int64_t T, int64_t stride,
                           int64_t wstride, const LifCoef<acc_t>& lif, const Coef<acc_t>&) {
    static_assert(B == 0, "TSSL-BP has no on-chip variant");
    static_assert(R == Reset::Hard, "TSSL-BP is defined for a reset to rest (kSoftReset = false)");
    tssl_backward_neuron<S, acc_t, V, kGuard>(c, g, w0, w1, grad, T, stride, wstride, lif);
  }
};

NA_ISA_END
}  // namespace na
