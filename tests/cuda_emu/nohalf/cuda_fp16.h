// Stand-in for cuda_fp16.h where no CUDA toolkit headers exist (test-only): the storage type only, so that
// lif_kernels.cu compiles for float32/float64. Its conversions abort; tests/_cuda_emu.py skips float16 and
// bfloat16 there (na_emu_real_half() == 0).
#pragma once
#include <cstdio>
#include <cstdlib>

struct __half {
  unsigned short x;
};
inline __half __float2half_rn(float) {
  std::fprintf(stderr, "na_emu: float16 needs the real cuda_fp16.h\n");
  std::abort();
}
inline float __half2float(__half) {
  std::fprintf(stderr, "na_emu: float16 needs the real cuda_fp16.h\n");
  std::abort();
}
