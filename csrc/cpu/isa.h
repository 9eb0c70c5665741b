// The CPU kernels of one instruction set, as a table the binding (lif_cpu.cpp) picks from at load time.
//
// A kernel works on one block of neurons already gathered into compute-type planes: `planes` arrays of [T, w]
// (plane i at buf + i * T * w; w = the row stride, nb <= w the neurons in use, the rest zero-padded to a whole
// pack). Plane 0 holds c, plane 1 the output (forward) or g, which the backward overwrites with the gradient,
// planes 2.. the rule's Rule::kCpuPlanes workspace. With a learnable decay (docs/algorithm.md §12) `lam` is the
// block's row of w leaks and the backward writes dL/dlam to the row `glam` (both null without one). `finite`: the
// binding found every c, g and lam of the block finite (the kernels clamp lam to [0, 1], so beta c is finite too),
// so a rule with Rule::kGuardFree may run its loops without the §10 masks, which are all false then. The tables are
// defined by isa_kernels.h, compiled once per instruction set (isa_baseline.cpp, isa_avx2.cpp). Only plain data here:
// no inline function may be compiled under two instruction sets (see NA_ISA in core/lanes.h).
#pragma once

#include <cstdint>

#include "../core/lif.h"
#include "../core/rules/rules.h"

namespace na {
namespace cpu {

constexpr int64_t kBlock = 64;    // neurons per block; a multiple of every pack width
constexpr int64_t kMaxLanes = 8;  // the widest pack (8 floats in an AVX2 register): block rows are padded to it

template <typename acc_t, typename Config>
using BackwardFn = void (*)(acc_t* buf, int64_t T, int64_t w, int64_t nb, const LifConfig&, const Config&,
                            const acc_t* lam, acc_t* glam, bool finite);

template <typename acc_t>
struct BlockKernels {
  // The block copies of a tensor stored in acc_t itself (float32, float64), at this instruction set's width: T rows
  // of nb values at src + t * N into dst + t * w, zero-padded to w (gather; with `check`, returns whether every
  // value is finite), and back (scatter). Half and bfloat16 convert in lif_cpu.cpp.
  bool (*gather)(const acc_t* src, acc_t* dst, int64_t N, int64_t T, int64_t nb, int64_t w, bool check);
  void (*scatter)(const acc_t* src, acc_t* dst, int64_t N, int64_t T, int64_t nb, int64_t w);
  void (*forward)(acc_t* buf, int64_t T, int64_t w, int64_t nb, const LifConfig&, const acc_t* lam);
#define NA_RULE_FIELD(name, Type, args) BackwardFn<acc_t, Type##Config> name;
  NA_RULES(NA_RULE_FIELD)  // one backward per rule
#undef NA_RULE_FIELD
};

struct IsaKernels {
  const char* name;  // "avx2" or "baseline": what NA_CUDA_CPU_ISA and na_cuda.backends() call it
  BlockKernels<float> f32;
  BlockKernels<double> f64;
};

extern const IsaKernels kBaselineKernels;  // x86-64 SSE2 (or the target's default elsewhere): runs on any CPU
#if defined(__x86_64__)
#define NA_CPU_HAVE_AVX2_UNIT 1
extern const IsaKernels kAvx2Kernels;  // AVX2: 8 float lanes instead of 4; chosen when the CPU has it
#endif

}  // namespace cpu
}  // namespace na
