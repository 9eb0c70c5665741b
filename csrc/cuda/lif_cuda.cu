// CUDA implementations of the na_cuda ops: the same argument checks as csrc/cpu/lif_cpu.cpp, then one kernel
// launch per op (csrc/cuda/lif_kernels.cu) on the current stream of the input's device. Asynchronous: nothing here
// waits for the GPU. Workspaces come from the caching allocator and are released (stream-ordered) on return.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "../core/lif.h"
#include "../op_args.h"
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

// The extra compute-type planes `op` needs ([planes, T, N] float, or double for float64), or an undefined tensor.
at::Tensor workspace(cuda::Op op, const at::Tensor& like, int64_t T, int64_t N) {
  const cuda::DType dt = kernel_dtype(like.scalar_type());
  const int planes = cuda::workspace_planes(op, dt, T);
  if (planes == 0) return at::Tensor();
  return at::empty({planes, T, N}, like.options().dtype(cuda::compute_is_double(dt) ? at::kDouble : at::kFloat));
}

inline void* ptr_or_null(const at::Tensor& t) { return t.defined() ? t.mutable_data_ptr() : nullptr; }

// The forward kernel of every forward op (checked arguments: op_args.h ForwardOps).
at::Tensor lif_cuda(const at::Tensor& c, const LifConfig& cfg) {
  const c10::cuda::CUDAGuard guard(c.device());
  const at::Tensor cc = c.contiguous();
  at::Tensor out = at::empty_like(cc);
  const int64_t T = cc.size(0), N = num_neurons(cc);
  if (N == 0) return out;
  cuda::lif_forward(kernel_dtype(cc.scalar_type()), cc.const_data_ptr(), out.mutable_data_ptr(), T, N, cfg,
                    at::cuda::getCurrentCUDAStream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

// The three backward ops differ only in the launcher: device guard, contiguous inputs, output, the workspace
// `op` needs, then launch(dtype, g, c, grad, ws, T, N, stream) and the launch check.
template <typename Launch>
at::Tensor backward_cuda(const at::Tensor& grad_out, const at::Tensor& c, cuda::Op op, const Launch& launch) {
  const c10::cuda::CUDAGuard guard(c.device());
  const at::Tensor cc = c.contiguous(), gc = grad_out.contiguous();
  at::Tensor grad = at::empty_like(cc);
  const int64_t T = cc.size(0), N = num_neurons(cc);
  if (N == 0) return grad;
  const at::Tensor ws = workspace(op, cc, T, N);
  launch(kernel_dtype(cc.scalar_type()), gc.const_data_ptr(), cc.const_data_ptr(), grad.mutable_data_ptr(),
         ptr_or_null(ws), T, N, at::cuda::getCurrentCUDAStream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return grad;
}

at::Tensor na_backward_cuda(const at::Tensor& grad_out, const at::Tensor& c, double tau_m, double tau_s,
                            double threshold, bool strict_threshold,
                            c10::string_view output, c10::string_view first_order,
                            int64_t dist_power, double clip) {
  const LifConfig lcfg = backward_args(grad_out, c, tau_m, tau_s, threshold, strict_threshold, str(output));
  const NaConfig ncfg = na_config(str(first_order), dist_power, clip);
  return backward_cuda(grad_out, c, cuda::Op::NaBackward, [&](cuda::DType dt, const void* g, const void* cp, void* d,
                                                              void* ws, int64_t T, int64_t N, cudaStream_t s) {
    cuda::na_backward(dt, g, cp, d, ws, T, N, lcfg, ncfg, s);
  });
}

at::Tensor stbp_backward_cuda(const at::Tensor& grad_out, const at::Tensor& c, double tau_m, double tau_s,
                              double threshold, bool strict_threshold,
                              c10::string_view output, c10::string_view surrogate,
                              double surrogate_alpha, bool detach_reset) {
  const LifConfig lcfg = backward_args(grad_out, c, tau_m, tau_s, threshold, strict_threshold, str(output));
  const StbpConfig scfg = stbp_config(str(surrogate), surrogate_alpha, detach_reset);
  return backward_cuda(grad_out, c, cuda::Op::StbpBackward, [&](cuda::DType dt, const void* g, const void* cp,
                                                                void* d, void* ws, int64_t T, int64_t N,
                                                                cudaStream_t s) {
    cuda::stbp_backward(dt, g, cp, d, ws, T, N, lcfg, scfg, s);
  });
}

at::Tensor tssl_backward_cuda(const at::Tensor& grad_out, const at::Tensor& c, double tau_m, double tau_s,
                              double threshold, bool strict_threshold) {
  const LifConfig lcfg = backward_args(grad_out, c, tau_m, tau_s, threshold, strict_threshold, "psc");
  return backward_cuda(grad_out, c, cuda::Op::TsslBackward, [&](cuda::DType dt, const void* g, const void* cp,
                                                                void* d, void* ws, int64_t T, int64_t N,
                                                                cudaStream_t s) {
    cuda::tssl_backward(dt, g, cp, d, ws, T, N, lcfg, s);
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(na_cuda, CUDA, m) {
  register_forward_ops<&lif_cuda>(m);
  m.impl("na_backward", &na_backward_cuda);
  m.impl("stbp_backward", &stbp_backward_cuda);
  m.impl("tssl_backward", &tssl_backward_cuda);
}

}  // namespace na
