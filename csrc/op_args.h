// Argument checks and parsing shared by the CPU and CUDA implementations of the na_cuda ops.
//
// The Python wrapper validates first and raises ValueError/TypeError naming the argument; these checks guard
// direct torch.ops.na_cuda.* calls, so a bad argument is a clear RuntimeError, never a crash.
#pragma once

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "core/lif.h"
#include "core/rules/na.h"
#include "core/rules/stbp.h"

namespace na {

inline void check_input(const at::Tensor& c, const char* name) {
  TORCH_CHECK(c.dim() >= 1, "na_cuda: `", name, "` must have shape [T, ...] with a time dimension first; got a 0-dim tensor");
  TORCH_CHECK(c.size(0) >= 1, "na_cuda: `", name, "` must have T = size(0) >= 1; got T = 0");
  TORCH_CHECK(c.size(0) <= INT32_MAX, "na_cuda: `", name, "` must have T = size(0) < 2^31 (the kernels count time "
              "steps in 32 bits); got T = ", c.size(0), "; split the sequence");
  TORCH_CHECK(at::isFloatingType(c.scalar_type()),
              "na_cuda: `", name, "` must be float16, bfloat16, float32 or float64; got ", c.scalar_type(),
              " (convert with .float())");
}

inline void check_grad(const at::Tensor& grad_out, const at::Tensor& c) {
  check_input(grad_out, "grad_out");
  TORCH_CHECK(grad_out.device() == c.device(), "na_cuda: `grad_out` is on ", grad_out.device(), " but `c` is on ",
              c.device(), "; move them to the same device");
  TORCH_CHECK(grad_out.sizes() == c.sizes(), "na_cuda: `grad_out` has shape ", grad_out.sizes(),
              " but `c` has shape ", c.sizes());
  TORCH_CHECK(grad_out.scalar_type() == c.scalar_type(), "na_cuda: `grad_out` has dtype ", grad_out.scalar_type(),
              " but `c` has dtype ", c.scalar_type());
}

inline LifConfig lif_config(double tau_m, double tau_s, double threshold, bool strict, const std::string& output) {
  TORCH_CHECK(tau_m >= 1.0, "na_cuda: `tau_m` must be a float >= 1 (inf: the IF neuron); got ", tau_m);
  TORCH_CHECK(std::isfinite(tau_s) && tau_s >= 1.0, "na_cuda: `tau_s` must be a finite float >= 1; got ", tau_s);
  TORCH_CHECK(std::isfinite(threshold) && threshold > 0.0, "na_cuda: `threshold` must be a finite float > 0; got ",
              threshold);
  TORCH_CHECK(output == "psc" || output == "spike", "na_cuda: `output` must be \"psc\" or \"spike\"; got \"", output,
              "\"");
  return LifConfig{tau_m, tau_s, threshold, strict, output == "psc"};
}

inline NaConfig na_config(const std::string& first_order, int64_t dist_power, double clip) {
  TORCH_CHECK(first_order == "paper" || first_order == "taylor",
              "na_cuda: `first_order` must be \"paper\" or \"taylor\"; got \"", first_order, "\"");
  TORCH_CHECK(dist_power >= 1 && dist_power % 2 == 1 && dist_power <= 63,
              "na_cuda: `dist_power` must be a positive odd integer; got ", dist_power);
  TORCH_CHECK(std::isfinite(clip) && clip > 0.0, "na_cuda: `clip` must be a finite float > 0; got ", clip);
  return NaConfig{first_order == "taylor", static_cast<int>(dist_power), clip};
}

inline StbpConfig stbp_config(const std::string& surrogate, double alpha, bool detach_reset) {
  Surrogate kind;
  if (surrogate == "rect") {
    kind = Surrogate::Rect;
  } else if (surrogate == "triangle") {
    kind = Surrogate::Triangle;
  } else if (surrogate == "sigmoid") {
    kind = Surrogate::Sigmoid;
  } else if (surrogate == "atan") {
    kind = Surrogate::Atan;
  } else if (surrogate == "fast_sigmoid") {
    kind = Surrogate::FastSigmoid;
  } else {
    TORCH_CHECK(false, "na_cuda: `surrogate` must be \"rect\", \"triangle\", \"sigmoid\", \"atan\" or \"fast_sigmoid\"; "
                "got \"", surrogate, "\"");
  }
  TORCH_CHECK(std::isfinite(alpha) && alpha > 0.0, "na_cuda: `surrogate_alpha` must be a finite float > 0; got ",
              alpha);
  return StbpConfig{kind, alpha, detach_reset};
}

inline std::string str(c10::string_view s) { return std::string(s.data(), s.size()); }

// A parameter valid as a double can round to 0 or inf in the compute type (float for half/bf16/float input):
// each must be a normal finite number there (the Python wrapper's check, na_cuda/_validate.py params_fit_dtype).
inline void check_fits(const at::Tensor& c, const char* name, double v) {
  const bool f64 = c.scalar_type() == at::kDouble;
  const double lo = f64 ? std::numeric_limits<double>::min() : std::numeric_limits<float>::min();
  const double hi = f64 ? std::numeric_limits<double>::max() : std::numeric_limits<float>::max();
  TORCH_CHECK(std::fabs(v) >= lo && std::fabs(v) <= hi, "na_cuda: `", name, "` = ", v, " is not a normal finite ",
              (f64 ? "float64" : "float32"), " value (the compute type of ", c.scalar_type(), " input); it must lie in [",
              lo, ", ", hi, "]");
}

inline void check_lif_fits(const at::Tensor& c, const LifConfig& cfg) {
  check_fits(c, "threshold", cfg.threshold);
  if (std::isfinite(cfg.tau_m)) check_fits(c, "tau_m", cfg.tau_m);  // inf: the IF neuron, lam = 1 exactly
  check_fits(c, "tau_s", cfg.tau_s);
  check_fits(c, "1/tau_s", 1.0 / cfg.tau_s);
}

// Every check of the forward's tensor and the neuron's arguments, shared by its CPU and CUDA implementations.
inline LifConfig forward_args(const at::Tensor& c, double tau_m, double tau_s, double threshold, bool strict,
                              const std::string& output) {
  check_input(c, "c");
  const LifConfig cfg = lif_config(tau_m, tau_s, threshold, strict, output);
  check_lif_fits(c, cfg);
  return cfg;
}

// The forward ops of csrc/ops.cpp for a backend whose forward kernel is `Fwd(c, cfg)`, written once: each checks
// the neuron and its rule's arguments (so a bad value fails at the forward, where the user wrote it, not later in
// backward) and runs the shared forward.
template <at::Tensor (*Fwd)(const at::Tensor&, const LifConfig&)>
struct ForwardOps {
  static at::Tensor plain(const at::Tensor& c, double tau_m, double tau_s, double threshold, bool strict,
                          c10::string_view output) {
    return Fwd(c, forward_args(c, tau_m, tau_s, threshold, strict, str(output)));
  }
  static at::Tensor na(const at::Tensor& c, double tau_m, double tau_s, double threshold, bool strict,
                       c10::string_view output, c10::string_view first_order, int64_t dist_power, double clip) {
    const LifConfig cfg = forward_args(c, tau_m, tau_s, threshold, strict, str(output));
    na_config(str(first_order), dist_power, clip);
    check_fits(c, "clip", clip);
    return Fwd(c, cfg);
  }
  static at::Tensor stbp(const at::Tensor& c, double tau_m, double tau_s, double threshold, bool strict,
                         c10::string_view output, c10::string_view surrogate, double surrogate_alpha,
                         bool detach_reset) {
    const LifConfig cfg = forward_args(c, tau_m, tau_s, threshold, strict, str(output));
    stbp_config(str(surrogate), surrogate_alpha, detach_reset);
    check_fits(c, "surrogate_alpha", surrogate_alpha);
    check_fits(c, "1/surrogate_alpha**2", 1.0 / (surrogate_alpha * surrogate_alpha));
    return Fwd(c, cfg);
  }
  static at::Tensor tssl(const at::Tensor& c, double tau_m, double tau_s, double threshold, bool strict) {
    return Fwd(c, forward_args(c, tau_m, tau_s, threshold, strict, "psc"));
  }
};

// Registers the four forward ops of a backend (inside its TORCH_LIBRARY_IMPL block).
template <at::Tensor (*Fwd)(const at::Tensor&, const LifConfig&), typename Lib>
void register_forward_ops(Lib& m) {
  m.impl("lif_forward", &ForwardOps<Fwd>::plain);
  m.impl("lif_na", &ForwardOps<Fwd>::na);
  m.impl("lif_stbp", &ForwardOps<Fwd>::stbp);
  m.impl("lif_tssl", &ForwardOps<Fwd>::tssl);
}

inline LifConfig backward_args(const at::Tensor& grad_out, const at::Tensor& c, double tau_m, double tau_s,
                               double threshold, bool strict, const std::string& output) {
  check_input(c, "c");
  check_grad(grad_out, c);
  const LifConfig cfg = lif_config(tau_m, tau_s, threshold, strict, output);
  check_lif_fits(c, cfg);
  return cfg;
}

// [T, ...] viewed as [T, N].
inline int64_t num_neurons(const at::Tensor& c) { return c.numel() / c.size(0); }

}  // namespace na
