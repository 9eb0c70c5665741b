// Host launchers of the na_cuda CUDA kernels, on raw pointers. No torch headers and no CUDA half/bf16 types in
// this interface: the binding (lif_cuda.cu) passes data pointers as void* plus a DType, so it never sees __half /
// __nv_bfloat16 (torch compiles extension .cu files with -D__CUDA_NO_HALF_CONVERSIONS__ and friends, which make
// those types unusable with csrc/core's static_casts; the kernel TU handles the storage types itself).
//
// Layout: every tensor is [T, N] contiguous, element (t, n) at t * N + n. One thread = one neuron, looping over T.
// The launchers enqueue on `stream` and return at once: no host synchronisation, no error check (the caller runs
// C10_CUDA_KERNEL_LAUNCH_CHECK() right after). N == 0 launches nothing.
//
// Workspace: the backward kernels keep per-neuron [T] arrays in the compute type, as [T, N] planes (NA: one
// state plane, and none for T <= kNaOnChipMaxT, where the state stays in registers; STBP: u; TSSL: u and a).
// Where the storage type is the compute type (float32, float64) and csrc/core allows it, a plane lives in the
// gradient output itself (STBP's u, TSSL's u); `workspace_planes()` says how many planes the caller must
// allocate. Pass them contiguously as `ws` ([planes, T, N] of float, or double for DType::Float64), or nullptr
// when the count is 0.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "../core/lif.h"
#include "../core/rules/na.h"
#include "../core/rules/stbp.h"

namespace na {
namespace cuda {

// Storage type of the tensors. Compute type: float for Float16/BFloat16/Float32, double for Float64.
enum class DType : int { Float16 = 0, BFloat16 = 1, Float32 = 2, Float64 = 3 };

enum class Op : int { Forward = 0, NaBackward = 1, StbpBackward = 2, TsslBackward = 3 };

// True when the compute type (and so the workspace element type) is double.
inline bool compute_is_double(DType dt) { return dt == DType::Float64; }

// Longest T whose NA backward keeps its state on chip (csrc/core/rules/na.h, NaRegs; buckets of 8, 16 and 32 steps).
constexpr int64_t kNaOnChipMaxT = 32;

// [T, N] compute-type planes the caller must allocate for `op` (see the file comment).
inline int workspace_planes(Op op, DType dt, int64_t T) {
  const bool alias = dt == DType::Float32 || dt == DType::Float64;  // grad output can hold u (STBP, TSSL)
  switch (op) {
    case Op::NaBackward:
      return T <= kNaOnChipMaxT ? 0 : 1;  // u/X: read at later steps than grad[t] is written, so not in grad
    case Op::StbpBackward:
      return alias ? 0 : 1;
    case Op::TsslBackward:
      return alias ? 1 : 2;
    default:
      return 0;
  }
}

// out = PSC a (lif.psc) or spikes s of the LIF forward (csrc/core/lif.h: lif_forward_neuron).
void lif_forward(DType dt, const void* c, void* out, int64_t T, int64_t N, const LifConfig& lif,
                 cudaStream_t stream);

// grad_c of the NA rule (csrc/core/rules/na.h: weights, SNS runs and phi fused in one launch).
void na_backward(DType dt, const void* grad_out, const void* c, void* grad, void* ws, int64_t T, int64_t N,
                 const LifConfig& lif, const NaConfig& na, cudaStream_t stream);

// grad_c of STBP (stbp_backward_neuron).
void stbp_backward(DType dt, const void* grad_out, const void* c, void* grad, void* ws, int64_t T, int64_t N,
                   const LifConfig& lif, const StbpConfig& sg, cudaStream_t stream);

// grad_c of TSSL-BP (tssl_backward_neuron); `lif.psc` must be true (checked by the binding).
void tssl_backward(DType dt, const void* grad_out, const void* c, void* grad, void* ws, int64_t T, int64_t N,
                   const LifConfig& lif, cudaStream_t stream);

}  // namespace cuda
}  // namespace na
