// The LIF neuron of every rule: its configuration, the reset (one enum), one step and the forward (eq. 1-4, §2;
// the neuron options of §9, §11; the learnable decay of §12). A neuron's T values live at ptr[t * stride]; `S` is
// the storage type, `acc_t` the compute type (float, or double for double). A hard reset runs in the shifted
// coordinates w = v - v_reset, so every rule sees v_reset only through LifCoef::thr. Design notes:
// docs/kernels.md ("csrc/core/lif.h").
#pragma once

#include <type_traits>

#include "lanes.h"

namespace na {

// The reset (§9, §11), parsed once in the binding (csrc/op_args.h: v_reset and reset_mechanism): to v_reset
// (Hard), v = u - threshold on a spike (Soft), or snnTorch's threshold (SubtractAfter) / nothing (NoneAfter)
// subtracted one step later, after the leak. It is also the loops' template parameter: NoneAfter runs the
// SubtractAfter loops with nothing to subtract (LifCoef::sub = 0), so after_leak(R) is what they test.
enum class Reset : int { Hard = 0, Soft = 1, SubtractAfter = 2, NoneAfter = 3 };

// Plain data passed from the bindings to the kernels (host side: doubles; LifCoef converts once per launch).
struct LifConfig {
  double tau_m;      // >= 1 or +inf (the IF neuron): leak lam = 1 - 1/tau_m
  double tau_s;      // >= 1: PSC decay kappa = 1 - 1/tau_s
  double threshold;  // the firing threshold
  double v_reset;    // the reset value under Reset::Hard (ignored otherwise); threshold > v_reset
  Reset reset;
  bool decay_input;  // u = lam v + c / tau_m (spikingjelly's decay_input=True) instead of lam v + c
  bool strict;       // fire on u > threshold (the released code's `mem > threshold`) instead of u >= threshold
  bool psc;          // output = PSC a (true) or spikes s / the membrane potential (false)
  bool mem = false;  // output = the membrane potential u (pre-reset, unshifted coordinates), STBP only
};

}  // namespace na

