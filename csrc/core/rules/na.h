// NA backward with SNS (§3, eq. 13, 16, 17) of one neuron, written once for the CPU packs and the CUDA threads,
// and the rule's traits (NaRule) that the bindings' loops are written against. Conventions of core/lif.h. Hard
// reset: dynamic programming over the neighbour's first reset (one value X[k] per step); soft and after-leak
// resets: the neighbour is re-simulated until an exact exit. Where the state lives is the `Mem` policy (NaPlanes:
// any T; NaRegs: registers, T <= a bucket). The derivation and the exits: docs/kernels.md ("csrc/core/rules/na.h").
#pragma once

#include <type_traits>

#include "../lif.h"

namespace na {

struct NaConfig {
  bool taylor;     // first_order="taylor" (weights from G) or "paper" (weights from e, §3.2)
  int dist_power;  // k in phi(d) = clamp(d^-k, -b, b), positive odd
  double clip;     // b
  int64_t window;  // na_window K (spec §3.8): a run steps at most K steps; 0: none (exact NA)
};

}  // namespace na

// A lambda inlined into its caller on the host (GCC's heuristics may keep a big one called twice out of line,
// and then every state of its caller is re-read through memory after each store); nvcc inlines device lambdas.
#if defined(__CUDACC__)
#define NA_LAMBDA_INLINE
#else
#define NA_LAMBDA_INLINE __attribute__((always_inline))
#endif

