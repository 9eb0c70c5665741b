// The CPU block kernels (csrc/cpu/isa.h) of the instruction set of the including unit: the per-neuron math of
// csrc/core run on SIMD packs of neighbouring neurons (lanes_cpu.h). Included once by each isa_*.cpp, which
// defines NA_ISA and NA_CPU_VECTOR_BYTES and sets the compiler's target first; it then defines its table with
// NA_CPU_ISA_TABLE.
#pragma once

#include "../core/lif.h"
#include "../core/rules/rules.h"
#include "isa.h"
#include "lanes_cpu.h"

namespace na {
namespace cpu {
NA_ISA_BEGIN

// isa.h's block copies. A row is whole packs then a scalar tail; memcpy keeps the loads unaligned and exact.
template <typename acc_t>
bool gather_rows(const acc_t* src, acc_t* dst, int64_t N, int64_t T, int64_t nb, int64_t w, bool check) {
  using V = typename PackOf<acc_t>::type;
  using L = Lanes<V>;
  constexpr int64_t P = L::kLanes;
  auto bad = L::splat(0) != L::splat(0);
  bool bad_tail = false;
  for (int64_t t = 0; t < T; ++t) {
    const acc_t* s = src + t * N;
    acc_t* d = dst + t * w;
    int64_t j = 0;
    if (check) {
      for (; j + P <= nb; j += P) {
        V x;
        std::memcpy(&x, s + j, sizeof(V));
        L::store(d + j, x);
        bad = bad | nonfinite(x);
      }
      for (; j < nb; ++j) {
        d[j] = s[j];
        bad_tail = bad_tail || !(s[j] - s[j] == acc_t(0));
      }
    } else {
      std::memcpy(d, s, static_cast<size_t>(nb) * sizeof(acc_t));
    }
    for (j = nb; j < w; ++j) d[j] = acc_t(0);
  }
  return !(L::any(bad) || bad_tail);
}

template <typename acc_t>
void scatter_rows(const acc_t* src, acc_t* dst, int64_t N, int64_t T, int64_t nb, int64_t w) {
  for (int64_t t = 0; t < T; ++t) std::memcpy(dst + t * N, src + t * w, static_cast<size_t>(nb) * sizeof(acc_t));
}

template <typename acc_t>
void forward_block(acc_t* buf, int64_t T, int64_t w, int64_t nb, const LifConfig& cfg, const acc_t* lam) {
  using V = typename PackOf<acc_t>::type;
  const LifCoef<acc_t> lif(cfg);
  const acc_t* lc = buf;
  acc_t* lo = buf + T * w;
  with_reset(cfg, [&](auto reset) {
    constexpr Reset R = decltype(reset)::value;
    for (int64_t j = 0; j < nb; j += Lanes<V>::kLanes)
      lif_forward_neuron<R, acc_t, acc_t, V>(lc + j, lo + j, T, w, lif.at(lam, nullptr, j));
  });
}

// Whether a rule runs its CPU backward on pairs of packs (Rule::kCpuPairs, lanes_cpu.h's Two).
template <typename Rule, typename = void>
struct CpuPairs : std::false_type {};
template <typename Rule>
struct CpuPairs<Rule, std::void_t<decltype(Rule::kCpuPairs)>> : std::bool_constant<Rule::kCpuPairs> {};

template <typename Rule, bool kGuard, typename acc_t>
void backward_packs(acc_t* buf, int64_t T, int64_t w, int64_t nb, const LifConfig& lcfg,
                    const typename Rule::Config& rcfg, const acc_t* lam, acc_t* glam) {
  using V = typename PackOf<acc_t>::type;
  const LifCoef<acc_t> lif(lcfg);
  const typename Rule::template Coef<acc_t> coef(rcfg);
  acc_t *lc = buf, *lg = buf + T * w, *w0 = buf + 2 * T * w;
  acc_t* w1 = Rule::kCpuPlanes > 1 ? buf + 3 * T * w : nullptr;
  with_reset<Rule::kSoftReset>(lcfg, [&](auto reset) {
    constexpr Reset R = decltype(reset)::value;
    int64_t j = 0;
    if constexpr (CpuPairs<Rule>::value) {
      // pairs while a whole pair fits in the row (w is a multiple of kMaxLanes, not always of two packs)
      using V2 = Two<V>;
      for (; j < nb && j + Lanes<V2>::kLanes <= w; j += Lanes<V2>::kLanes) {
        acc_t* w1j = w1 ? w1 + j : nullptr;
        Rule::template neuron<R, 0, acc_t, acc_t, V2>(lc + j, lg + j, w0 + j, w1j, lg + j, T, w, w,
                                                      lif.at(lam, glam, j), coef);
      }
    }
    for (; j < nb; j += Lanes<V>::kLanes) {
      acc_t* w1j = w1 ? w1 + j : nullptr;
      if constexpr (kGuard) {
        Rule::template neuron<R, 0, acc_t, acc_t, V>(lc + j, lg + j, w0 + j, w1j, lg + j, T, w, w, lif.at(lam, glam, j),
                                                     coef);
      } else {
        Rule::template neuron<R, 0, acc_t, acc_t, V, false>(lc + j, lg + j, w0 + j, w1j, lg + j, T, w, w,
                                                            lif.at(lam, glam, j), coef);
      }
    }
  });
}

// The guard-free loops only where the rule has them and the block is finite (isa.h).
template <typename Rule, typename acc_t>
void backward_block(acc_t* buf, int64_t T, int64_t w, int64_t nb, const LifConfig& lcfg,
                    const typename Rule::Config& rcfg, const acc_t* lam, acc_t* glam, bool finite) {
  if constexpr (Rule::kGuardFree) {
    if (finite) return backward_packs<Rule, false>(buf, T, w, nb, lcfg, rcfg, lam, glam);
  }
  backward_packs<Rule, true>(buf, T, w, nb, lcfg, rcfg, lam, glam);
}

template <typename acc_t>
constexpr BlockKernels<acc_t> block_kernels() {
  static_assert(kBlock % Lanes<typename PackOf<acc_t>::type>::kLanes == 0, "kBlock must hold whole packs");
  static_assert(kMaxLanes % Lanes<typename PackOf<acc_t>::type>::kLanes == 0, "rows are padded to kMaxLanes");
#define NA_RULE_BLOCK(name, Type, args) &backward_block<Type##Rule, acc_t>,
  return {&gather_rows<acc_t>, &scatter_rows<acc_t>, &forward_block<acc_t>, NA_RULES(NA_RULE_BLOCK)};
#undef NA_RULE_BLOCK
}

NA_ISA_END
}  // namespace cpu
}  // namespace na

#define NA_CPU_ISA_TABLE(var, name) \
  const ::na::cpu::IsaKernels var { name, ::na::cpu::block_kernels<float>(), ::na::cpu::block_kernels<double>() }
