// CPU implementations of the na_cuda ops: neurons in blocks of up to kBlock, each block's [T, nb] slice gathered
// into contiguous compute-type planes, the block kernels of the running instruction set (csrc/cpu/isa.h) run on
// them, the results scattered back; blocks go to torch's intra-op threads. The instruction set (AVX2 or the
// baseline) is picked when the library loads; NA_CUDA_CPU_ISA=baseline forces the baseline. Why blocks, and the
// scratch bound: docs/kernels.md ("csrc/cpu/lif_cpu.cpp").
#include <algorithm>
#include <atomic>
#include <cstring>
#include <vector>

#include <torch/headeronly/util/BFloat16.h>
#include <torch/headeronly/util/Half.h>

#include "../op_impls.h"
#include "isa.h"

namespace na {
namespace cpu {
namespace {

// The best table this CPU can run (the AVX2 one is compiled for FMA too: its vector expf, isa_avx2.cpp).
// __builtin_cpu_supports reads cpuid (and the OS's AVX state) once.
const IsaKernels* best_isa() {
#if defined(NA_CPU_HAVE_AVX2_UNIT)
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return &kAvx2Kernels;
#endif
  return &kBaselineKernels;
}

std::atomic<const IsaKernels*> g_isa{best_isa()};

constexpr int64_t kGrainSize = 32768;  // at::internal::GRAIN_SIZE: elements of work per parallel chunk

int64_t grain(int64_t T) { return std::max<int64_t>(kBlock, (kGrainSize / T) / kBlock * kBlock); }

template <typename scalar_t>
struct Compute {
  using type = float;  // half, bfloat16 and float compute in float
};
template <>
struct Compute<double> {
  using type = double;
};

// One block of the [T, N] problem: neurons [n0, n0 + nb), rows of stride w, `planes` planes at buf.
template <typename acc_t>
struct Block {
  int64_t T, n0, nb, w;
  acc_t* buf;
  acc_t* plane(int64_t i) const { return buf + i * T * w; }
};

template <typename acc_t>
const BlockKernels<acc_t>& kernels_for() {
  const IsaKernels* isa = g_isa.load(std::memory_order_relaxed);
  if constexpr (std::is_same_v<acc_t, double>) {
    return isa->f64;
  } else {
    return isa->f32;
  }
}

// Copy src[t, n0 + j] (global [T, N]) into dst[t * w + j]; lanes past the end of the tensor read zeros. With
// kFinite, returns whether every value copied is finite (x - x == 0), tested in the copy's own pass (isa.h). A
// float32/float64 tensor is copied by the running instruction set's code (isa.h: 2x the baseline's width).
template <bool kFinite = false, typename scalar_t, typename acc_t>
bool gather(const scalar_t* src, acc_t* dst, int64_t N, const Block<acc_t>& b) {
  if constexpr (std::is_same_v<scalar_t, acc_t>) {
    return kernels_for<acc_t>().gather(src + b.n0, dst, N, b.T, b.nb, b.w, kFinite);
  } else {
    int bad = 0;
    for (int64_t t = 0; t < b.T; ++t) {
      const scalar_t* s = src + t * N + b.n0;
      acc_t* d = dst + t * b.w;
      for (int64_t j = 0; j < b.nb; ++j) {
        const acc_t x = static_cast<acc_t>(s[j]);
        d[j] = x;
        if (kFinite) bad |= !(x - x == acc_t(0));
      }
      for (int64_t j = b.nb; j < b.w; ++j) d[j] = acc_t(0);
    }
    return bad == 0;
  }
}

// The block's slice of a per-neuron [N] array (the learnable decay and its gradient, §12) and back: one row of the
// block copies above (the running instruction set's). The leak goes raw (the kernels clamp it on load); with
// kFinite, returns whether it is finite, so a NaN or an infinite leak (clamped to 1 or 0) runs the guarded loops,
// which give the same bits (tests/test_finite_fast_path.py).
template <bool kFinite = false, typename acc_t>
bool gather_row(const acc_t* src, acc_t* dst, const Block<acc_t>& b) {
  return kernels_for<acc_t>().gather(src + b.n0, dst, /*N=*/0, /*T=*/1, b.nb, b.w, kFinite);
}
template <typename acc_t>
void scatter_row(const acc_t* src, acc_t* dst, const Block<acc_t>& b) {
  kernels_for<acc_t>().scatter(src, dst + b.n0, /*N=*/0, /*T=*/1, b.nb, b.w);
}

template <typename scalar_t, typename acc_t>
void scatter(const acc_t* src, scalar_t* dst, int64_t N, const Block<acc_t>& b) {
  if constexpr (std::is_same_v<scalar_t, acc_t>) {
    kernels_for<acc_t>().scatter(src, dst + b.n0, N, b.T, b.nb, b.w);
  } else {
    for (int64_t t = 0; t < b.T; ++t) {
      const acc_t* s = src + t * b.w;
      scalar_t* d = dst + t * N + b.n0;
      for (int64_t j = 0; j < b.nb; ++j) d[j] = static_cast<scalar_t>(s[j]);
    }
  }
}

// Runs body(block) over all blocks of the [T, N] problem in parallel. `rows` more rows of w values follow the
// planes (per-neuron values: the learnable decay and its gradient).
template <typename acc_t, typename Body>
void for_each_block(int64_t T, int64_t N, int64_t planes, int64_t rows, const Body& body) {
  torch::stable::parallel_for(0, N, grain(T), [&](int64_t begin, int64_t end) {
    const int64_t w = std::min(kBlock, (end - begin + kMaxLanes - 1) / kMaxLanes * kMaxLanes);
    std::vector<acc_t> buf(static_cast<size_t>((planes * T + rows) * w));
    for (int64_t n0 = begin; n0 < end; n0 += w) body(Block<acc_t>{T, n0, std::min(w, end - n0), w, buf.data()});
  });
}

// f(scalar_t{}) for the tensor's storage type (checked to be one of the four by check_input).
template <typename F>
void dispatch_floating(ScalarType st, const F& f) {
  switch (st) {
    case ScalarType::Half:
      return f(torch::headeronly::Half{});
    case ScalarType::BFloat16:
      return f(torch::headeronly::BFloat16{});
    case ScalarType::Float:
      return f(float{});
    case ScalarType::Double:
      return f(double{});
    default:
      NA_CHECK(false, "na_cuda: no CPU kernel for dtype ", st, "; use float16, bfloat16, float32 or float64");
  }
}

// The block kernel of the rule whose configuration is passed, from the table.
#define NA_RULE_KERNEL(name, Type, args)                                                           \
  template <typename acc_t>                                                                        \
  BackwardFn<acc_t, Type##Config> rule_kernel(const BlockKernels<acc_t>& k, const Type##Config&) { \
    return k.name;                                                                                 \
  }
NA_RULES(NA_RULE_KERNEL)
#undef NA_RULE_KERNEL

}  // namespace

// The backend of csrc/op_impls.h: the forward, and one backward loop for every rule (plane layout: isa.h). With
// a learnable decay (§12) the block's leaks and dL/dlam are two rows of w values after the planes.
struct Cpu {
  static Tensor forward(const Tensor& c, const std::optional<Tensor>& decay, const LifConfig& cfg) {
    const Tensor cc = torch::stable::contiguous(c);
    Tensor dc;  // the decay, contiguous (a broadcast scalar can arrive as a stride-0 view)
    if (decay.has_value()) dc = torch::stable::contiguous(*decay);
    Tensor out = torch::stable::empty_like(cc);
    const int64_t T = cc.size(0), N = num_neurons(cc);
    dispatch_floating(cc.scalar_type(), [&](auto tag) {
      using scalar_t = decltype(tag);
      using acc_t = typename Compute<scalar_t>::type;
      const auto fwd = kernels_for<acc_t>().forward;
      const scalar_t* cp = static_cast<const scalar_t*>(cc.const_data_ptr());
      scalar_t* op = static_cast<scalar_t*>(out.mutable_data_ptr());
      const acc_t* lp = dc.defined() ? static_cast<const acc_t*>(dc.const_data_ptr()) : nullptr;
      for_each_block<acc_t>(T, N, 2, 1, [&](const Block<acc_t>& b) {
        acc_t* ld = lp ? b.plane(2) : nullptr;
        gather(cp, b.plane(0), N, b);
        if (ld) gather_row(lp, ld, b);
        fwd(b.buf, T, b.w, b.nb, cfg, ld);
        scatter(b.plane(1), op, N, b);
      });
    });
    return out;
  }

