// CUDA kernels of na_cuda: one thread per neuron, each running the shared per-neuron math of csrc/core over
// T. No torch headers, so `nvcc -c` checks this file anywhere (scripts/check_cuda_compile.sh).
//
// Memory access: tensors are [T, N] contiguous and thread n handles column n, so at each step t the 32 threads of
// a warp touch 32 consecutive elements of row t: every load and store is coalesced (128 B per warp for float).
#include "lif_kernels.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <type_traits>

#include "../core/lif.h"
#include "../core/rules/na.h"
#include "../core/rules/stbp.h"
#include "../core/rules/tssl.h"

namespace na {
namespace cuda {
namespace {

// ---------------------------------------------------------------------------------------------------------
// Storage types. csrc/core converts with static_cast<acc_t>(x) / static_cast<scalar_t>(acc). torch builds .cu
// files with -D__CUDA_NO_HALF_CONVERSIONS__ -D__CUDA_NO_BFLOAT16_CONVERSIONS__, which remove exactly those
// conversions from __half / __nv_bfloat16, so the kernels store through these layout-identical wrappers (one
// 2-byte member) whose explicit conversions call the intrinsics that exist under every flag set.

struct alignas(2) Half {
  __half x;
  Half() = default;
  __host__ __device__ __forceinline__ explicit Half(float f) : x(__float2half_rn(f)) {}
  __host__ __device__ __forceinline__ explicit operator float() const { return __half2float(x); }
};

struct alignas(2) BFloat16 {
  __nv_bfloat16 x;
  BFloat16() = default;
  __host__ __device__ __forceinline__ explicit BFloat16(float f) : x(__float2bfloat16_rn(f)) {}
  __host__ __device__ __forceinline__ explicit operator float() const { return __bfloat162float(x); }
};

static_assert(sizeof(Half) == 2 && sizeof(BFloat16) == 2, "wrappers must have the storage layout");
static_assert(std::is_trivially_copyable<Half>::value && std::is_trivially_copyable<BFloat16>::value, "");

// ---------------------------------------------------------------------------------------------------------
// Launch shape. 256 threads per block (8 warps: enough to hide latency per SM, small enough that the partial last
// block wastes little). The grid covers N with one neuron per thread up to kMaxBlocks * 256 = 2^28 neurons, and a
// grid-stride loop takes the rest. One thread per neuron as long as possible balances best (the NA inner loop
// length varies per neuron), and 2^28 threads are ~1000x what an H100 keeps resident (~270k), so past the cap the
// extra loop trips cost nothing; the cap keeps the block count well inside gridDim.x's 2^31 - 1 limit and an
// unsigned, whatever N is.

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = int64_t(1) << 20;

inline unsigned grid_for(int64_t N) {
  return static_cast<unsigned>(std::min<int64_t>((N + kThreads - 1) / kThreads, kMaxBlocks));
}

// The first neuron of this thread and the grid stride, both in int64 (blockIdx.x * blockDim.x overflows 32 bits
// past 2^32 threads; an int64 index also keeps t * N + n in int64 inside csrc/core).
__device__ __forceinline__ int64_t first_neuron() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ int64_t grid_stride() { return static_cast<int64_t>(gridDim.x) * blockDim.x; }

// Every launch goes through here. The test-only host emulation (tests/cuda_emu) compiles this file with g++ and
// NA_HOST_EMULATION, and runs the grid as a loop on the host instead (its shim header defines na_emu::launch).
template <typename... P, typename... A>
void launch(void (*kernel)(P...), int64_t N, cudaStream_t stream, A... args) {
#if defined(NA_HOST_EMULATION)
  (void)stream;
  na_emu::launch(grid_for(N), kThreads, kernel, static_cast<P>(args)...);
#else
  kernel<<<grid_for(N), kThreads, 0, stream>>>(static_cast<P>(args)...);
#endif
}

// ---------------------------------------------------------------------------------------------------------
// Kernels. `c` and `g` are read-only and never alias anything, hence __restrict__; the workspace planes and
// `grad` may alias each other (float32/float64), so they are plain pointers.
// No __launch_bounds__(256): its only guarantee (a 256-thread block always fits) already holds at the default
// 255-register cap, and with it ptxas squeezed the sm_80 STBP kernels to 32 registers with 4-8 B of spills.

template <typename scalar_t, typename acc_t>
__global__ void lif_forward_kernel(const scalar_t* __restrict__ c, scalar_t* __restrict__ out, int64_t T,
                                   int64_t N, LifCoef<acc_t> lif) {
  for (int64_t n = first_neuron(); n < N; n += grid_stride()) lif_forward_neuron(c + n, out + n, T, N, lif);
}

// NA backward, fused in one pass per neuron (csrc/core/rules/na.h): a forward pass stores u[t], then a reverse pass
// computes the weights W[t] on the fly from G and, for each step t, runs the SNS neighbour (and re-simulates the
// original) until the neighbour's first reset, summing the stored X[k], and writes X[t] over u[t] and grad[t].
// All of it is the same thread, so program order makes every value visible without synchronisation.
//
// T <= B (B = 8, 16, 32): c[t] and u[t]/X[t] live in registers (na_backward_neuron_onchip, loops unrolled), so
// the DRAM traffic per neuron-step is the minimum: c and G read once, grad written once. T > 32: the state is
// one [T, N] plane in the workspace (4 B per neuron-step in fp32, written and read back by the same thread; the
// run re-reads c[k] and X[k] for a few steps, rows this warp touched in the previous iterations: L1/L2 hits).
template <int B, typename scalar_t, typename acc_t>
__global__ void na_backward_kernel(const scalar_t* __restrict__ g, const scalar_t* __restrict__ c, scalar_t* grad,
                                   acc_t* w, int64_t T, int64_t N, LifCoef<acc_t> lif, NaCoef<acc_t> na) {
  for (int64_t n = first_neuron(); n < N; n += grid_stride()) {
    if constexpr (B > 0) {
      na_backward_neuron_onchip<B>(c + n, g + n, grad + n, T, N, lif, na);
    } else {
      na_backward_neuron(c + n, g + n, w + n, static_cast<acc_t*>(nullptr), grad + n, T, N, N, lif, na);
    }
  }
}

template <typename scalar_t, typename acc_t>
__global__ void stbp_backward_kernel(const scalar_t* __restrict__ g, const scalar_t* __restrict__ c, scalar_t* grad,
                                     acc_t* w, int64_t T, int64_t N, LifCoef<acc_t> lif, StbpCoef<acc_t> sg) {
  for (int64_t n = first_neuron(); n < N; n += grid_stride())
    stbp_backward_neuron(c + n, g + n, w + n, grad + n, T, N, N, lif, sg);
}

template <typename scalar_t, typename acc_t>
__global__ void tssl_backward_kernel(const scalar_t* __restrict__ g, const scalar_t* __restrict__ c, scalar_t* grad,
                                     acc_t* wu, acc_t* wa, int64_t T, int64_t N, LifCoef<acc_t> lif) {
  for (int64_t n = first_neuron(); n < N; n += grid_stride())
    tssl_backward_neuron(c + n, g + n, wu + n, wa + n, grad + n, T, N, N, lif);
}

// ---------------------------------------------------------------------------------------------------------
// Typed launchers.

// The compute-type plane `i` of the workspace ([planes, T, N]).
template <typename acc_t>
acc_t* plane(void* ws, int64_t i, int64_t T, int64_t N) {
  return static_cast<acc_t*>(ws) + i * T * N;
}

// True when the storage type is the compute type, so a plane that csrc/core lets `grad` alias lives in the
// gradient output (see workspace_planes() in lif_kernels.h).
template <typename scalar_t, typename acc_t>
constexpr bool kAlias = std::is_same<scalar_t, acc_t>::value;

template <typename scalar_t, typename acc_t>
void forward_typed(const void* c, void* out, int64_t T, int64_t N, const LifConfig& cfg, cudaStream_t stream) {
  launch(lif_forward_kernel<scalar_t, acc_t>, N, stream, static_cast<const scalar_t*>(c), static_cast<scalar_t*>(out),
         T, N, LifCoef<acc_t>(cfg));
}

// The smallest on-chip bucket that holds T, else the workspace plane (T < 2^31: checked by the bindings).
template <typename scalar_t, typename acc_t>
void na_typed(const void* g, const void* c, void* grad, void* ws, int64_t T, int64_t N, const LifConfig& lcfg,
              const NaConfig& ncfg, cudaStream_t stream) {
  static_assert(kNaOnChipMaxT == 32, "the buckets below must end at kNaOnChipMaxT");
  auto kernel = T <= 8    ? na_backward_kernel<8, scalar_t, acc_t>
                : T <= 16 ? na_backward_kernel<16, scalar_t, acc_t>
                : T <= 32 ? na_backward_kernel<32, scalar_t, acc_t>
                          : na_backward_kernel<0, scalar_t, acc_t>;
  launch(kernel, N, stream, static_cast<const scalar_t*>(g), static_cast<const scalar_t*>(c),
         static_cast<scalar_t*>(grad), static_cast<acc_t*>(ws), T, N, LifCoef<acc_t>(lcfg),
         NaCoef<acc_t>(ncfg));
}

template <typename scalar_t, typename acc_t>
void stbp_typed(const void* g, const void* c, void* grad, void* ws, int64_t T, int64_t N, const LifConfig& lcfg,
                const StbpConfig& scfg, cudaStream_t stream) {
  acc_t* w = kAlias<scalar_t, acc_t> ? static_cast<acc_t*>(grad) : plane<acc_t>(ws, 0, T, N);
  launch(stbp_backward_kernel<scalar_t, acc_t>, N, stream, static_cast<const scalar_t*>(g),
         static_cast<const scalar_t*>(c), static_cast<scalar_t*>(grad), w, T, N, LifCoef<acc_t>(lcfg),
         StbpCoef<acc_t>(scfg));
}

template <typename scalar_t, typename acc_t>
void tssl_typed(const void* g, const void* c, void* grad, void* ws, int64_t T, int64_t N, const LifConfig& lcfg,
                cudaStream_t stream) {
  constexpr bool alias = kAlias<scalar_t, acc_t>;
  acc_t* wu = alias ? static_cast<acc_t*>(grad) : plane<acc_t>(ws, 0, T, N);
  acc_t* wa = plane<acc_t>(ws, alias ? 0 : 1, T, N);
  launch(tssl_backward_kernel<scalar_t, acc_t>, N, stream, static_cast<const scalar_t*>(g),
         static_cast<const scalar_t*>(c), static_cast<scalar_t*>(grad), wu, wa, T, N, LifCoef<acc_t>(lcfg));
}

// Calls FN<scalar_t, acc_t>(args...) for the storage type `dt`.
#define NA_CUDA_DISPATCH(dt, FN, ...)               \
  switch (dt) {                                     \
    case DType::Float16:                            \
      FN<Half, float>(__VA_ARGS__);                 \
      break;                                        \
    case DType::BFloat16:                           \
      FN<BFloat16, float>(__VA_ARGS__);             \
      break;                                        \
    case DType::Float32:                            \
      FN<float, float>(__VA_ARGS__);                \
      break;                                        \
    case DType::Float64:                            \
      FN<double, double>(__VA_ARGS__);              \
      break;                                        \
  }

}  // namespace

void lif_forward(DType dt, const void* c, void* out, int64_t T, int64_t N, const LifConfig& lif,
                 cudaStream_t stream) {
  if (N <= 0 || T <= 0) return;
  NA_CUDA_DISPATCH(dt, forward_typed, c, out, T, N, lif, stream)
}

void na_backward(DType dt, const void* grad_out, const void* c, void* grad, void* ws, int64_t T, int64_t N,
                 const LifConfig& lif, const NaConfig& na, cudaStream_t stream) {
  if (N <= 0 || T <= 0) return;
  NA_CUDA_DISPATCH(dt, na_typed, grad_out, c, grad, ws, T, N, lif, na, stream)
}

void stbp_backward(DType dt, const void* grad_out, const void* c, void* grad, void* ws, int64_t T, int64_t N,
                   const LifConfig& lif, const StbpConfig& sg, cudaStream_t stream) {
  if (N <= 0 || T <= 0) return;
  NA_CUDA_DISPATCH(dt, stbp_typed, grad_out, c, grad, ws, T, N, lif, sg, stream)
}

void tssl_backward(DType dt, const void* grad_out, const void* c, void* grad, void* ws, int64_t T, int64_t N,
                   const LifConfig& lif, cudaStream_t stream) {
  if (N <= 0 || T <= 0) return;
  NA_CUDA_DISPATCH(dt, tssl_typed, grad_out, c, grad, ws, T, N, lif, stream)
}

#undef NA_CUDA_DISPATCH

}  // namespace cuda
}  // namespace na
