// The CPU kernels for AVX2 (8 float lanes a pack), compiled into the same library as the baseline ones whatever
// the build machine: the target is set for this unit alone, and lif_cpu.cpp runs them only on a CPU that has
// AVX2. No FMA: a*b+c stays two roundings (setup.py's -ffp-contract=off), so both tables give the same bits.
//
// The standard headers come first, outside the target region: an inline standard-library function defined
// under AVX2 here and without it elsewhere would be one symbol, and the linker could keep the AVX2 copy for
// both. Everything this unit defines after the target is set lives in the `avx2` namespace (NA_ISA).
#if defined(__x86_64__)

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <math.h>
#include <type_traits>
#include <utility>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2")
#endif

#define NA_ISA avx2
#define NA_CPU_VECTOR_BYTES 32
#include "isa_kernels.h"

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
