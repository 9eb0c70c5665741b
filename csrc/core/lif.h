// The LIF neuron (eq. 1-4, §2): its configuration and the forward dynamics shared by every rule.
//
// Conventions (every header of csrc/core): a neuron's T values live at ptr[t * stride], t = 0..T-1 (time-first
// [T, N] storage, stride = N). All indexing is int64. `S`/`scalar_t` is the storage type (half/bf16/float/double);
// `acc_t` is the compute type (float for half/bf16/float, double for double). Equation numbers refer to the NA
// paper (Yang et al., ICML 2021); section numbers (§) refer to docs/algorithm.md. No torch headers: nvcc compiles
// these anywhere, and the CPU kernels (csrc/cpu) and the CUDA kernels (csrc/cuda) include the same code, so the two
// backends can only differ by floating-point contraction order.
#pragma once

#include "lanes.h"

namespace na {

// Configuration passed from the bindings to the kernels (plain data, host side: doubles, converted to acc_t
// once per launch by the *Coef constructors). Each rule's header (csrc/core/rules) adds its own pair.
struct LifConfig {
  double tau_m;      // >= 1 or +inf (the IF neuron), leak lam = 1 - 1/tau_m
  double tau_s;      // >= 1, PSC decay kappa = 1 - 1/tau_s
  double threshold;  // > 0
  bool strict;       // fire on u > threshold (the released code's `mem > threshold`) instead of u >= threshold
  bool psc;          // output = PSC a (true) or spikes s (false)
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

}  // namespace na