  template <typename Rule>
  static std::tuple<Tensor, Tensor> backward(const Tensor& grad_out, const Tensor& c,
                                             const std::optional<Tensor>& decay, const LifConfig& lcfg,
                                             const typename Rule::Config& rcfg) {
    const Tensor cc = torch::stable::contiguous(c), gc = torch::stable::contiguous(grad_out);
    Tensor dc;  // the decay, contiguous (a broadcast scalar can arrive as a stride-0 view)
    if (decay.has_value()) dc = torch::stable::contiguous(*decay);
    Tensor grad = torch::stable::empty_like(cc);
    Tensor gdecay = dc.defined() ? torch::stable::empty_like(dc) : torch::stable::new_empty(cc, {0});
    const int64_t T = cc.size(0), N = num_neurons(cc);
    dispatch_floating(cc.scalar_type(), [&](auto tag) {
      using scalar_t = decltype(tag);
      using acc_t = typename Compute<scalar_t>::type;
      const auto bwd = rule_kernel(kernels_for<acc_t>(), rcfg);
      const scalar_t* cp = static_cast<const scalar_t*>(cc.const_data_ptr());
      const scalar_t* gp = static_cast<const scalar_t*>(gc.const_data_ptr());
      scalar_t* dp = static_cast<scalar_t*>(grad.mutable_data_ptr());
      const acc_t* lp = dc.defined() ? static_cast<const acc_t*>(dc.const_data_ptr()) : nullptr;
      acc_t* glp = dc.defined() ? static_cast<acc_t*>(gdecay.mutable_data_ptr()) : nullptr;
      constexpr int64_t P = 2 + Rule::kCpuPlanes;
      for_each_block<acc_t>(T, N, P, 2, [&](const Block<acc_t>& b) {
        acc_t *ld = lp ? b.plane(P) : nullptr, *lgd = lp ? b.plane(P) + b.w : nullptr;
        constexpr bool kCheck = Rule::kGuardFree;
        bool finite = gather<kCheck>(cp, b.plane(0), N, b);
        finite = gather<kCheck>(gp, b.plane(1), N, b) && finite;
        if (ld) finite = gather_row<kCheck>(lp, ld, b) && finite;
        bwd(b.buf, T, b.w, b.nb, lcfg, rcfg, ld, lgd, kCheck && finite);
        scatter(b.plane(1), dp, N, b);
        if (lgd) scatter_row(lgd, glp, b);
      });
    });
    return {grad, gdecay};
  }
};

}  // namespace cpu