namespace na {
NA_ISA_BEGIN

template <typename acc_t>
struct NaCoef {
  bool taylor;
  int k;
  acc_t b;
  int64_t window;
  explicit NaCoef(const NaConfig& c)
      : taylor(c.taylor), k(c.dist_power), b(static_cast<acc_t>(c.clip)), window(c.window) {}
};

// phi(d) = clamp(d^-k, -b, b) for odd k (§3.4); phi(0) = -b when u == threshold fires (the flip lowers u), +b
// under strict firing (u == threshold is silent, so the flip raises it).
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

// How the run loop is tuned per kind of lane. A CUDA thread tests the data-dependent exit at every step and counts
// steps in 32 bits (the bindings reject T >= 2^31); a SIMD pack tests at the first step and then every 8th
// (10-25 % faster on the CPU) and counts in 64 bits (32-bit counters cost 7-28 %). A CUDA thread's run
// re-simulates the original; a pack reads u[k] from a second plane (re-simulating was 15-18 % slower there).
// None of these choices changes a bit of the result. Measurements: docs/benchmarks.md, "Kernel design measurements".
template <typename V>
struct NaLaneTuning {
  static constexpr bool kScalar = std::is_same<typename Lanes<V>::mask, bool>::value;
  static constexpr int kExitEvery = kScalar ? 1 : 8;
  static constexpr bool kResimulate = kScalar;
  using step = typename std::conditional<kScalar, int, int64_t>::type;
};

// Any T: c[k] read from the input at every use, X[k] in a [T] workspace plane `w` (stride wstride), u[k] in `w`
// too until X[k] replaces it (re-simulating lanes) or in a second plane `wu` (packs; see NaLaneTuning).
template <typename S, typename acc_t, typename V>
struct NaPlanes {
  static constexpr bool kResim = NaLaneTuning<V>::kResimulate;
  const S* c;
  acc_t* w;
  acc_t* wu;
  acc_t* wq;  // Q[k] (hard reset: the run of step k found no spike difference, spec §3.7): 1 or 0; CUDA only
  int64_t stride, wstride;
  V beta;
  // A SIMD pack's `c` is the CPU binding's private block copy of the input (csrc/cpu/lif_cpu.cpp), so the forward
  // pass replaces c[t] by beta c[t] in place and the run loop reads it without the multiply (~10 % of the CPU op
  // at T = 20). A CUDA thread reads the input tensor itself and scales at every read. The bits agree.
  static constexpr bool kScaleInPlace = !NaLaneTuning<V>::kScalar;
  // The raw c[t] that a pack's in-place scaling overwrites is kept in w[t] (free on a pack until X[t] replaces it
  // after the reverse step t, see NaLaneTuning) for the learnable decay's input term (§12, DecayGrad).
  // A pack skips what is not needed (the flags are set by NaRule::neuron): the raw copy where the decay is fixed,
  // the scaling where beta is 1 (no decay_input: x * 1 is x, and a NaN lane's every output is the §10 NaN anyway).
  bool keep_raw = true, scale = true;
  NA_HD void fetch(int64_t t) {
    if constexpr (kScaleInPlace) {
      if (!keep_raw && !scale) return;
      S* p = const_cast<S*>(c) + t * stride;  // the binding's own scratch (see above), never the caller's tensor
      const V x = Lanes<V>::load(p);
      if (keep_raw) Lanes<V>::store(w + t * wstride, x);
      if (scale) Lanes<V>::store(p, x * beta);
    }
  }
  // The raw input c[t] (§12); on a pack valid until set_x(t).
  NA_HD V raw(int64_t t) const {
    if constexpr (kScaleInPlace) {
      return Lanes<V>::load(w + t * wstride);
    } else {
      return Lanes<V>::load(c + t * stride);
    }
  }
  NA_HD V in(int64_t k) const {
    const V x = Lanes<V>::load(c + k * stride);
    if constexpr (kScaleInPlace) {
      return x;
    } else {
      return x * beta;
    }
  }
  NA_HD V u(int64_t k) const { return Lanes<V>::load((kResim ? w : wu) + k * wstride); }
  NA_HD void set_u(int64_t k, V x) { Lanes<V>::store((kResim ? w : wu) + k * wstride, x); }
  NA_HD V x(int64_t k) const { return Lanes<V>::load(w + k * wstride); }
  NA_HD void set_x(int64_t k, V x) { Lanes<V>::store(w + k * wstride, x); }
  // Q[k] where the original fired at k (`so`; the only steps but the first of a run where the rule is tested).
  // A CUDA thread keeps Q in the plane wq. A pack keeps no plane for it: once step k is done, a spike step's u[k]
  // is only read for its spike and its reset (to 0), so it is replaced by +inf (Q) or the spike value `fire`
  // (not Q), both >= fire. (A real u[k] = +inf must not read as Q: hence `fire`, not u[k], for "not Q".)
  NA_HD typename Lanes<V>::mask q(int64_t k, typename Lanes<V>::mask so) const {
    using L = Lanes<V>;
    if (kResim) return L::load(wq + k * wstride) != L::splat(0);
    return so & (u(k) == L::splat(std::numeric_limits<acc_t>::infinity()));
  }
  NA_HD void set_q(int64_t k, typename Lanes<V>::mask st, typename Lanes<V>::mask b, V fire) {
    using L = Lanes<V>;
    if (kResim) {
      L::store(wq + k * wstride, L::select(b, L::splat(1), L::splat(0)));
    } else {
      set_u(k, L::select(st, L::select(b, L::splat(std::numeric_limits<acc_t>::infinity()), fire), u(k)));
    }
  }
  // The original's step k of a run: its spike, and its state after k in (vo, ro) (after k-1 on entry).
  template <Reset R>
  NA_HD typename Lanes<V>::mask orig(int64_t k, V& vo, V& ro, V xk, V lam, V fire, V thr, V sub) const {
    if (kResim) {
      V uo;
      return lif_step<R>(vo, ro, xk, lam, fire, thr, sub, uo);  // the forward's operations and values: same bits
    }
    const V uk = u(k);
    const auto so = uk >= fire;
    vo = after_spike<R>(so, uk, thr);
    if (after_leak(R)) ro = Lanes<V>::select(so, sub, Lanes<V>::splat(0));
    return so;
  }
};

// T <= B: beta c[k] (fetched once, in the forward pass) and u[k]/X[k] in per-thread arrays, Q[k] in one bit
// each; the run re-simulates.
template <typename S, typename V, int B>
struct NaRegs {
  static_assert(B <= 64, "Q[k] is one bit of a 64-bit word");
  static_assert(NaLaneTuning<V>::kScalar, "the register version serves one neuron per thread");
  const S* c;
  int64_t stride;
  V beta;
  V cin[B], ux[B];
  uint64_t qbits = 0;
  NA_HD void fetch(int64_t t) { cin[t] = Lanes<V>::load(c + t * stride) * beta; }
  NA_HD V raw(int64_t t) const { return Lanes<V>::load(c + t * stride); }
  NA_HD V in(int64_t k) const { return cin[k]; }
  NA_HD V u(int64_t k) const { return ux[k]; }
  NA_HD void set_u(int64_t k, V x) { ux[k] = x; }
  NA_HD V x(int64_t k) const { return ux[k]; }
  NA_HD void set_x(int64_t k, V x) { ux[k] = x; }
  NA_HD bool q(int64_t k, bool) const { return ((qbits >> k) & 1u) != 0; }
  NA_HD void set_q(int64_t k, bool, bool b, V) {
    qbits = b ? (qbits | (uint64_t(1) << k)) : (qbits & ~(uint64_t(1) << k));
  }
  template <Reset R>
  NA_HD typename Lanes<V>::mask orig(int64_t, V& vo, V& ro, V xk, V lam, V fire, V thr, V sub) const {
    V uo;
    return lif_step<R>(vo, ro, xk, lam, fire, thr, sub, uo);
  }
};

// select(m, a, +0): Lanes::keep where the lanes have one (the CPU pairs: one AND), else a select. The same bits.
template <typename L, typename = void>
struct NaHasKeep : std::false_type {};
template <typename L>
struct NaHasKeep<L, std::void_t<decltype(&L::keep)>> : std::true_type {};
template <typename L, typename M, typename V>
NA_HD V na_keep(const M& m, const V& a) {
  if constexpr (NaHasKeep<L>::value) {
    return L::keep(m, a);
  } else {
    return L::select(m, a, L::splat(0));
  }
}

// The NA backward of one neuron over `m` (see the file comment). B > 0: the loops run over the compile-time bound
// B (unrolled on the GPU), skipping steps >= T; B = 0: over the runtime T. `grad` may alias `g` (step t reads
// g[t] before writing grad[t], and nothing else reads g).
template <Reset R, int B, typename S, typename acc_t, typename V, typename Mem>
NA_HD void na_backward_steps(Mem m, const S* g, S* grad, int64_t T_, int64_t stride, const LifCoef<acc_t>& lif,
                             const NaCoef<acc_t>& na) {
  using L = Lanes<V>;
  using M = typename L::mask;
  using I = typename NaLaneTuning<V>::step;
  constexpr bool kFixed = B > 0;
  constexpr bool kSoft = R != Reset::Hard;  // soft and after-leak resets: states do not merge at a common spike
  constexpr I kExit = NaLaneTuning<V>::kExitEvery;
  static_assert((kExit & (kExit - 1)) == 0, "the exit period must be a power of two");
  const I T = static_cast<I>(T_);
  const I n = kFixed ? B : T;
  const V lam = decay_of<V>(lif), thr = L::splat(lif.thr), fire = L::splat(lif.fire), zero = L::splat(0);
  const V kappa = L::splat(lif.kappa), inv_tau_s = L::splat(lif.inv_tau_s), beta = m.beta;
  const V sub = L::splat(lif.sub);
  // the options in locals: the memcpy stores of the packs may alias anything, so members would be re-read
  const bool psc = lif.psc, taylor = na.taylor, strict = lif.strict;
  const int pk = na.k;
  const acc_t pb = na.b;
  // na_window (spec §3.8): the run of step t steps k = t+1 .. t+K at most; K = T (no window) reaches every end.
  const I K = na.window > 0 && na.window < T_ ? static_cast<I>(na.window) : T;
  constexpr bool kCount = !NaLaneTuning<V>::kScalar && !kFixed;
  const bool count_exact = static_cast<int64_t>(T) <= (int64_t(1) << std::numeric_limits<acc_t>::digits);
  const V one = L::splat(1);
  V v = zero, rf = zero, u;
  V last = L::splat(-1);   // time of the original's last spike, -1 if silent
  V spikes = zero;         // the original's spike count (hard reset: chooses the merge rules, see below)
  M bad = nonfinite(lam);  // §10: a non-finite lam or c anywhere, or a non-finite G at a step >= t
  // The merge rules of spec §3.7 (hard reset) pay where runs are long: long windows with a lane of sparse firing
  // (mean inter-spike interval over kMergeIsi steps). Elsewhere their per-step tests cost more than they save
  // (measured on the CPU op: 10-20 % at T = 5 and 20). Both paths are exact, so the choice changes no bit.
  constexpr I kMergeMinT = 48, kMergeIsi = 16;
  NA_UNROLL
  for (I t = 0; t < n; ++t) {
    if (kFixed && t >= T) break;
    m.fetch(t);
    const V xt = m.in(t);
    bad = bad | nonfinite(xt);
    const M s = lif_step<R>(v, rf, xt, lam, fire, thr, sub, u);
    last = L::select(s, L::splat(acc_t(t)), last);
    if (!kSoft && T >= kMergeMinT) spikes = spikes + L::select(s, L::splat(acc_t(1)), zero);
    m.set_u(t, u);
  }
  const bool merge_rules =
      !kSoft && T >= kMergeMinT && L::any((spikes > zero) & (spikes * L::splat(acc_t(kMergeIsi)) < L::splat(acc_t(T))));
  DecayGrad<V> dlam(lif);
  // The reverse pass, with the merge rules' tests compiled in or out (`merge` a constant): without them the run
  // loop keeps its state in registers (a runtime flag kept the rules' masks live and spilled a pack's run sum).
  const auto reverse = [&](auto merge_c) NA_LAMBDA_INLINE {
    constexpr bool merge = decltype(merge_c)::value;
    V r1 = zero, r2 = zero;
    M q_next = zero != zero;  // Q[t + 1] (spec §3.7), for the first step of the next run
    NA_UNROLL
    for (I t = n - 1; t >= 0; --t) {
      if (kFixed && t >= T) continue;
      // Weights (§3.2): dL_p = sum W[t] ds_p[t]; W = G (spikes), r(e)/tau_s ("paper") or r(G)/tau_s ("taylor").
      const V G = L::load(g + t * stride);
      bad = bad | nonfinite(G);
      V W = G;
      if (psc) {
        r1 = G + kappa * r1;
        if (taylor) {
          W = r1 * inv_tau_s;
        } else {
          r2 = r1 + kappa * r2;
          W = r2 * inv_tau_s;
        }
      }
      const V ut = m.u(t);
      const M st = ut >= fire;
      V vo = after_spike<R>(st, ut, thr);  // original state after t
      V vn = L::select(st, thr, zero);     // neighbour state after t (both resets: see the file comment)
      // the after-leak resets (§11): the flip leaves u'[t] = thr; a cancelled spike subtracts nothing next step, an
      // added one sub (the original: sub where it fired).
      V ro = L::select(st, sub, zero), rn = L::select(st, zero, sub);
      if (after_leak(R)) vn = thr;
      V run = zero;
      M live = zero == zero;
      M diff = zero != zero;  // hard reset: a spike difference was added (Q[t] = !diff, spec §3.7)
      // the run's last step + 1: t + K under a window (§3.8), written so that it cannot overflow
      const I end = K < T - t - 1 ? t + 1 + K : T;
      // acc_t(k) for the test last < k, counted on a pack (one add instead of a conversion and a broadcast per
      // step; the count is exact while k <= 2^digits, count_exact, else each step converts).
      V kv = L::splat(acc_t(t + 1));
      // Under a bucket the run starts at k = 0 and skips k <= t, so that its bounds are constants before the outer
      // loop is unrolled (t is one only after).
      NA_UNROLL
      for (I k = kFixed ? 0 : t + 1; k < (kFixed ? n : end); ++k) {
        if (kFixed && k <= t) continue;
        if (kFixed && k >= end) break;
        // u = lam v + x - r is monotone in v and in -r (lam >= 0), so "not above" is vn <= vo and rn >= ro
        const V kf = kCount ? kv : L::splat(acc_t(k));
        if (kCount) kv = count_exact ? kv + one : L::splat(acc_t(k + 1));
        M done = (last < kf) & (vn <= vo);
        if (after_leak(R)) done = done & (rn >= ro);
        // equal states: equal futures (spec §3.7, rule 1)
        if (kSoft || merge) done = done | (after_leak(R) ? (vn == vo) & (rn == ro) : vn == vo);
        live = L::and_not(live, done);
        // Packs test right after the first step as well: that is where the merge rule ends most runs (§3.7).
        const I j = k - t - 1;
        if (((j & (kExit - 1)) == 0 || (merge && j == 1)) && !L::any(live)) break;
        const V xk = m.in(k);
        V un;
        const M so = m.template orig<R>(k, vo, ro, xk, lam, fire, thr, sub);
        const M sn = lif_step<R>(vn, rn, xk, lam, fire, thr, sub, un);
        if (kSoft) {
          const V xw = m.x(k);
          run = run + na_keep<L>(L::and_not(live, sn == so), L::select(sn, xw, -xw));
        } else {
          const M d = L::and_not(live, sn == so);
          run = run + na_keep<L>(d, m.x(k));
          live = L::and_not(live, sn);  // the neighbour reset at k: X[k] holds the rest
          if (merge) {
            diff = diff | d;
            // Merge rule (spec §3.7, rule 2): the neighbour lies between the two trajectories that the run of step k
            // compared (the original, and k's own neighbour: thr after a spike, 0 after none), whose first spikes
            // coincide (Q[k]): its first spike is theirs, the original's, and nothing differs after k.
            const V nk = L::select(so, thr, zero);
            const M between = ((vn >= vo) & (vn <= nk)) | ((vn <= vo) & (vn >= nk));
            live = L::and_not(live, between & (k == t + 1 ? q_next : m.q(k, so)));
          }
        }
      }
      if (merge) {
        q_next = L::and_not(zero == zero, diff);
        m.set_q(t, st, q_next, fire);
      }
      const V gu = L::select(st, run - W, W + run) * na_phi(thr - ut, pk, pb, strict);  // NA's dL/du[t]
      if (dlam.on) {  // §12: dL/du[t] times du[t]/dlam; u[t-1] is still in place (X replaces u[t-1] after this step)
        V v_in = zero;
        if (t > 0) {
          const V up = m.u(t - 1);
          v_in = after_spike<R>(up >= fire, up, thr);
        }
        dlam.add(gu, v_in, m.raw(t));
      }
      m.set_x(t, kSoft ? W : L::select(st, -W, W + run));
      L::store(grad + t * stride, nonfinite_guard(bad, gu * beta));
    }
  };
  // A bucket below kMergeMinT never merges: only the loop without the rules is compiled there.
  if constexpr (!kSoft && (!kFixed || B >= kMergeMinT)) {
    if (merge_rules) {
      reverse(std::true_type{});
    } else {
      reverse(std::false_type{});
    }
  } else {
    reverse(std::false_type{});
  }
  dlam.store(lif, bad);
}

// The rule's traits: its configuration, its workspace, its per-neuron backward (the bindings' loops are written
// once against these; see csrc/cpu/lif_cpu.cpp and csrc/cuda/lif_kernels.cu).
struct NaRule {
  using Config = NaConfig;
  template <typename acc_t>
  using Coef = NaCoef<acc_t>;
  // CPU block planes besides c and g: X and u (a pack reads u back, NaLaneTuning; it also holds Q, spec §3.7).
  static constexpr int kCpuPlanes = 2;
  // The CPU runs two packs side by side (csrc/cpu/lanes_cpu.h, Two): a neighbour run is one serial chain per pack.
  static constexpr bool kCpuPairs = true;
  // CUDA: T <= kOnChipMaxT keeps the state in registers (NaRegs buckets 8/16/32), else one [T, N] plane of u/X,
  // which cannot live in the gradient (read at later steps than grad[t] is written), and one of Q (spec §3.7).
  static constexpr bool kOnChip = true;
  static constexpr int64_t kOnChipMaxT = 32;
  static constexpr int kCudaPlanes = 2;
  static constexpr bool kGradHoldsPlane0 = false;
  static constexpr bool kSoftReset = true;
  static constexpr bool kGuardFree = false;  // always guarded (§10)

