// Test-only host build of the CUDA kernels (csrc/cuda/lif_kernels.cu) through the shim in shim/, with a C ABI
// for ctypes (tests/_cuda_emu.py). The entry points are the kernel file's own launchers, called the way the
// torch binding (csrc/cuda/lif_cuda.cu) calls them; only the config structs are built here from plain numbers.
#include "cuda_runtime.h"  // the shim: must come first

#include "../../csrc/cuda/lif_kernels.cu"

na_emu::Index3 threadIdx, blockIdx, blockDim, gridDim;
int64_t na_emu::max_blocks = INT64_MAX;
int64_t na_emu::blocks_run = 0;
int64_t na_emu::bad_launches = 0;

namespace {

using na::cuda::DType;

na::LifConfig lif_config(double tau_m, double tau_s, double threshold, int strict, int psc) {
  na::LifConfig cfg{};
  cfg.tau_m = tau_m;
  cfg.tau_s = tau_s;
  cfg.threshold = threshold;
  cfg.strict = strict != 0;
  cfg.psc = psc != 0;
  return cfg;
}

}  // namespace

extern "C" {

// 1 when built against the real cuda_fp16.h / cuda_bf16.h (float16 and bfloat16 usable), 0 with the stand-ins.
int na_emu_real_half() { return NA_EMU_REAL_HALF; }

// Caps the emulated grid at `blocks` (<= 0: no cap) and resets the counters.
void na_emu_set_max_blocks(int64_t blocks) {
  na_emu::max_blocks = blocks > 0 ? blocks : INT64_MAX;
  na_emu::blocks_run = 0;
  na_emu::bad_launches = 0;
}
int64_t na_emu_blocks_run() { return na_emu::blocks_run; }
int64_t na_emu_bad_launches() { return na_emu::bad_launches; }

int na_emu_workspace_planes(int op, int dtype, int64_t T) {
  return na::cuda::workspace_planes(static_cast<na::cuda::Op>(op), static_cast<DType>(dtype), T);
}

void na_emu_forward(int dtype, const void* c, void* out, int64_t T, int64_t N, double tau_m, double tau_s,
                    double threshold, int strict, int psc) {
  na::cuda::lif_forward(static_cast<DType>(dtype), c, out, T, N, lif_config(tau_m, tau_s, threshold, strict, psc),
                        nullptr);
}

void na_emu_na_backward(int dtype, const void* g, const void* c, void* grad, void* ws, int64_t T, int64_t N,
                        double tau_m, double tau_s, double threshold, int strict, int psc, int taylor,
                        int dist_power, double clip) {
  const na::NaConfig na{taylor != 0, dist_power, clip};
  na::cuda::na_backward(static_cast<DType>(dtype), g, c, grad, ws, T, N,
                        lif_config(tau_m, tau_s, threshold, strict, psc), na, nullptr);
}

void na_emu_stbp_backward(int dtype, const void* g, const void* c, void* grad, void* ws, int64_t T, int64_t N,
                          double tau_m, double tau_s, double threshold, int strict, int psc, int surrogate,
                          double alpha, int detach_reset) {
  const na::StbpConfig sg{static_cast<na::Surrogate>(surrogate), alpha, detach_reset != 0};
  na::cuda::stbp_backward(static_cast<DType>(dtype), g, c, grad, ws, T, N,
                          lif_config(tau_m, tau_s, threshold, strict, psc), sg, nullptr);
}

void na_emu_tssl_backward(int dtype, const void* g, const void* c, void* grad, void* ws, int64_t T, int64_t N,
                          double tau_m, double tau_s, double threshold, int strict) {
  na::cuda::tssl_backward(static_cast<DType>(dtype), g, c, grad, ws, T, N,
                          lif_config(tau_m, tau_s, threshold, strict, 1), nullptr);
}

}  // extern "C"
