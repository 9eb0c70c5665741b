// SIMD packs for the CPU kernels: Lanes<> specialisations (see csrc/core/lanes.h) for GCC vector types holding one
// vector register of neighbouring neurons (4 floats with SSE2, 8 with AVX2). The instruction set is the one of the
// translation unit that includes this header (csrc/cpu/isa_*.cpp set NA_CPU_VECTOR_BYTES and compile their
// functions for it; the library holds both and picks one at load time). The per-neuron functions of csrc/core run
// unchanged on a pack. A pack wider than the target's registers is passed through memory and is several times slower,
// hence one register per pack.
#pragma once

#include <math.h>

#include <cstring>

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
  static bool any(mask m) {
    for (int64_t i = 0; i < kLanes; ++i)
      if (m[i]) return true;
    return false;
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

template <>
struct Lanes<vfloat> : PackLanes<vfloat, float> {};
template <>
struct Lanes<vdouble> : PackLanes<vdouble, double> {};

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