STABLE_TORCH_LIBRARY_IMPL(na_cuda, CPU, m) { register_ops<cpu::Cpu>(m); }

}  // namespace na

// The instruction set the CPU kernels run ("avx2" or "baseline"), and the switch na_cuda/_backend.py uses for
// NA_CUDA_CPU_ISA and the tests that compare the two: 0 on success, 1 for an unknown name, 2 when this CPU (or
// this build) lacks it. The names compiled in, best first: na_cuda_cpu_isas().
extern "C" __attribute__((visibility("default"))) const char* na_cuda_cpu_isa(void) {
  return na::cpu::g_isa.load()->name;
}

extern "C" __attribute__((visibility("default"))) const char* na_cuda_cpu_isas(void) {
#if defined(NA_CPU_HAVE_AVX2_UNIT)
  return "avx2,baseline";
#else
  return "baseline";
#endif
}

extern "C" __attribute__((visibility("default"))) int na_cuda_set_cpu_isa(const char* name) {
  if (std::strcmp(name, "baseline") == 0) {
    na::cpu::g_isa.store(&na::cpu::kBaselineKernels);
    return 0;
  }
  if (std::strcmp(name, "avx2") == 0) {
#if defined(NA_CPU_HAVE_AVX2_UNIT)
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return 2;
    na::cpu::g_isa.store(&na::cpu::kAvx2Kernels);
    return 0;
#else
    return 2;
#endif
  }
  return 1;
}
