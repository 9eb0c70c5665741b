// Lanes: the value type every per-neuron function of csrc/core is written for.
//
// V is either the compute scalar (float/double: one neuron per CUDA thread, V = acc_t, masks are bool) or a SIMD
// pack of neighbouring neurons (the CPU kernels: csrc/cpu/lanes_cpu.h specialises Lanes<> for GCC vector types).
// Control flow that depends on data is written with select() and any(), so the same source serves both: a pack
// keeps iterating while any of its lanes needs to. No torch headers: nvcc compiles this anywhere.
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

#if defined(__CUDA_ARCH__)
#define NA_UNROLL _Pragma("unroll")
#else
#define NA_UNROLL
#endif

// Per-ISA symbol names. The CPU kernels are compiled once per instruction set (csrc/cpu/isa_*.cpp: AVX2 and the
// x86-64 baseline) into one library that picks one at load time. An inline function or template instantiated in
// two translation units with different instruction sets must not share a symbol: the linker would keep one copy
// for both, and the baseline path could run AVX2 code. So every function of csrc/core lives in an inline
// namespace named after the instruction set of its translation unit (NA_ISA, default `generic`: the binding and
// CUDA units); plain data (the configurations the bindings fill) stays outside it, one type for all.
#ifndef NA_ISA
#define NA_ISA generic
#endif
#define NA_ISA_BEGIN inline namespace NA_ISA {
#define NA_ISA_END }

namespace na {
NA_ISA_BEGIN

// expf/exp and logf/log exist with these names in host C and in CUDA device code; std::exp is not usable on the
// device.
NA_HD float na_exp(float x) { return expf(x); }
NA_HD double na_exp(double x) { return exp(x); }
NA_HD float na_log(float x) { return logf(x); }
NA_HD double na_log(double x) { return log(x); }

template <typename V>
struct Lanes {
  using scalar = V;
  using mask = bool;
  static NA_HD V splat(scalar x) { return x; }
  static NA_HD V select(mask m, V a, V b) { return m ? a : b; }
  static NA_HD bool any(mask m) { return m; }
  static NA_HD mask and_not(mask a, mask b) { return a && !b; }
  static NA_HD V exp(V x) { return na_exp(x); }
  static NA_HD V log(V x) { return na_log(x); }
  template <typename S>
  static NA_HD V load(const S* p) {
    return static_cast<V>(*p);
  }
  template <typename S>
  static NA_HD void store(S* p, V v) {
    *p = static_cast<S>(v);
  }
};

NA_ISA_END
}  // namespace na
