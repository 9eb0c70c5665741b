// Per-neuron math of the LIF forward and of every backward rule, written once.
//
// Included by the CPU kernels (csrc/cpu) and the CUDA kernels (csrc/cuda), so the two backends can only
// differ by floating-point contraction order. No torch headers: nvcc compiles this anywhere.
//
// Layout: a neuron's T values live at ptr[t * stride], t = 0..T-1 (time-first [T, N] storage, stride = N).
// All indexing is int64. `scalar_t` is the storage type (half/bf16/float/double); `acc_t` is the compute type
// (float for half/bf16/float, double for double). Equation numbers refer to the NA paper (Yang et al., ICML
// 2021); section numbers (§) refer to docs/algorithm.md.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <math.h>

#if defined(__CUDACC__)
#define NA_HD __host__ __device__ __forceinline__
#else
#define NA_HD inline
#endif

namespace na {

// ---------------------------------------------------------------------------------------------------------
// Configuration passed from the bindings to the kernels (plain data, host side: doubles, converted to acc_t
// once per launch by the *Coef constructors below).

enum class Surrogate : int { Rect = 0, Triangle = 1, Sigmoid = 2, Atan = 3, FastSigmoid = 4 };

struct LifConfig {
  double tau_m;      // >= 1 or +inf (the IF neuron), leak lam = 1 - 1/tau_m
  double tau_s;      // >= 1, PSC decay kappa = 1 - 1/tau_s
  double threshold;  // > 0
  bool strict;       // fire on u > threshold (the released code's `mem > threshold`) instead of u >= threshold
  bool psc;          // output = PSC a (true) or spikes s (false)
};

struct NaConfig {
  bool taylor;     // first_order="taylor" (weights from G) or "paper" (weights from e, §3.2)
  int dist_power;  // k in phi(d) = clamp(d^-k, -b, b), positive odd
  double clip;     // b
};

struct StbpConfig {
  Surrogate surrogate;
  double alpha;       // rect width a, triangle gamma, sigmoid slope k, atan alpha, fast_sigmoid slope
  bool detach_reset;  // treat the reset factor (1 - s) as a constant
};

// `thr` is the threshold (the MP-distance d = thr - u and the state a cancelled spike leaves); `fire` is the value
// the spike test u >= fire compares with: thr itself, or under `strict` the next acc_t above it, since for floats
// u > thr exactly when u >= nextafter(thr, +inf). One comparison serves both rules, with no branch in the loops.
// NA's phi(0) (§3.4) depends on `strict` too: see na_phi.
template <typename acc_t>
struct LifCoef {
  acc_t lam, kappa, inv_tau_s, thr, fire, tau_m;
  bool strict, psc;
  explicit LifCoef(const LifConfig& c)
      : lam(static_cast<acc_t>(1.0 - 1.0 / c.tau_m)),
        kappa(static_cast<acc_t>(1.0 - 1.0 / c.tau_s)),
        inv_tau_s(static_cast<acc_t>(1.0 / c.tau_s)),
        thr(static_cast<acc_t>(c.threshold)),
        fire(c.strict ? std::nextafter(static_cast<acc_t>(c.threshold), std::numeric_limits<acc_t>::infinity())
                      : static_cast<acc_t>(c.threshold)),
        tau_m(static_cast<acc_t>(c.tau_m)),
        strict(c.strict),
        psc(c.psc) {}
};

template <typename acc_t>
struct NaCoef {
  bool taylor;
  int k;
  acc_t b;
  explicit NaCoef(const NaConfig& c) : taylor(c.taylor), k(c.dist_power), b(static_cast<acc_t>(c.clip)) {}
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

// expf/exp exist with these names in host C and in CUDA device code; std::exp is not usable on the device.
NA_HD float na_exp(float x) { return expf(x); }
NA_HD double na_exp(double x) { return exp(x); }

// ---------------------------------------------------------------------------------------------------------
// Lanes: every per-neuron function below is written once for a value type V that is either the compute scalar
// (float/double: one neuron per CUDA thread, V = acc_t, masks are bool) or a SIMD pack of neighbouring neurons
// (the CPU kernels, csrc/cpu/lanes_cpu.h, specialise Lanes<> for GCC vector types). Control flow that depends on
// data is written with select() and any(), so the same source serves both: a pack keeps iterating while any of
// its lanes needs to.
template <typename V>
struct Lanes {
  using scalar = V;
  using mask = bool;
  static NA_HD V splat(scalar x) { return x; }
  static NA_HD V select(mask m, V a, V b) { return m ? a : b; }
  static NA_HD bool any(mask m) { return m; }
  static NA_HD mask and_not(mask a, mask b) { return a && !b; }
  static NA_HD V exp(V x) { return na_exp(x); }
  template <typename S>
  static NA_HD V load(const S* p) { return static_cast<V>(*p); }
  template <typename S>
  static NA_HD void store(S* p, V v) { *p = static_cast<S>(v); }
};

// ---------------------------------------------------------------------------------------------------------
// LIF dynamics (eq. 1-4, §2). `v` is the post-reset potential carried between steps; returns the spike and
// writes the pre-reset potential u (the one compared with the threshold). `fire` is LifCoef::fire: u >= fire is
// H(u - threshold) with H(0) = 1 (the paper), or u > threshold under `strict` (the released code).

template <typename V>
NA_HD typename Lanes<V>::mask lif_step(V& v, V c, V lam, V fire, V& u) {
  using L = Lanes<V>;
  u = lam * v + c;
  const typename L::mask s = u >= fire;
  v = L::select(s, L::splat(0), u);
  return s;
}

// Forward over T for one neuron (or one pack): writes PSC a (eq. 3) or spikes s.
template <typename S, typename acc_t, typename V = acc_t>
NA_HD void lif_forward_neuron(const S* c, S* out, int64_t T, int64_t stride, const LifCoef<acc_t>& k) {
  using L = Lanes<V>;
  const V lam = L::splat(k.lam), fire = L::splat(k.fire), kappa = L::splat(k.kappa);
  const V jump = L::splat(k.inv_tau_s), zero = L::splat(0), one = L::splat(1);
  V v = zero, a = zero, u;
  for (int64_t t = 0; t < T; ++t) {
    const auto s = lif_step(v, L::load(c + t * stride), lam, fire, u);
    a = kappa * a + L::select(s, jump, zero);
    L::store(out + t * stride, k.psc ? a : L::select(s, one, zero));
  }
}

// ---------------------------------------------------------------------------------------------------------
// NA backward with SNS (§3, eq. 13, 16, 17): the per-neuron algorithm is in na_backward.h; its phi is here.

// phi(d) = clamp(d^-k, -b, b) for odd k; phi(0) = -b when u == threshold fires (the flip lowers u), +b under
// strict firing (u == threshold is silent, so the flip raises it).
// Integer power by repeated multiplication keeps CPU and CUDA on the same operation order; an underflow of
// d^k to a signed zero gives a signed infinity that the clamp turns into the right bound. NaN stays NaN.
template <typename V, typename acc_t>
NA_HD V na_phi(V d, int k, acc_t b_, bool strict) {
  using L = Lanes<V>;
  const V b = L::splat(b_), zero = L::splat(0);
  V dk = d;
  for (int i = 1; i < k; ++i) dk = dk * d;
  V r = L::splat(1) / dk;
  r = L::select(r > b, b, L::select(r < -b, -b, r));
  return L::select(d == zero, strict ? b : -b, r);
}

// ---------------------------------------------------------------------------------------------------------
// STBP backward (§5): BPTT through the same forward with dH/du replaced by a surrogate h(u).

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

// ---------------------------------------------------------------------------------------------------------
// TSSL-BP backward (§6), the released functions/tsslbp.py per neuron. Two deliberate differences in *form*:
// the released O(T^2) sums sum_k sig[k] G[t+k] with sig[k] = kappa^k / tau_s are one reverse filter
// S[t] = G[t] / tau_s + kappa S[t+1] (same value, another summation order), and the forward is ours (u >= thr,
// or u > thr under strict firing as in the released code). As in the head of the released code (commits c1c030c
// and ca5da51: `partial_u = torch.clamp(-1/delta_u[..., t], -8, 0) * out`), d t_spike / d u = clamp(-1/du, -8, 0)
// is gated by the spike s[t]: a step without a spike has no spike time to move.
// Pass 1 stores u[t] in `wu` and a[t] in `wa`; pass 2 runs in reverse and reads wu[t], wu[t-1] and wa[t]
// before writing grad[t] (so `grad` may alias `wu`).

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

template <typename S, typename acc_t, typename V = acc_t>
NA_HD void tssl_backward_neuron(const S* c, const S* g, acc_t* wu, acc_t* wa, S* grad, int64_t T, int64_t stride,
                                int64_t wstride, const LifCoef<acc_t>& lif) {
  using L = Lanes<V>;
  const V lam = L::splat(lif.lam), thr = L::splat(lif.thr), fire = L::splat(lif.fire), kappa = L::splat(lif.kappa);
  const V inv_tau_s = L::splat(lif.inv_tau_s), tau_m = L::splat(lif.tau_m), zero = L::splat(0);
  V v = zero, a = zero, u;
  for (int64_t t = 0; t < T; ++t) {
    const auto s = lif_step(v, L::load(c + t * stride), lam, fire, u);
    a = kappa * a + L::select(s, inv_tau_s, zero);
    L::store(wu + t * wstride, u);
    L::store(wa + t * wstride, a);
  }
  const V warm = L::splat(lif.inv_tau_s * acc_t(0.25));  // 1 / (4 tau_s)
  const V lo = L::splat(-8), minus_inv_tau_m = L::splat(-acc_t(1) / lif.tau_m);
  V Sg = zero, theta = zero;
  for (int64_t t = T - 1; t >= 0; --t) {
    const V ut = L::load(wu + t * wstride);
    const V at = L::load(wa + t * wstride);
    const auto s = ut >= fire;
    V v_prev = zero;  // post-reset potential v[t-1]
    if (t > 0) {
      const V up = L::load(wu + (t - 1) * wstride);
      v_prev = L::select(up >= fire, zero, up);
    }
    const V du = L::load(c + t * stride) - v_prev / tau_m;  // the membrane update
    V pu = L::splat(-1) / du;
    pu = L::select(s, L::select(pu > zero, zero, L::select(pu < lo, lo, pu)), zero);  // * s[t]
    Sg = L::load(g + t * stride) * inv_tau_s + kappa * Sg;
    V gt = -pu * Sg;  // inter-neuron term
    if (t < T - 1) gt = gt + theta * ut * minus_inv_tau_m * pu + L::select(s, zero, theta * lam);
    theta = L::select(s, gt, theta * lam);
    const V ga = Sg * tssl_warmup_slope(ut, thr);
    L::store(grad + t * stride, L::select(at < warm, ga, gt));
  }
}

}  // namespace na
