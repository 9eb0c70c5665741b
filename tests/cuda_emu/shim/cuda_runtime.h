// Host emulation of the CUDA runtime subset that csrc/cuda/lif_kernels.cu uses (test-only; tests/_cuda_emu.py
// builds it). Placed first on the include path, so the kernel file's <cuda_runtime.h> / <cuda_runtime_api.h>
// resolve here: the execution-space keywords are empty, the thread/block indices are host variables, and a
// launch is a loop over the grid (na_emu::launch, called by lif_kernels.cu's launch() under NA_HOST_EMULATION).
//
// Threads run one after another, each to completion. That is exact for these kernels: every thread owns its
// neurons' columns, and there is no shared memory, barrier or atomic.
#pragma once

#define NA_HOST_EMULATION 1
// Defined before the real cuda_fp16.h / cuda_bf16.h are included: their crt/host_defines.h keeps them.
#define __host__
#define __device__
#define __global__
#ifndef __forceinline__
#define __forceinline__ inline __attribute__((always_inline))
#endif

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

struct CUstream_st;
typedef CUstream_st* cudaStream_t;

namespace na_emu {
struct Index3 {
  unsigned x, y, z;
};
}  // namespace na_emu

// The built-in variables, set by na_emu::launch for each emulated thread (defined in emu_abi.cpp).
extern na_emu::Index3 threadIdx, blockIdx, blockDim, gridDim;

namespace na_emu {

extern int64_t max_blocks;  // grid cap, so that a small N exercises the kernels' grid-stride loops
extern int64_t blocks_run;  // blocks run by all launches so far
extern int64_t bad_launches;  // launches whose shape a GPU would refuse

template <typename... P, typename... A>
void launch(unsigned grid, unsigned block, void (*kernel)(P...), A... args) {
  // The limits of the real launch: gridDim.x in [1, 2^31 - 1], blockDim.x in [1, 1024].
  if (grid == 0 || grid > 0x7fffffffu || block == 0 || block > 1024) {
    ++bad_launches;
    return;
  }
  const unsigned g = static_cast<unsigned>(std::min<int64_t>(grid, max_blocks));
  gridDim = {g, 1, 1};
  blockDim = {block, 1, 1};
  for (unsigned b = 0; b < g; ++b) {
    blockIdx = {b, 0, 0};
    for (unsigned t = 0; t < block; ++t) {
      threadIdx = {t, 0, 0};
      kernel(args...);
    }
    ++blocks_run;
  }
}

}  // namespace na_emu
