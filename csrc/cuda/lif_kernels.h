// Host launchers of the na_cuda CUDA kernels, on raw pointers, with no torch headers and no CUDA half/bf16 types
// (the binding, lif_cuda.cu, passes void* plus a DType). Tensors are [T, N] contiguous; one thread = one neuron,
// looping over T. The launchers enqueue on `stream` and return at once (the caller checks the launch); N == 0
// launches nothing. `workspace_planes()` says how many [T, N] compute-type planes the caller allocates for a
// backward (passed as `ws`, or nullptr). The workspace layout: docs/kernels.md ("csrc/cuda/lif_kernels.h").
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "../core/lif.h"
#include "../core/rules/rules.h"

namespace na {
namespace cuda {

// Storage type of the tensors. Compute type: float for Float16/BFloat16/Float32, double for Float64.
enum class DType : int { Float16 = 0, BFloat16 = 1, Float32 = 2, Float64 = 3 };

// True when the compute type (and so the workspace element type) is double.
inline bool compute_is_double(DType dt) { return dt == DType::Float64; }

// True when T keeps the rule's state on chip (NA: NaRegs buckets of 8, 16 and 32 steps).
template <typename Rule>
constexpr bool on_chip(int64_t T) {
  return Rule::kOnChip && T <= Rule::kOnChipMaxT;
}

// [T, N] compute-type planes the caller must allocate for the backward of `Rule` (see the file comment).
template <typename Rule>
inline int workspace_planes(DType dt, int64_t T) {
  if (on_chip<Rule>(T)) return 0;
  const bool alias = dt == DType::Float32 || dt == DType::Float64;  // the gradient output can hold plane 0
  return Rule::kCudaPlanes - (alias && Rule::kGradHoldsPlane0 ? 1 : 0);
}

// out = PSC a (lif.psc), spikes s or the membrane potential (lif.mem) of the LIF forward (core/lif.h:
// lif_forward_neuron). `decay`: null, or the learnable lam per neuron ([N], compute type; §12).
void lif_forward(DType dt, const void* c, const void* decay, void* out, int64_t T, int64_t N, const LifConfig& lif,
                 cudaStream_t stream);

// grad_c of `Rule` (Rule::neuron: for NA the weights, SNS runs and phi fused in one launch). Instantiated in
// lif_kernels.cu for every rule of NA_RULES. `decay`/`gdecay`: null, or the learnable lam per neuron and
// where its dL/dlam goes ([N], compute type; §12).
template <typename Rule>
void backward(DType dt, const void* grad_out, const void* c, const void* decay, void* grad, void* gdecay, void* ws,
              int64_t T, int64_t N, const LifConfig& lif, const typename Rule::Config& cfg, cudaStream_t stream);

// One instantiation per rule of the table (core/rules/rules.h): declared here, defined in lif_kernels.cu.
#define NA_BACKWARD_INST(PREFIX, Type)                                                                         \
  PREFIX template void backward<Type##Rule>(DType, const void*, const void*, const void*, void*, void*, void*, \
                                            int64_t, int64_t, const LifConfig&, const Type##Config&, cudaStream_t);
#define NA_BACKWARD_EXTERN(name, Type, args) NA_BACKWARD_INST(extern, Type)
NA_RULES(NA_BACKWARD_EXTERN)
#undef NA_BACKWARD_EXTERN

}  // namespace cuda
}  // namespace na
