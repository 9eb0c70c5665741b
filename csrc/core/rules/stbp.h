// STBP backward (§5): BPTT through the same forward with dH/du replaced by a surrogate h(u - threshold), and the
// rule's traits (StbpRule). Conventions of core/lif.h (shifted coordinates under a hard reset: u - threshold is
// the same number in both, and the reset's dv/ds = v_reset - u is -w).
#pragma once

#include <type_traits>

#include "../lif.h"
#include "surrogates.h"

namespace na {

struct StbpConfig {
  Surrogate surrogate;
  double alpha;       // the surrogate's width/slope (csrc/core/rules/surrogates.h)
  bool detach_reset;  // treat the spike in the reset as a constant (spikingjelly's spike_d)
};

}  // namespace na

namespace na {
NA_ISA_BEGIN

template <typename acc_t>
struct StbpCoef {
  Surrogate kind;
  acc_t p0, p1;  // the surrogate's constants (SurrogateMath<kind>::coef)
  bool detach_reset;
  explicit StbpCoef(const StbpConfig& c) : kind(c.surrogate), detach_reset(c.detach_reset) {
    double p[2] = {0.0, 0.0};
    surrogate_coef(c.surrogate, c.alpha, p);
    p0 = static_cast<acc_t>(p[0]);
    p1 = static_cast<acc_t>(p[1]);
  }
};

// h(u - thr) (§5). K >= 0: the surrogate Surrogate(K), fixed at compile time (the same operations as the runtime
// switch, K < 0); see StbpRule::neuron.
template <int K, typename V, typename acc_t>
NA_HD V stbp_surrogate(V u, V thr, const StbpCoef<acc_t>& s) {
  if constexpr (K < 0) {
    return surrogate_h(s.kind, u - thr, s.p0, s.p1);
  } else {
    return SurrogateMath<static_cast<Surrogate>(K)>::template h<V, acc_t>(u - thr, s.p0, s.p1);
  }
}

// Pass 1 stores u[t] in `w` (forward); pass 2 runs the adjoint in reverse, reading u[t] before writing
// grad[t] (so `grad` may alias `w`). v[t] = u[t] (1 - s[t]) (hard, shifted) or u[t] - thr s[t] (soft); under
// the after-leak resets u[t+1] = lam u[t] + x - sub s[t], so du[t+1]/du[t] = lam and du[t+1]/ds[t] = -sub (§11). With
// the membrane output (lif.mem) G is dL/du[t] itself. With a learnable decay (lif.glam_n) the reverse loop also
// sums dL/du[t] (v[t-1] - [decay_input] c[t]) (§12): at step t it adds dL/du[t+1] v[t] (u[t] is in hand).
// kGuard = false: the caller knows every c, G and lam of this neuron finite (and beta c with them), so the §10
// masks are all false and are not computed (the same bits, 7 fewer vector operations per step).
template <Reset R, typename S, typename acc_t, typename V = acc_t, bool kGuard = true, int K = -1>
NA_HD void stbp_backward_neuron(const S* c, const S* g, acc_t* w, S* grad, int64_t T, int64_t stride, int64_t wstride,
                                const LifCoef<acc_t>& lif, const StbpCoef<acc_t>& sg) {
  using L = Lanes<V>;
  const V lam = decay_of<V>(lif), thr = L::splat(lif.thr), fire = L::splat(lif.fire), kappa = L::splat(lif.kappa);
  const V inv_tau_s = L::splat(lif.inv_tau_s), beta = input_scale_of(lif, lam), zero = L::splat(0);
  const V sub = L::splat(lif.sub);
  V v = zero, r = zero, u;
  auto bad = nonfinite(lam);  // §10: a non-finite lam or c anywhere, or a G at a step >= t
  for (int64_t t = 0; t < T; ++t) {
    const V xt = L::load(c + t * stride) * beta;
    if (kGuard) bad = bad | nonfinite(xt);
    lif_step<R>(v, r, xt, lam, fire, thr, sub, u);
    L::store(w + t * wstride, u);
  }
  DecayGrad<V> dlam(lif);
  V ga = zero;       // dL/da[t], accumulated through a[t+1] = kappa a[t] + ...
  V gu_next = zero;  // dL/du[t+1]
  for (int64_t t = T - 1; t >= 0; --t) {
    const V ut = L::load(w + t * wstride);
    const auto s = ut >= fire;
    const V G = L::load(g + t * stride);
    if (kGuard) bad = bad | nonfinite(G);
    V gs = zero, gm = zero;  // dL/ds[t] through the output; dL/du[t] through the membrane output
    if (lif.psc) {
      ga = G + kappa * ga;
      gs = ga * inv_tau_s;
    } else if (lif.mem) {
      gm = G;
    } else {
      gs = G;
    }
    const V gv = lam * gu_next;  // dL/dv[t]
    V gu;
    if (R == Reset::Hard) {
      if (!sg.detach_reset) gs = gs - gv * ut;  // dv/ds = v_reset - u = -w
      gu = gs * stbp_surrogate<K>(ut, thr, sg) + L::select(s, zero, gv);
    } else if (R == Reset::Soft) {
      if (!sg.detach_reset) gs = gs - gv * thr;  // dv/ds = -threshold
      gu = gs * stbp_surrogate<K>(ut, thr, sg) + gv;
    } else {
      if (!sg.detach_reset) gs = gs - gu_next * sub;  // du[t+1]/ds[t] = -sub
      gu = gs * stbp_surrogate<K>(ut, thr, sg) + gv;
    }
    gu = gu + gm;
    if (dlam.on) {
      // dL/du[t+1] times v[t] (the state step t+1 was carried into: this step's u after its reset), and this
      // step's input term; v[-1] = 0 adds nothing for t = 0. No extra load: u[t] is in hand.
      dlam.add_state(gu_next, after_spike<R>(s, ut, thr));
      if (lif.decay_input) dlam.add_input(gu, L::load(c + t * stride));
    }
    L::store(grad + t * stride, kGuard ? nonfinite_guard(bad, gu * beta) : gu * beta);
    gu_next = gu;
  }
  dlam.store(lif, bad);
}

struct StbpRule {
  using Config = StbpConfig;
  template <typename acc_t>
  using Coef = StbpCoef<acc_t>;
  static constexpr int kCpuPlanes = 1;  // u
  static constexpr bool kOnChip = false;
  static constexpr int64_t kOnChipMaxT = 0;
  static constexpr int kCudaPlanes = 1;           // u ...
  static constexpr bool kGradHoldsPlane0 = true;  // ... which the gradient can hold (read before grad[t] is written)
  static constexpr bool kSoftReset = true;
  static constexpr bool kGuardFree = true;  // neuron<..., kGuard = false> exists (the CPU's finite blocks)

