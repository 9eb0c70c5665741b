// CUDA implementations of the na_cuda ops, in a library of their own (na_cuda/_C_cuda, loaded only under a CUDA
// build of torch: it links libtorch_cuda and the CUDA runtime, which a CPU torch lacks). The same argument checks
// as csrc/cpu/lif_cpu.cpp, then one kernel launch per op (csrc/cuda/lif_kernels.cu) on the current stream of the
// input's device. Asynchronous: nothing here waits for the GPU. Workspaces come from torch's caching allocator
// and are released (stream-ordered) on return.
//
// Stable ABI (csrc/binding.h) plus the CUDA runtime's own header: the device guard is torch::stable's, the current
// stream comes from the AOTI shim (aoti_torch_get_current_cuda_stream, declared under USE_CUDA; stable::Stream's
// nativeHandle() would need torch 2.13), so no ATen/c10 CUDA header is needed (those pull in cuBLAS/cuSPARSE
// headers that minimal toolkits lack).
#ifndef USE_CUDA
#define USE_CUDA 1
#endif
#include <torch/csrc/inductor/aoti_torch/c/shim.h>
#include <torch/csrc/stable/accelerator.h>

#include <cuda_runtime_api.h>

#include "../op_impls.h"
#include "lif_kernels.h"

namespace na {
namespace {

cuda::DType kernel_dtype(ScalarType st) {
  switch (st) {
    case ScalarType::Half:
      return cuda::DType::Float16;  // torch's Half and __half share the IEEE binary16 layout
    case ScalarType::BFloat16:
      return cuda::DType::BFloat16;  // torch's BFloat16 and __nv_bfloat16 share the bfloat16 layout
    case ScalarType::Float:
      return cuda::DType::Float32;
    case ScalarType::Double:
      return cuda::DType::Float64;
    default:
      break;
  }
  NA_CHECK(false, "na_cuda: no CUDA kernel for dtype ", st, "; use float16, bfloat16, float32 or float64");
  return cuda::DType::Float32;  // unreachable
}

cudaStream_t current_stream(const Tensor& t) {
  void* stream = nullptr;
  STABLE_TORCH_ERROR_CODE_CHECK(aoti_torch_get_current_cuda_stream(t.get_device_index(), &stream));
  return static_cast<cudaStream_t>(stream);
}

void check_launch() {
  const cudaError_t err = cudaGetLastError();
  NA_CHECK(err == cudaSuccess, "na_cuda: CUDA kernel launch failed: ", cudaGetErrorString(err));
}

// The backend of csrc/op_impls.h: device guard, contiguous inputs, the output, the workspace the rule needs
// ([planes, T, N] float, or double for float64), one launch, the launch check.
struct Cuda {
  static Tensor forward(const Tensor& c, const std::optional<Tensor>& decay, const LifConfig& cfg) {
    const torch::stable::accelerator::DeviceGuard guard(c.get_device_index());
    const Tensor cc = torch::stable::contiguous(c);
    Tensor dc;  // the learnable decay per neuron (§12), contiguous
    if (decay.has_value()) dc = torch::stable::contiguous(*decay);
    Tensor out = torch::stable::empty_like(cc);
    const int64_t T = cc.size(0), N = num_neurons(cc);
    if (N == 0) return out;
    cuda::lif_forward(kernel_dtype(cc.scalar_type()), cc.const_data_ptr(), dc.defined() ? dc.const_data_ptr() : nullptr,
                      out.mutable_data_ptr(), T, N, cfg, current_stream(cc));
    check_launch();
    return out;
  }

  template <typename Rule>
  static std::tuple<Tensor, Tensor> backward(const Tensor& grad_out, const Tensor& c,
                                             const std::optional<Tensor>& decay, const LifConfig& lcfg,
                                             const typename Rule::Config& rcfg) {
    const torch::stable::accelerator::DeviceGuard guard(c.get_device_index());
    const Tensor cc = torch::stable::contiguous(c), gc = torch::stable::contiguous(grad_out);
    Tensor dc;  // the learnable decay per neuron (§12), contiguous; its gradient goes to gdecay
    if (decay.has_value()) dc = torch::stable::contiguous(*decay);
    Tensor grad = torch::stable::empty_like(cc);
    Tensor gdecay = dc.defined() ? torch::stable::empty_like(dc) : torch::stable::new_empty(cc, {0});
    const int64_t T = cc.size(0), N = num_neurons(cc);
    if (N == 0) return {grad, gdecay};
    const cuda::DType dt = kernel_dtype(cc.scalar_type());
    const int planes = cuda::workspace_planes<Rule>(dt, T);
    Tensor ws;
    if (planes > 0) {
      const ScalarType wt = cuda::compute_is_double(dt) ? ScalarType::Double : ScalarType::Float;
      ws = torch::stable::new_empty(cc, {planes, T, N}, wt);
    }
    cuda::backward<Rule>(dt, gc.const_data_ptr(), cc.const_data_ptr(), dc.defined() ? dc.const_data_ptr() : nullptr,
                         grad.mutable_data_ptr(), dc.defined() ? gdecay.mutable_data_ptr() : nullptr,
                         ws.defined() ? ws.mutable_data_ptr() : nullptr, T, N, lcfg, rcfg, current_stream(cc));
    check_launch();
    return {grad, gdecay};
  }
};

}  // namespace

STABLE_TORCH_LIBRARY_IMPL(na_cuda, CUDA, m) { register_ops<Cuda>(m); }

}  // namespace na

#define NA_STR2(x) #x
#define NA_STR(x) NA_STR2(x)

// The build facts of the CUDA library (na_cuda.backends(): cuda_version, cuda_archs), read with ctypes.
extern "C" __attribute__((visibility("default"))) const char* na_cuda_cuda_build_info(void) {
  return "{\"cuda_version\": \"" NA_STR(NA_CUDA_VERSION) "\", \"cuda_archs\": \"" NA_STR(NA_CUDA_ARCHS) "\"}";
}
