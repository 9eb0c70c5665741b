// STBP (Wu et al. 2018; §5): BPTT through the LIF forward with dH/du replaced by a surrogate h(u).
//
// Conventions (every header of csrc/core): a neuron's T values live at ptr[t * stride], t = 0..T-1 (time-first
// [T, N] storage, stride = N). All indexing is int64. `S`/`scalar_t` is the storage type (half/bf16/float/double);
// `acc_t` is the compute type (float for half/bf16/float, double for double). Equation numbers refer to the NA
// paper (Yang et al., ICML 2021); section numbers (§) refer to docs/algorithm.md. No torch headers: nvcc compiles
// these anywhere, and the CPU kernels (csrc/cpu) and the CUDA kernels (csrc/cuda) include the same code, so the two
// backends can only differ by floating-point contraction order.
#pragma once

#include "../lif.h"

namespace na {

enum class Surrogate : int { Rect = 0, Triangle = 1, Sigmoid = 2, Atan = 3, FastSigmoid = 4 };

struct StbpConfig {
  Surrogate surrogate;
  double alpha;       // rect width a, triangle gamma, sigmoid slope k, atan alpha, fast_sigmoid slope
  bool detach_reset;  // treat the reset factor (1 - s) as a constant
};

template <typename acc_t>
struct StbpCoef {
  Surrogate kind;
  acc_t alpha, inv_alpha, half_alpha, inv_alpha_sq, half_pi_alpha;
  bool detach_reset;
  explicit StbpCoef(const StbpConfig& c)
      : kind(c.surrogate),
        alpha(static_cast<acc_t>(c.alpha)),
        inv_alpha(static_cast<acc_t>(1.0 / c.alpha)),
        half_alpha(static_cast<acc_t>(0.5 * c.alpha)),
        inv_alpha_sq(static_cast<acc_t>(1.0 / (c.alpha * c.alpha))),
        half_pi_alpha(static_cast<acc_t>(1.5707963267948966 * c.alpha)),
        detach_reset(c.detach_reset) {}
};

template <typename V, typename acc_t>
NA_HD V stbp_surrogate(V u, V thr, const StbpCoef<acc_t>& s) {
  using L = Lanes<V>;
  const V x = u - thr, zero = L::splat(0);
  switch (s.kind) {
    case Surrogate::Rect: {  // 1/a on |x| < a/2
      const V h = L::splat(s.half_alpha);
      return L::select(x < h, L::select(x > -h, L::splat(s.inv_alpha), zero), zero);
    }
    case Surrogate::Triangle: {  // max(0, g - |x|) / g^2
      const V m = L::splat(s.alpha) - L::select(x < zero, -x, x);
      return L::select(m > zero, m * L::splat(s.inv_alpha_sq), zero);
    }
    case Surrogate::Atan: {  // spikingjelly surrogate.ATan: (alpha/2) / (1 + (pi/2 alpha x)^2)
      const V y = L::splat(s.half_pi_alpha) * x;
      return L::splat(s.half_alpha) / (L::splat(1) + y * y);
    }
    case Surrogate::FastSigmoid: {  // snnTorch surrogate.fast_sigmoid: 1 / (slope |x| + 1)^2
      const V d = L::splat(s.alpha) * L::select(x < zero, -x, x) + L::splat(1);
      return L::splat(1) / (d * d);
    }
    default: {  // sigmoid: k sig (1 - sig) with sig = 1 / (1 + exp(-k x))
      const V k = L::splat(s.alpha), one = L::splat(1);
      const V sig = one / (one + L::exp(-(k * x)));
      return k * sig * (one - sig);
    }
  }
}

// Pass 1 stores u[t] in `w` (forward); pass 2 runs the adjoint in reverse, reading u[t] before writing
// grad[t] (so `grad` may alias `w`).
template <typename S, typename acc_t, typename V = acc_t>
NA_HD void stbp_backward_neuron(const S* c, const S* g, acc_t* w, S* grad, int64_t T, int64_t stride,
                                int64_t wstride, const LifCoef<acc_t>& lif, const StbpCoef<acc_t>& sg) {
  using L = Lanes<V>;
  const V lam = L::splat(lif.lam), thr = L::splat(lif.thr), fire = L::splat(lif.fire), kappa = L::splat(lif.kappa);
  const V inv_tau_s = L::splat(lif.inv_tau_s), zero = L::splat(0);
  V v = zero, u;
  for (int64_t t = 0; t < T; ++t) {
    lif_step(v, L::load(c + t * stride), lam, fire, u);
    L::store(w + t * wstride, u);
  }
  V ga = zero;       // dL/da[t], accumulated through a[t+1] = kappa a[t] + ...
  V gu_next = zero;  // dL/du[t+1]
  for (int64_t t = T - 1; t >= 0; --t) {
    const V ut = L::load(w + t * wstride);
    const auto s = ut >= fire;
    const V G = L::load(g + t * stride);
    V gs;  // dL/ds[t] through the output
    if (lif.psc) {
      ga = G + kappa * ga;
      gs = ga * inv_tau_s;
    } else {
      gs = G;
    }
    const V gv = lam * gu_next;  // dL/dv[t], v[t] = u[t] (1 - s[t])
    if (!sg.detach_reset) gs = gs - gv * ut;
    const V gu = gs * stbp_surrogate(ut, thr, sg) + L::select(s, zero, gv);
    L::store(grad + t * stride, gu);
    gu_next = gu;
  }
}

}  // namespace na