  template <Reset R, int B, typename S, typename acc_t, typename V = acc_t, bool kGuard = true>
  static NA_HD void neuron(const S* c, const S* g, acc_t* w0, acc_t*, S* grad, int64_t T, int64_t stride,
                           int64_t wstride, const LifCoef<acc_t>& lif, const StbpCoef<acc_t>& sg) {
    static_assert(B == 0, "STBP has no on-chip variant");
    if constexpr (std::is_same<typename Lanes<V>::mask, bool>::value) {
      stbp_backward_neuron<R, S, acc_t, V, kGuard>(c, g, w0, grad, T, stride, wstride, lif, sg);
    } else {
      // A SIMD pack's loop with the surrogate fixed: a switch in the loop cost a jump per step and kept its
      // constants in memory (spilled around the jump table). A CUDA thread keeps the one loop (code size).
      switch (sg.kind) {
#define NA_STBP_LOOP(E, name, alpha_min)                                                                           \
  case Surrogate::E:                                                                                               \
    return stbp_backward_neuron<R, S, acc_t, V, kGuard, static_cast<int>(Surrogate::E)>(c, g, w0, grad, T, stride, \
                                                                                        wstride, lif, sg);
        NA_SURROGATES(NA_STBP_LOOP)
#undef NA_STBP_LOOP
      }
    }
  }
};

NA_ISA_END
}  // namespace na
