// CUDA kernels of na_cuda: one thread per neuron, each running the shared per-neuron math of csrc/core over T.
// No torch headers, so `nvcc -c` checks this file anywhere (scripts/check_cuda_compile.sh).
//
// Memory access: tensors are [T, N] contiguous and thread n handles column n, so at each step t the 32 threads of
// a warp touch 32 consecutive elements of row t: every load and store is coalesced (128 B per warp for float).
#include "lif_kernels.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <type_traits>

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
// length varies per neuron); 2^28 threads are ~1000x what a GPU keeps resident, and the cap keeps the block count
// inside gridDim.x and an unsigned, whatever N is.

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
// No __launch_bounds__(256): its only guarantee already holds at the default 255-register cap, and with it ptxas
// spilled the sm_80 STBP kernels (docs/benchmarks.md, "Kernel design measurements").

template <Reset R, typename scalar_t, typename acc_t>
__global__ void lif_forward_kernel(const scalar_t* __restrict__ c, const acc_t* __restrict__ decay,
                                   scalar_t* __restrict__ out, int64_t T, int64_t N, LifCoef<acc_t> lif) {
  for (int64_t n = first_neuron(); n < N; n += grid_stride())
    lif_forward_neuron<R>(c + n, out + n, T, N, lif.at(decay, nullptr, n));
}

template <typename P>
__device__ __forceinline__ P* column(P* plane, int64_t n) {
  return plane == nullptr ? nullptr : plane + n;
}

// One backward kernel for every rule (Rule::neuron, csrc/core/rules). For NA it is fused in one pass per neuron: a
// forward pass stores u[t], then a reverse pass computes the weights W[t] on the fly from G and, for each step t,
// runs the SNS neighbour (and re-simulates the original), and writes X[t] over u[t] and grad[t]. All of it is the
// same thread, so program order makes every value visible without synchronisation.
//
// NA with T <= B (B = 8, 16, 32): c[t] and u[t]/X[t] live in registers (NaRegs, loops unrolled), so the DRAM
// traffic per neuron-step is the minimum: c and G read once, grad written once. T > 32: the state is one [T, N]
// plane in the workspace (4 B per neuron-step in fp32, written and read back by the same thread; the run re-reads
// c[k] and X[k] for a few steps, rows this warp touched in the previous iterations: L1/L2 hits).
template <typename Rule, Reset R, int B, typename scalar_t, typename acc_t>
__global__ void backward_kernel(const scalar_t* __restrict__ g, const scalar_t* __restrict__ c,
                                const acc_t* __restrict__ decay, scalar_t* grad, acc_t* __restrict__ gdecay, acc_t* w0,
                                acc_t* w1, int64_t T, int64_t N, LifCoef<acc_t> lif,
                                typename Rule::template Coef<acc_t> coef) {
  for (int64_t n = first_neuron(); n < N; n += grid_stride())
    Rule::template neuron<R, B>(c + n, g + n, column(w0, n), column(w1, n), grad + n, T, N, N, lif.at(decay, gdecay, n),
                                coef);
}

// ---------------------------------------------------------------------------------------------------------
// Typed launchers.

// The compute-type plane `i` of the workspace ([planes, T, N]).
template <typename acc_t>
acc_t* plane(void* ws, int64_t i, int64_t T, int64_t N) {
  return static_cast<acc_t*>(ws) + i * T * N;
}

// True when the storage type is the compute type, so a plane the rule lets `grad` alias lives in the gradient
// output (see workspace_planes() in lif_kernels.h).
template <typename scalar_t, typename acc_t>
constexpr bool kAlias = std::is_same<scalar_t, acc_t>::value;

// Calls f(scalar_t{}, acc_t{}) for the storage type `dt`.
template <typename F>
void dispatch(DType dt, const F& f) {
  switch (dt) {
    case DType::Float16:
      f(Half{}, float{});
      break;
    case DType::BFloat16:
      f(BFloat16{}, float{});
      break;
    case DType::Float32:
      f(float{}, float{});
      break;
    case DType::Float64:
      f(double{}, double{});
      break;
  }
}

// The kernel for T: NA's smallest on-chip bucket that holds T, else the workspace version (T < 2^31: checked by
// the bindings).
template <typename Rule, Reset R, typename scalar_t, typename acc_t>
auto backward_kernel_for(int64_t T) {
  if constexpr (Rule::kOnChip) {
    static_assert(Rule::kOnChipMaxT == 32, "the buckets below must end at kOnChipMaxT");
    return T <= 8    ? backward_kernel<Rule, R, 8, scalar_t, acc_t>
           : T <= 16 ? backward_kernel<Rule, R, 16, scalar_t, acc_t>
           : T <= 32 ? backward_kernel<Rule, R, 32, scalar_t, acc_t>
                     : backward_kernel<Rule, R, 0, scalar_t, acc_t>;
  } else {
    return backward_kernel<Rule, R, 0, scalar_t, acc_t>;
  }
}

}  // namespace

void lif_forward(DType dt, const void* c, const void* decay, void* out, int64_t T, int64_t N, const LifConfig& cfg,
                 cudaStream_t stream) {
  if (N <= 0 || T <= 0) return;
  dispatch(dt, [&](auto s, auto a) {
    using scalar_t = decltype(s);
    using acc_t = decltype(a);
    with_reset(cfg, [&](auto reset) {
      launch(lif_forward_kernel<decltype(reset)::value, scalar_t, acc_t>, N, stream, static_cast<const scalar_t*>(c),
             static_cast<const acc_t*>(decay), static_cast<scalar_t*>(out), T, N, LifCoef<acc_t>(cfg));
    });
  });
}

// Workspace pointers as workspace_planes() counted them: none on chip; else plane 0 in the gradient where the rule
// and the types allow it, the rest from `ws` in order.
template <typename Rule>
void backward(DType dt, const void* g, const void* c, const void* decay, void* grad, void* gdecay, void* ws, int64_t T,
              int64_t N, const LifConfig& lcfg, const typename Rule::Config& rcfg, cudaStream_t stream) {
  if (N <= 0 || T <= 0) return;
  dispatch(dt, [&](auto s, auto a) {
    using scalar_t = decltype(s);
    using acc_t = decltype(a);
    acc_t* w0 = nullptr;
    acc_t* w1 = nullptr;
    if (!on_chip<Rule>(T)) {
      int next = 0;
      w0 = Rule::kGradHoldsPlane0 && kAlias<scalar_t, acc_t> ? static_cast<acc_t*>(grad)
                                                             : plane<acc_t>(ws, next++, T, N);
      if (Rule::kCudaPlanes > 1) w1 = plane<acc_t>(ws, next, T, N);
    }
    with_reset<Rule::kSoftReset>(lcfg, [&](auto reset) {
      launch(backward_kernel_for<Rule, decltype(reset)::value, scalar_t, acc_t>(T), N, stream,
             static_cast<const scalar_t*>(g), static_cast<const scalar_t*>(c), static_cast<const acc_t*>(decay),
             static_cast<scalar_t*>(grad), static_cast<acc_t*>(gdecay), w0, w1, T, N, LifCoef<acc_t>(lcfg),
             typename Rule::template Coef<acc_t>(rcfg));
    });
  });
}

#define NA_BACKWARD_DEFINE(name, Type, args) NA_BACKWARD_INST(, Type)
NA_RULES(NA_BACKWARD_DEFINE)
#undef NA_BACKWARD_DEFINE

}  // namespace cuda
}  // namespace na
