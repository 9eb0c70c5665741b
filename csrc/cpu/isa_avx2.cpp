// The CPU kernels for AVX2 (8 float lanes a pack), compiled into the same library as the baseline ones whatever
// the build machine: the target is set for this unit alone, and lif_cpu.cpp runs them only on a CPU that has
// AVX2 and FMA. The compiler makes no FMA of a*b+c (setup.py's -ffp-contract=off: two roundings, so both tables
// give the same bits); the only FMAs are the vector expf's (lanes_cpu.h), which are glibc expf's own.
//
// The standard headers come first, outside the target region: an inline standard-library function defined
// under AVX2 here and without it elsewhere would be one symbol, and the linker could keep the AVX2 copy for
// both. Everything this unit defines after the target is set lives in the `avx2` namespace (NA_ISA).
#if defined(__x86_64__)

#include <cmath>
#include <cstdint>
#include <cstring>
#include <immintrin.h>
#include <limits>
#include <math.h>
#include <type_traits>
#include <utility>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif

#define NA_ISA avx2
#define NA_CPU_VECTOR_BYTES 32
#define NA_CPU_VECTOR_EXPF 1
#include "isa_kernels.h"

namespace na {
NA_ISA_BEGIN

bool vexpf_self_check() {
  // The warm-up range of TSSL-BP densely, the whole finite range coarsely, signed zeros, subnormals, and two
  // inputs where expf without FMA contraction (glibc's SSE2 build, say) gives other bits than the FMA build.
  constexpr int kDense = 384, kWide = 120, kExtra = 8;
  alignas(32) float x[kDense + kWide + kExtra] = {0.0f,  -0.0f,  0x1p-149f,      -0x1p-126f,
                                                  1e-8f, -1e-8f, 0x1.04845ep+5f, -0x1.f8cbb2p+5f};
  for (int i = 0; i < kDense; ++i) x[kExtra + i] = -8.5f + 17.0f * static_cast<float>(i) / kDense;
  for (int i = 0; i < kWide; ++i) x[kExtra + kDense + i] = -87.9f + 175.8f * static_cast<float>(i) / kWide;
  for (int i = 0; i < kDense + kWide + kExtra; i += 8) {
    vfloat v;
    std::memcpy(&v, x + i, sizeof v);
    const vfloat got = vexpf(v);
    for (int j = 0; j < 8; ++j) {
      const float want = expf(x[i + j]);
      if (std::memcmp(&got[j], &want, sizeof want) != 0) return false;
    }
  }
  return true;
}

NA_ISA_END
}  // namespace na

namespace na {
namespace cpu {
NA_CPU_ISA_TABLE(kAvx2Kernels, "avx2");
}  // namespace cpu
}  // namespace na

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#endif  // __x86_64__
