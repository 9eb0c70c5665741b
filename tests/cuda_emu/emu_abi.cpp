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

// The neuron's arguments in the ops' order (csrc/ops.cpp); v_reset is used when has_v_reset, else soft reset.
// `after`: 0, or snnTorch's reset after the leak (1 subtract, 2 none); `mem`: the membrane output.
na::LifConfig lif_config(double tau_m, double tau_s, double threshold, int has_v_reset, double v_reset,
                         int decay_input, int strict, int psc, int after, int mem) {
  na::LifConfig cfg{};
  cfg.tau_m = tau_m;
  cfg.tau_s = tau_s;
  cfg.threshold = threshold;
  cfg.v_reset = has_v_reset ? v_reset : 0.0;
  cfg.reset = has_v_reset ? na::Reset::Hard
              : after == 1 ? na::Reset::SubtractAfter
              : after == 2 ? na::Reset::NoneAfter
                           : na::Reset::Soft;
  cfg.decay_input = decay_input != 0;
  cfg.strict = strict != 0;
  cfg.psc = psc != 0;
  cfg.mem = mem != 0;
  return cfg;
}

#define NA_EMU_NEURON                                                                                       \
  double tau_m, double tau_s, double threshold, int has_v_reset, double v_reset, int decay_input, int strict, \
      int psc, int after, int mem
#define NA_EMU_LIF lif_config(tau_m, tau_s, threshold, has_v_reset, v_reset, decay_input, strict, psc, after, mem)

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

// rule: 0 = NA, 1 = STBP, 2 = TSSL-BP.
int na_emu_workspace_planes(int rule, int dtype, int64_t T) {
  const DType dt = static_cast<DType>(dtype);
  switch (rule) {
    case 0:
      return na::cuda::workspace_planes<na::NaRule>(dt, T);
    case 1:
      return na::cuda::workspace_planes<na::StbpRule>(dt, T);
    default:
      return na::cuda::workspace_planes<na::TsslRule>(dt, T);
  }
}

void na_emu_forward(int dtype, const void* c, const void* decay, void* out, int64_t T, int64_t N, NA_EMU_NEURON) {
  na::cuda::lif_forward(static_cast<DType>(dtype), c, decay, out, T, N, NA_EMU_LIF, nullptr);
}

void na_emu_na_backward(int dtype, const void* g, const void* c, const void* decay, void* grad, void* gdecay, void* ws,
                        int64_t T, int64_t N,
                        NA_EMU_NEURON, int taylor, int dist_power, double clip, int64_t window) {
  const na::NaConfig na{taylor != 0, dist_power, clip, window};
  na::cuda::backward<na::NaRule>(static_cast<DType>(dtype), g, c, decay, grad, gdecay, ws, T, N, NA_EMU_LIF, na, nullptr);
}

void na_emu_stbp_backward(int dtype, const void* g, const void* c, const void* decay, void* grad, void* gdecay, void* ws,
                        int64_t T, int64_t N,
                          NA_EMU_NEURON, int surrogate, double alpha, int detach_reset) {
  const na::StbpConfig sg{static_cast<na::Surrogate>(surrogate), alpha, detach_reset != 0};
  na::cuda::backward<na::StbpRule>(static_cast<DType>(dtype), g, c, decay, grad, gdecay, ws, T, N, NA_EMU_LIF, sg, nullptr);
}

void na_emu_tssl_backward(int dtype, const void* g, const void* c, const void* decay, void* grad, void* gdecay, void* ws,
                        int64_t T, int64_t N,
                          NA_EMU_NEURON) {
  na::cuda::backward<na::TsslRule>(static_cast<DType>(dtype), g, c, decay, grad, gdecay, ws, T, N, NA_EMU_LIF, na::TsslConfig{},
                                   nullptr);
}

}  // extern "C"
