// SIMD packs for the CPU kernels: Lanes<> specialisations (see csrc/core/lanes.h) for GCC vector types holding one
// vector register of neighbouring neurons (4 floats with SSE2, 8 with AVX2). The instruction set is the one of the
// translation unit that includes this header (csrc/cpu/isa_*.cpp set NA_CPU_VECTOR_BYTES and compile their
// functions for it; the library holds both and picks one at load time). The per-neuron functions of csrc/core run
// unchanged on a pack. A pack wider than the target's registers is passed through memory and is several times slower,
// hence one register per pack.
#pragma once

#include <math.h>

#include <cstdint>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "../core/lanes.h"

#ifndef NA_CPU_VECTOR_BYTES
#error "include csrc/cpu/lanes_cpu.h from an ISA unit (csrc/cpu/isa_*.cpp), which sets NA_CPU_VECTOR_BYTES"
#endif

namespace na {
NA_ISA_BEGIN

constexpr int kVectorBytes = NA_CPU_VECTOR_BYTES;

typedef float vfloat __attribute__((vector_size(kVectorBytes)));
typedef double vdouble __attribute__((vector_size(kVectorBytes)));

// Lane-wise operations common to both packs. Masks are the integer vectors that comparisons return.
template <typename V, typename A>
struct PackLanes {
  static constexpr int64_t kLanes = kVectorBytes / sizeof(A);
  using scalar = A;
  using mask = decltype(V{} < V{});
  static V splat(A x) { return V{} + x; }
  static V select(mask m, V a, V b) { return m ? a : b; }
  // One sign-bit test of the whole register (a mask lane is all ones or all zeros, so the float sign bits of any
  // lane width tell): any() gates work per step in the rules, where a loop over lanes cost more than it saved.
  static bool any(mask m) {
#if defined(__x86_64__) && NA_CPU_VECTOR_BYTES == 32
    return _mm256_movemask_ps(reinterpret_cast<__m256>(m)) != 0;
#elif defined(__x86_64__) && NA_CPU_VECTOR_BYTES == 16
    return _mm_movemask_ps(reinterpret_cast<__m128>(m)) != 0;
#else
    for (int64_t i = 0; i < kLanes; ++i)
      if (m[i]) return true;
    return false;
#endif
  }
  static mask and_not(mask a, mask b) { return a & ~b; }
  static V exp(V x) {
    V r;
    for (int64_t i = 0; i < kLanes; ++i) r[i] = na_exp(x[i]);
    return r;
  }
  static V log(V x) {
    V r;
    for (int64_t i = 0; i < kLanes; ++i) r[i] = na_log(x[i]);
    return r;
  }
  // Packs are only loaded from / stored to the kernels' own compute-type block buffers.
  static V load(const A* p) {
    V v;
    std::memcpy(&v, p, sizeof(V));
    return v;
  }
  static void store(A* p, V v) { std::memcpy(p, &v, sizeof(V)); }
};

#if defined(NA_CPU_VECTOR_EXPF)
// glibc's expf (2.27 and later: sysdeps/ieee754/flt-32/e_expf.c) on 8 lanes, as its x86-64 FMA build computes it,
// so every lane has the bits of the library's expf on a CPU with AVX2 and FMA (glibc picks that build there). Only
// for the AVX2 unit, which sets NA_CPU_VECTOR_EXPF and compiles for FMA; the table that holds it is only chosen on
// such a CPU, and vexpf_ok() checks it against the library once (docs/kernels.md, "the vector expf").
// exp(x) = 2^(k/32) * 2^(r/32) with k = round(x * 32/ln 2): the table gives 2^(k/32) and a cubic 2^(r/32).
// kExp2Tab[i] = bits(2^(i/32)) - (i << 47), so that adding k << 47 (k's integer part to the exponent) gives 2^(k/32).
alignas(64) constexpr uint64_t kExp2Tab[32] = {
    0x3ff0000000000000, 0x3fefd9b0d3158574, 0x3fefb5586cf9890f, 0x3fef9301d0125b51, 0x3fef72b83c7d517b,
    0x3fef54873168b9aa, 0x3fef387a6e756238, 0x3fef1e9df51fdee1, 0x3fef06fe0a31b715, 0x3feef1a7373aa9cb,
    0x3feedea64c123422, 0x3feece086061892d, 0x3feebfdad5362a27, 0x3feeb42b569d4f82, 0x3feeab07dd485429,
    0x3feea47eb03a5585, 0x3feea09e667f3bcd, 0x3fee9f75e8ec5f74, 0x3feea11473eb0187, 0x3feea589994cce13,
    0x3feeace5422aa0db, 0x3feeb737b0cdc5e5, 0x3feec49182a3f090, 0x3feed503b23e255d, 0x3feee89f995ad3ad,
    0x3feeff76f2fb5e47, 0x3fef199bdd85529c, 0x3fef3720dcef9069, 0x3fef5818dcfba487, 0x3fef7c97337b9b5f,
    0x3fefa4afa2a490da, 0x3fefd0765b6e4540};

// 4 lanes of the algorithm in double, |x| < 88 (no overflow, underflow or nan).
inline __m128 vexpf4(__m128 x) {
  const __m256d xd = _mm256_cvtps_pd(x);
  const __m256d inv_ln2_n = _mm256_set1_pd(0x1.71547652b82fep+0 * 32), shift = _mm256_set1_pd(0x1.8p+52);
  // k + r = x * 32/ln2; the FMA build fuses both uses of the product (rounded k unchanged, r exact to one rounding)
  const __m256d kd_shifted = _mm256_fmadd_pd(inv_ln2_n, xd, shift);  // k in the low mantissa bits
  const __m256i ki = _mm256_castpd_si256(kd_shifted);
  const __m256d r = _mm256_fmsub_pd(inv_ln2_n, xd, _mm256_sub_pd(kd_shifted, shift));
  const __m256i t = _mm256_add_epi64(_mm256_i64gather_epi64(reinterpret_cast<const long long*>(kExp2Tab),
                                                            _mm256_and_si256(ki, _mm256_set1_epi64x(31)), 8),
                                     _mm256_slli_epi64(ki, 47));
  const __m256d c0 = _mm256_set1_pd(0x1.c6af84b912394p-5 / (32.0 * 32 * 32));
  const __m256d c1 = _mm256_set1_pd(0x1.ebfce50fac4f3p-3 / (32.0 * 32)), c2 = _mm256_set1_pd(0x1.62e42ff0c52d6p-1 / 32);
  const __m256d z = _mm256_fmadd_pd(c0, r, c1), r2 = _mm256_mul_pd(r, r);
  const __m256d y = _mm256_fmadd_pd(z, r2, _mm256_fmadd_pd(c2, r, _mm256_set1_pd(1.0)));
  return _mm256_cvtpd_ps(_mm256_mul_pd(y, _mm256_castsi256_pd(t)));
}

// expf of every lane; a pack with some |x| >= 88 or a nan (overflow, underflow, errno) takes the library's expf.
inline vfloat vexpf(vfloat v) {
  const __m256 x = reinterpret_cast<__m256>(v);
  const __m256i mag = _mm256_and_si256(_mm256_castps_si256(x), _mm256_set1_epi32(0x7fffffff));
  if (_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(mag, _mm256_set1_epi32(0x42afffff)))) != 0) {
    vfloat r;
    for (int i = 0; i < 8; ++i) r[i] = expf(v[i]);
    return r;
  }
  const __m128 lo = vexpf4(_mm256_castps256_ps128(x)), hi = vexpf4(_mm256_extractf128_ps(x, 1));
  return reinterpret_cast<vfloat>(_mm256_insertf128_ps(_mm256_castps128_ps256(lo), hi, 1));
}

