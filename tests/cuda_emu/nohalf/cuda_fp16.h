// Stand-ins for cuda_fp16.h and cuda_bf16.h where no CUDA toolkit headers exist (test-only): the storage types
// only, so that lif_kernels.cu compiles for float32/float64. Their conversions abort; tests/_cuda_emu.py skips
// float16 and bfloat16 there (na_emu_real_half() == 0).
#pragma once
#include <cstdio>
#include <cstdlib>

[[noreturn]] inline void na_emu_no_half() {
  std::fprintf(stderr, "na_emu: float16/bfloat16 need the real cuda_fp16.h/cuda_bf16.h\n");
  std::abort();
}

struct __half {
  unsigned short x;
};
struct __nv_bfloat16 {
  unsigned short x;
};
inline __half __float2half_rn(float) { na_emu_no_half(); }
inline float __half2float(__half) { na_emu_no_half(); }
inline __nv_bfloat16 __float2bfloat16_rn(float) { na_emu_no_half(); }
inline float __bfloat162float(__nv_bfloat16) { na_emu_no_half(); }
