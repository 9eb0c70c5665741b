// CUDA implementations of the na_cuda ops: the same argument checks as csrc/cpu/lif_cpu.cpp, then one kernel
// launch per op (csrc/cuda/lif_kernels.cu) on the current stream of the input's device. Asynchronous: nothing here
// waits for the GPU. Workspaces come from the caching allocator and are released (stream-ordered) on return.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "../op_impls.h"
#include "lif_kernels.h"

namespace na {
namespace {

cuda::DType kernel_dtype(at::ScalarType st) {
  switch (st) {
    case at::kHalf:
      return cuda::DType::Float16;  // at::Half and __half share the IEEE binary16 layout
    case at::kBFloat16:
      return cuda::DType::BFloat16;  // at::BFloat16 and __nv_bfloat16 share the bfloat16 layout
    case at::kFloat:
      return cuda::DType::Float32;
    case at::kDouble:
      return cuda::DType::Float64;
    default:
      break;
  }
  TORCH_CHECK(false, "na_cuda: no CUDA kernel for dtype ", st, "; use float16, bfloat16, float32 or float64");
  return cuda::DType::Float32;  // unreachable
}

inline void* ptr_or_null(const at::Tensor& t) { return t.defined() ? t.mutable_data_ptr() : nullptr; }

// The backend of csrc/op_impls.h: device guard, contiguous inputs, the output, the workspace the rule needs
// ([planes, T, N] float, or double for float64, from the caching allocator), one launch, the launch check.
struct Cuda {
  static at::Tensor forward(const at::Tensor& c, const std::optional<at::Tensor>& decay, const LifConfig& cfg) {
    const c10::cuda::CUDAGuard guard(c.device());
    const at::Tensor cc = c.contiguous();
    const at::Tensor dc = decay.has_value() ? decay->contiguous() : at::Tensor();
    at::Tensor out = at::empty_like(cc);
    const int64_t T = cc.size(0), N = num_neurons(cc);
    if (N == 0) return out;
    cuda::lif_forward(kernel_dtype(cc.scalar_type()), cc.const_data_ptr(), dc.defined() ? dc.const_data_ptr() : nullptr,
                      out.mutable_data_ptr(), T, N, cfg, at::cuda::getCurrentCUDAStream());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    return out;
  }

  template <typename Rule>
  static std::tuple<at::Tensor, at::Tensor> backward(const at::Tensor& grad_out, const at::Tensor& c,
                                                     const std::optional<at::Tensor>& decay, const LifConfig& lcfg,
                                                     const typename Rule::Config& rcfg) {
    const c10::cuda::CUDAGuard guard(c.device());
    const at::Tensor cc = c.contiguous(), gc = grad_out.contiguous();
    const at::Tensor dc = decay.has_value() ? decay->contiguous() : at::Tensor();
    at::Tensor grad = at::empty_like(cc);
    at::Tensor gdecay = dc.defined() ? at::empty_like(dc) : at::empty({0}, cc.options());
    const int64_t T = cc.size(0), N = num_neurons(cc);
    if (N == 0) return {grad, gdecay};
    const cuda::DType dt = kernel_dtype(cc.scalar_type());
    const int planes = cuda::workspace_planes<Rule>(dt, T);
    at::Tensor ws;
    if (planes > 0)
      ws = at::empty({planes, T, N}, cc.options().dtype(cuda::compute_is_double(dt) ? at::kDouble : at::kFloat));
    cuda::backward<Rule>(dt, gc.const_data_ptr(), cc.const_data_ptr(), dc.defined() ? dc.const_data_ptr() : nullptr,
                         grad.mutable_data_ptr(), dc.defined() ? gdecay.mutable_data_ptr() : nullptr, ptr_or_null(ws),
                         T, N, lcfg, rcfg, at::cuda::getCurrentCUDAStream());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    return {grad, gdecay};
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(na_cuda, CUDA, m) { register_ops<Cuda>(m); }

}  // namespace na