bool vexpf_self_check();  // vexpf against the library's expf on a few hundred values (isa_avx2.cpp)

// Whether vexpf gives the library's bits here (checked on first use: only a CPU running the AVX2 table gets here).
inline bool vexpf_ok() {
  static const bool ok = vexpf_self_check();
  return ok;
}

template <>
struct Lanes<vfloat> : PackLanes<vfloat, float> {
  static vfloat exp(vfloat x) { return vexpf_ok() ? vexpf(x) : PackLanes<vfloat, float>::exp(x); }
};
#else
template <>
struct Lanes<vfloat> : PackLanes<vfloat, float> {};
#endif
template <>
struct Lanes<vdouble> : PackLanes<vdouble, double> {};

// Two packs side by side (2 kLanes neighbouring neurons), for a rule whose loops are bound by the latency of one
// pack's dependency chain (NA's neighbour runs: NaRule::kCpuPairs): every operation is done on both halves, so each
// lane computes exactly what it computes in a single pack, and the halves' independent chains overlap. any() is
// one test of both halves. Masks are Two<mask>.
template <typename T>
struct Two {
  T lo, hi;
};
#define NA_TWO_BINARY(op)                                           \
  template <typename T>                                             \
  inline auto operator op(const Two<T>& a, const Two<T>& b) {       \
    return Two<decltype(a.lo op b.lo)>{a.lo op b.lo, a.hi op b.hi}; \
  }
