// Stand-in for cuda_bf16.h where no CUDA toolkit headers exist (test-only); see cuda_fp16.h in this folder.
#pragma once
#include <cstdio>
#include <cstdlib>

struct __nv_bfloat16 {
  unsigned short x;
};
inline __nv_bfloat16 __float2bfloat16_rn(float) {
  std::fprintf(stderr, "na_emu: bfloat16 needs the real cuda_bf16.h\n");
  std::abort();
}
inline float __bfloat162float(__nv_bfloat16) {
  std::fprintf(stderr, "na_emu: bfloat16 needs the real cuda_bf16.h\n");
  std::abort();
}