  // B > 0: the on-chip version for T <= B; w0 = X (and u on a CUDA thread), w1 = u on a SIMD pack (may be null
  // on a CUDA thread).
  template <Reset R, int B, typename S, typename acc_t, typename V = acc_t>
  static NA_HD void neuron(const S* c, const S* g, acc_t* w0, acc_t* w1, S* grad, int64_t T, int64_t stride,
                           int64_t wstride, const LifCoef<acc_t>& lif, const NaCoef<acc_t>& na) {
    if constexpr (B > 0) {
      NaRegs<S, V, B> m{c, stride, input_scale_of(lif, decay_of<V>(lif)), {}, {}};
      na_backward_steps<R, B, S, acc_t, V>(m, g, grad, T, stride, lif, na);
    } else {
      // Q (spec §3.7): w1 on a CUDA thread (which keeps no u plane); a pack keeps it in its u plane w1.
      NaPlanes<S, acc_t, V> m{c, w0, w1, w1, stride, wstride, input_scale_of(lif, decay_of<V>(lif))};
      m.keep_raw = lif.glam_n != nullptr;  // raw(t): the learnable decay's input term only
      m.scale = lif.decay_input;           // beta = 1 without decay_input (learnable or not: input_scale_of)
      na_backward_steps<R, 0, S, acc_t, V>(m, g, grad, T, stride, lif, na);
    }
  }
};

NA_ISA_END
}  // namespace na