NA_TWO_BINARY(+)
NA_TWO_BINARY(-)
NA_TWO_BINARY(*)
NA_TWO_BINARY(/)
NA_TWO_BINARY(&)
NA_TWO_BINARY(|)
NA_TWO_BINARY(<)
NA_TWO_BINARY(<=)
NA_TWO_BINARY(>)
NA_TWO_BINARY(>=)
NA_TWO_BINARY(==)
NA_TWO_BINARY(!=)
#undef NA_TWO_BINARY
template <typename T>
inline Two<T> operator-(const Two<T>& a) {
  return {-a.lo, -a.hi};
}
template <typename T>
inline Two<T> operator~(const Two<T>& a) {
  return {~a.lo, ~a.hi};
}

template <typename V>
struct Lanes<Two<V>> {
  using H = Lanes<V>;
  static constexpr int64_t kLanes = 2 * H::kLanes;
  using scalar = typename H::scalar;
  using mask = Two<typename H::mask>;
  static Two<V> splat(scalar x) {
    const V v = H::splat(x);
    return {v, v};
  }
  static Two<V> select(const mask& m, const Two<V>& a, const Two<V>& b) {
    return {H::select(m.lo, a.lo, b.lo), H::select(m.hi, a.hi, b.hi)};
  }
  // select(m, a, +0) as one AND per half (a mask lane is all ones or all zeros): `m ? a : 0` on a mask made by
  // and/andnot made GCC test m first, one more instruction in NA's run loop (its na_keep).
  static Two<V> keep(const mask& m, const Two<V>& a) {
    using Mh = typename H::mask;
    return {reinterpret_cast<V>(reinterpret_cast<Mh>(a.lo) & m.lo),
            reinterpret_cast<V>(reinterpret_cast<Mh>(a.hi) & m.hi)};
  }
  static bool any(const mask& m) { return H::any(m.lo | m.hi); }
  static mask and_not(const mask& a, const mask& b) { return {H::and_not(a.lo, b.lo), H::and_not(a.hi, b.hi)}; }
  static Two<V> exp(const Two<V>& x) { return {H::exp(x.lo), H::exp(x.hi)}; }
  static Two<V> log(const Two<V>& x) { return {H::log(x.lo), H::log(x.hi)}; }
  static Two<V> load(const scalar* p) { return {H::load(p), H::load(p + H::kLanes)}; }
  static void store(scalar* p, const Two<V>& v) {
    H::store(p, v.lo);
    H::store(p + H::kLanes, v.hi);
  }
};

template <typename acc_t>
struct PackOf;
template <>
struct PackOf<float> {
  using type = vfloat;
};
template <>
struct PackOf<double> {
  using type = vdouble;
};

NA_ISA_END
}  // namespace na