namespace na {
NA_ISA_BEGIN

NA_HD constexpr bool after_leak(Reset r) { return r == Reset::SubtractAfter || r == Reset::NoneAfter; }

// `thr` is the threshold in the kernels' coordinates (threshold - v_reset under a hard reset, see the file
// comment): the MP-distance d = thr - u, the state a cancelled spike leaves, the soft reset's step. `fire` is the
// value the spike test u >= fire compares with: thr itself, or under `strict` the next acc_t above it, since for
// floats u > thr exactly when u >= nextafter(thr, +inf): one comparison, no branch in the loops. `beta` scales the
// input (1, or 1/tau_m under decay_input; x * 1 is exact, so the default keeps the paper's bits) and, by the chain
// rule, every gradient w.r.t. c.
//
// `sub` is what an after-leak reset subtracts one step after a spike (thr, or 0 for "none"); `vr` the shift added back
// to u for the membrane output.
template <typename acc_t>
struct LifCoef {
  acc_t lam, kappa, inv_tau_s, thr, fire, tau_m, beta, sub, vr;
  bool strict, psc, mem, decay_input;
  const acc_t* lam_n = nullptr;  // this neuron's lam (learnable decay), or null: lam above
  acc_t* glam_n = nullptr;       // where this neuron's dL/dlam goes, or null: not wanted
  explicit LifCoef(const LifConfig& c)
      : lam(static_cast<acc_t>(1.0 - 1.0 / c.tau_m)),
        kappa(static_cast<acc_t>(1.0 - 1.0 / c.tau_s)),
        inv_tau_s(static_cast<acc_t>(1.0 / c.tau_s)),
        thr(static_cast<acc_t>(c.reset == Reset::Hard ? c.threshold - c.v_reset : c.threshold)),
        fire(c.strict ? std::nextafter(thr, std::numeric_limits<acc_t>::infinity()) : thr),
        tau_m(static_cast<acc_t>(c.tau_m)),
        beta(static_cast<acc_t>(c.decay_input ? 1.0 / c.tau_m : 1.0)),
        sub(static_cast<acc_t>(c.reset == Reset::SubtractAfter ? c.threshold : 0.0)),
        vr(static_cast<acc_t>(c.reset == Reset::Hard ? c.v_reset : 0.0)),
        strict(c.strict),
        psc(c.psc),
        mem(c.mem),
        decay_input(c.decay_input) {}
  // A copy for the neuron (or pack) at `offset` of the decay arrays `lam` / `glam` (either may be null).
  NA_HD LifCoef at(const acc_t* lam, acc_t* glam, int64_t offset) const {
    LifCoef k = *this;
    k.lam_n = lam == nullptr ? nullptr : lam + offset;
    k.glam_n = glam == nullptr ? nullptr : glam + offset;
    return k;
  }
};

// A learnable leak as the ops take it (§12): clamped to [0, 1] in the kernels, torch.clamp's values (NaN and -0
// stay), so that no elementwise clamp pass runs before the op; its gradient is masked to match (DecayGrad::store).
template <typename V>
NA_HD V clamp_decay(V x) {
  using L = Lanes<V>;
  const V zero = L::splat(0), one = L::splat(1);
  return L::select(x < zero, zero, L::select(x > one, one, x));
}

// The leak and the input scale of this neuron: the fixed ones, or clamp(lam_n[0]) and (decay_input) 1 - that.
template <typename V, typename acc_t>
NA_HD V decay_of(const LifCoef<acc_t>& k) {
  return k.lam_n != nullptr ? clamp_decay(Lanes<V>::load(k.lam_n)) : Lanes<V>::splat(k.lam);
}
template <typename V, typename acc_t>
NA_HD V input_scale_of(const LifCoef<acc_t>& k, V lam) {
  return k.lam_n != nullptr && k.decay_input ? Lanes<V>::splat(1) - lam : Lanes<V>::splat(k.beta);
}

// The state after step t's spike test: the reset (eq. 4; hard: to 0 in the shifted coordinates; soft: minus the
// threshold) where s fired, u itself where it did not.
// An after-leak reset keeps u itself (its subtraction comes one step later, through r).
template <Reset R, typename V>
NA_HD V after_spike(typename Lanes<V>::mask s, V u, V thr) {
  using L = Lanes<V>;
  if (R == Reset::Hard) return L::select(s, L::splat(0), u);
  if (after_leak(R)) return u;
  return L::select(s, u - thr, u);
}

// One step (eq. 1-2, §2): `v` is the post-reset potential carried between steps, `x` the scaled input beta c[t];
// returns the spike and writes the pre-reset potential u (the one compared with the threshold). An after-leak reset
// (§11): u = (lam v + x) - r, snnTorch's operation order, and r = sub where s fired (else 0) for the next step.
template <Reset R, typename V>
NA_HD typename Lanes<V>::mask lif_step(V& v, V& r, V x, V lam, V fire, V thr, V sub, V& u) {
  using L = Lanes<V>;
  u = lam * v + x;
  if (after_leak(R)) u = u - r;
  const typename L::mask s = u >= fire;
  v = after_spike<R>(s, u, thr);
  if (after_leak(R)) r = L::select(s, sub, L::splat(0));
  return s;
}

// The same for the resets without r (Hard, Soft).
template <Reset R, typename V>
NA_HD typename Lanes<V>::mask lif_step(V& v, V x, V lam, V fire, V thr, V& u) {
  static_assert(!after_leak(R), "an after-leak reset carries r: use the overload that takes it");
  V r = Lanes<V>::splat(0);
  return lif_step<R>(v, r, x, lam, fire, thr, r, u);
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

// dL/dlam of one neuron (§12): sum over t of dL/du[t] times du[t]/dlam = v[t-1] - [decay_input] c[t]. `add` is
// called in the rule's reverse loop with the raw input c[t] (not beta c[t]: lam = 1 with decay_input scales the
// input by beta = 0, and sum g c must stay the finite value it is, not (sum g beta c) / beta = 0/0); `store` writes
// the sum where LifCoef::glam_n points (nothing if null).
template <typename V>
struct DecayGrad {
  V acc;
  bool on, scaled;
  template <typename acc_t>
  NA_HD explicit DecayGrad(const LifCoef<acc_t>& k)
      : acc(Lanes<V>::splat(0)), on(k.glam_n != nullptr), scaled(k.decay_input) {}
  // gu = dL/du[t], v_in = the state carried into step t, c = the raw input c[t].
  NA_HD void add(V gu, V v_in, V c) { acc = acc + gu * (scaled ? v_in - c : v_in); }
  NA_HD void add_state(V gu, V v_in) { acc = acc + gu * v_in; }
  NA_HD void add_input(V gu, V c) {
    if (scaled) acc = acc - gu * c;
  }
  // `bad`: the neuron's §10 mask after the reverse loop (a non-finite c, G or lam anywhere: lam reaches every step),
  // which makes dL/dlam NaN as it makes grad_c. Then torch.clamp's gradient (clamp_decay): +0 where the raw leak
  // lies outside [0, 1] or is NaN.
  template <typename acc_t>
  NA_HD void store(const LifCoef<acc_t>& k, typename Lanes<V>::mask bad) const {
    using L = Lanes<V>;
    if (!on) return;
    const V raw = L::load(k.lam_n), zero = L::splat(0);
    const auto inside = L::and_not(raw >= zero, raw > L::splat(1));
    L::store(k.glam_n, L::select(inside, nonfinite_guard(bad, acc), zero));
  }
};

// Forward over T for one neuron (or one pack): writes the PSC a (eq. 3) or the spikes s.
template <Reset R, typename S, typename acc_t, typename V = acc_t>
NA_HD void lif_forward_neuron(const S* c, S* out, int64_t T, int64_t stride, const LifCoef<acc_t>& k) {
  using L = Lanes<V>;
  const V lam = decay_of<V>(k), fire = L::splat(k.fire), thr = L::splat(k.thr), kappa = L::splat(k.kappa);
  const V beta = input_scale_of(k, lam), jump = L::splat(k.inv_tau_s), zero = L::splat(0), one = L::splat(1);
  const V sub = L::splat(k.sub), vr = L::splat(k.vr);
  V v = zero, r = zero, a = zero, u;
  for (int64_t t = 0; t < T; ++t) {
    const auto s = lif_step<R>(v, r, L::load(c + t * stride) * beta, lam, fire, thr, sub, u);
    a = kappa * a + L::select(s, jump, zero);
    L::store(out + t * stride, k.psc ? a : k.mem ? u + vr : L::select(s, one, zero));
  }
}

// Calls f(std::integral_constant<Reset, R>{}) for the reset of `cfg` (host side): the one runtime branch per launch
// that turns the reset into a compile-time parameter of the loops. `Rule::kSoftReset = false` (a rule defined for a
// reset to rest only, refused by the bindings before any launch) makes only the Hard instantiation.
template <bool kSoftToo = true, typename F>
inline void with_reset(const LifConfig& cfg, const F& f) {
  if constexpr (kSoftToo) {
    switch (cfg.reset) {
      case Reset::Hard:
        return f(std::integral_constant<Reset, Reset::Hard>{});
      case Reset::Soft:
        return f(std::integral_constant<Reset, Reset::Soft>{});
      case Reset::SubtractAfter:
      case Reset::NoneAfter:  // the same loops, LifCoef::sub = 0
        return f(std::integral_constant<Reset, Reset::SubtractAfter>{});
    }
  }
  f(std::integral_constant<Reset, Reset::Hard>{});
}

NA_ISA_END
}  // namespace na
