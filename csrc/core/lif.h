// The LIF neuron of every rule: its configuration and its dynamics (eq. 1-4, §2; the neuron options of §9).
//
// Layout: a neuron's T values live at ptr[t * stride], t = 0..T-1 (time-first [T, N] storage, stride = N).
// All indexing is int64. `S` is the storage type (half/bf16/float/double); `acc_t` the compute type (float for
// half/bf16/float, double for double). Equation numbers refer to the NA paper (Yang et al., ICML 2021); section
// numbers (§) to docs/algorithm.md.
//
// Coordinates. With a hard reset to v_reset = vr the kernels run the neuron in the shifted state w = v - vr:
// u - vr = lam (v - vr) + beta c, a spike when w >= threshold - vr, and the reset lands on w = 0. That is the
// paper's neuron (reset to 0) with threshold' = threshold - vr, so one set of loops serves every vr, vr = 0 is the
// paper's arithmetic to the bit, and every rule sees the shift only through LifCoef::thr. The outputs (spikes, PSC)
// and the gradients do not depend on the coordinates. The soft reset (v_reset = None, spikingjelly's
// v = u - threshold on a spike) is a second reset policy, a template parameter of every loop (Reset).
#pragma once

#include <type_traits>

#include "lanes.h"

namespace na {

// Plain data passed from the bindings to the kernels (host side: doubles; LifCoef converts once per launch).
struct LifConfig {
  double tau_m;      // >= 1 or +inf (the IF neuron): leak lam = 1 - 1/tau_m
  double tau_s;      // >= 1: PSC decay kappa = 1 - 1/tau_s
  double threshold;  // the firing threshold
  double v_reset;    // hard reset value (ignored when soft); threshold > v_reset
  bool soft;         // soft reset: v = u - threshold on a spike, v starts at 0
  bool decay_input;  // u = lam v + c / tau_m (spikingjelly's decay_input=True) instead of lam v + c
  bool strict;       // fire on u > threshold (the released code's `mem > threshold`) instead of u >= threshold
  bool psc;          // output = PSC a (true) or spikes s (false)
};

enum class Reset : int { Hard = 0, Soft = 1 };

}  // namespace na

namespace na {
NA_ISA_BEGIN

// `thr` is the threshold in the kernels' coordinates (threshold - v_reset under a hard reset, see the file
// comment): the MP-distance d = thr - u, the state a cancelled spike leaves, the soft reset's step. `fire` is the
// value the spike test u >= fire compares with: thr itself, or under `strict` the next acc_t above it, since for
// floats u > thr exactly when u >= nextafter(thr, +inf): one comparison, no branch in the loops. `beta` scales the
// input (1, or 1/tau_m under decay_input; x * 1 is exact, so the default keeps the paper's bits) and, by the chain
// rule, every gradient w.r.t. c.
template <typename acc_t>
struct LifCoef {
  acc_t lam, kappa, inv_tau_s, thr, fire, tau_m, beta;
  bool strict, psc;
  explicit LifCoef(const LifConfig& c)
      : lam(static_cast<acc_t>(1.0 - 1.0 / c.tau_m)),
        kappa(static_cast<acc_t>(1.0 - 1.0 / c.tau_s)),
        inv_tau_s(static_cast<acc_t>(1.0 / c.tau_s)),
        thr(static_cast<acc_t>(c.soft ? c.threshold : c.threshold - c.v_reset)),
        fire(c.strict ? std::nextafter(thr, std::numeric_limits<acc_t>::infinity()) : thr),
        tau_m(static_cast<acc_t>(c.tau_m)),
        beta(static_cast<acc_t>(c.decay_input ? 1.0 / c.tau_m : 1.0)),
        strict(c.strict),
        psc(c.psc) {}
};

// The state after step t's spike test: the reset (eq. 4; hard: to 0 in the shifted coordinates; soft: minus the
// threshold) where s fired, u itself where it did not.
template <Reset R, typename V>
NA_HD V after_spike(typename Lanes<V>::mask s, V u, V thr) {
  using L = Lanes<V>;
  if (R == Reset::Hard) return L::select(s, L::splat(0), u);
  return L::select(s, u - thr, u);
}

// One step (eq. 1-2, §2): `v` is the post-reset potential carried between steps, `x` the scaled input beta c[t];
// returns the spike and writes the pre-reset potential u (the one compared with the threshold).
template <Reset R, typename V>
NA_HD typename Lanes<V>::mask lif_step(V& v, V x, V lam, V fire, V thr, V& u) {
  u = lam * v + x;
  const typename Lanes<V>::mask s = u >= fire;
  v = after_spike<R>(s, u, thr);
  return s;
}

// Non-finite inputs in a backward (§10): `x - x` is exactly 0 for a finite x and NaN for +-inf and NaN, so the test is
// one subtraction and one comparison per lane (no isfinite, which the CPU packs lack).
template <typename V>
NA_HD typename Lanes<V>::mask nonfinite(V x) {
  return x - x != Lanes<V>::splat(0);
}

// A backward's gradient at step t under §10: NaN where `bad` holds (the neuron's input c has a non-finite value
// anywhere, or the incoming gradient has one at a step >= t: one mask, set by the forward pass and or-ed with
// nonfinite(G[t]) on the way back), the rule's value elsewhere.
template <typename V>
NA_HD V nonfinite_guard(typename Lanes<V>::mask bad, V value) {
  using L = Lanes<V>;
  return L::select(bad, L::splat(std::numeric_limits<typename L::scalar>::quiet_NaN()), value);
}

// Forward over T for one neuron (or one pack): writes the PSC a (eq. 3) or the spikes s.
template <Reset R, typename S, typename acc_t, typename V = acc_t>
NA_HD void lif_forward_neuron(const S* c, S* out, int64_t T, int64_t stride, const LifCoef<acc_t>& k) {
  using L = Lanes<V>;
  const V lam = L::splat(k.lam), fire = L::splat(k.fire), thr = L::splat(k.thr), kappa = L::splat(k.kappa);
  const V beta = L::splat(k.beta), jump = L::splat(k.inv_tau_s), zero = L::splat(0), one = L::splat(1);
  V v = zero, a = zero, u;
  for (int64_t t = 0; t < T; ++t) {
    const auto s = lif_step<R>(v, L::load(c + t * stride) * beta, lam, fire, thr, u);
    a = kappa * a + L::select(s, jump, zero);
    L::store(out + t * stride, k.psc ? a : L::select(s, one, zero));
  }
}

// Calls f(std::integral_constant<Reset, R>{}) for the reset policy `soft` (host side): the one runtime branch per
// launch that turns the reset into a compile-time parameter of the loops. `Rule::kSoftReset = false` (a rule
// defined for a reset to rest only, refused by the bindings before any launch) makes no soft instantiation.
template <bool kSoftToo = true, typename F>
inline void with_reset(bool soft, const F& f) {
  if constexpr (kSoftToo) {
    if (soft) {
      f(std::integral_constant<Reset, Reset::Soft>{});
      return;
    }
  }
  f(std::integral_constant<Reset, Reset::Hard>{});
}

NA_ISA_END
}  // namespace na
