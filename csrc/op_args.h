// Argument checks and parsing shared by the CPU and CUDA implementations of the na_cuda ops.
//
// The Python wrapper validates first and raises ValueError/TypeError naming the argument (na_cuda/params.py,
// na_cuda/rules.py); these checks guard direct torch.ops.na_cuda.* calls, so a bad argument is a clear
// RuntimeError, never a crash. One struct per rule (NaOp, StbpOp, TsslOp) turns that rule's op arguments into its
// kernel configuration; csrc/op_impls.h writes the ops once for every rule and backend on top of them.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>

#include "binding.h"
#include "core/lif.h"
#include "core/rules/rules.h"

namespace na {

inline void check_input(const Tensor& c, const char* name) {
  NA_CHECK(c.dim() >= 1, "na_cuda: `", name,
           "` must have shape [T, ...] with a time dimension first; got a 0-dim tensor");
  NA_CHECK(c.size(0) >= 1, "na_cuda: `", name, "` must have T = size(0) >= 1; got T = 0");
  NA_CHECK(c.size(0) <= INT32_MAX, "na_cuda: `", name,
           "` must have T = size(0) < 2^31 (the kernels count time "
           "steps in 32 bits); got T = ",
           c.size(0), "; split the sequence");
  const ScalarType st = c.scalar_type();
  NA_CHECK(st == ScalarType::Half || st == ScalarType::BFloat16 || st == ScalarType::Float || st == ScalarType::Double,
           "na_cuda: `", name, "` must be float16, bfloat16, float32 or float64; got ", st, " (convert with .float())");
}

inline void check_grad(const Tensor& grad_out, const Tensor& c) {
  check_input(grad_out, "grad_out");
  NA_CHECK(grad_out.device() == c.device(), "na_cuda: `grad_out` is on ", device_str(grad_out), " but `c` is on ",
           device_str(c), "; move them to the same device");
  NA_CHECK(grad_out.sizes().equals(c.sizes()), "na_cuda: `grad_out` has shape ", sizes_str(grad_out),
           " but `c` has shape ", sizes_str(c));
  NA_CHECK(grad_out.scalar_type() == c.scalar_type(), "na_cuda: `grad_out` has dtype ", grad_out.scalar_type(),
           " but `c` has dtype ", c.scalar_type());
}

// A parameter valid as a double can round to 0 or inf in the compute type (float for half/bf16/float input):
// each must be a normal finite number there (the Python wrapper's check, LifParams.check_dtype).
inline void check_fits(const Tensor& c, const char* name, double v) {
  const bool f64 = c.scalar_type() == ScalarType::Double;
  const double lo = f64 ? std::numeric_limits<double>::min() : std::numeric_limits<float>::min();
  const double hi = f64 ? std::numeric_limits<double>::max() : std::numeric_limits<float>::max();
  NA_CHECK(std::fabs(v) >= lo && std::fabs(v) <= hi, "na_cuda: `", name, "` = ", v, " is not a normal finite ",
           (f64 ? "float64" : "float32"), " value (the compute type of ", c.scalar_type(), " input); it must lie in [",
           lo, ", ", hi, "]");
}

// The neuron's arguments (the same in every op's schema, csrc/ops.cpp), checked for the input `c`.
inline LifConfig neuron_config(const Tensor& c, double tau_m, double tau_s, double threshold,
                               std::optional<double> v_reset, bool decay_input, bool strict, const std::string& output,
                               const std::optional<std::string>& reset_mechanism) {
  const std::string after = reset_mechanism.value_or(std::string());
  NA_CHECK(!std::isnan(tau_m) && tau_m >= 1.0, "na_cuda: `tau_m` must be a float >= 1 (or inf: the IF neuron); got ",
           tau_m);
  NA_CHECK(
      !(decay_input && std::isinf(tau_m)),
      "na_cuda: `decay_input=True` scales the input by 1/tau_m, which is 0 for tau_m = inf; use decay_input=False");
  NA_CHECK(std::isfinite(tau_s) && tau_s >= 1.0, "na_cuda: `tau_s` must be a finite float >= 1; got ", tau_s);
  NA_CHECK(std::isfinite(threshold), "na_cuda: `threshold` must be finite; got ", threshold);
  const bool soft = !v_reset.has_value();
  const double vr = soft ? 0.0 : *v_reset;
  NA_CHECK(std::isfinite(vr), "na_cuda: `v_reset` must be a finite float or None (soft reset); got ", vr);
  NA_CHECK(threshold > vr, "na_cuda: `threshold` must be > ", soft ? "0 with a soft reset" : "`v_reset`",
           "; got threshold = ", threshold, soft ? "" : ", v_reset = ", soft ? std::string() : std::to_string(vr));
  NA_CHECK(output == "psc" || output == "spike" || output == "membrane",
           "na_cuda: `output` must be \"psc\", \"spike\" or \"membrane\"; got \"", output, "\"");
  NA_CHECK(
      !reset_mechanism.has_value() || after == "subtract" || after == "none",
      "na_cuda: `reset_mechanism` must be None, \"subtract\" or \"none\" (snnTorch's resets after the leak); got \"",
      after, "\"");
  NA_CHECK(
      after.empty() || soft,
      "na_cuda: `reset_mechanism` \"subtract\"/\"none\" has no reset value: pass v_reset=None; got v_reset = ", vr);
  // The kernels see only threshold - v_reset (core/lif.h): threshold itself may be 0 when v_reset < 0.
  if (soft || vr == 0.0)
    check_fits(c, "threshold", threshold);
  else
    check_fits(c, "threshold - v_reset", threshold - vr);
  if (std::isfinite(tau_m)) check_fits(c, "tau_m", tau_m);
  if (decay_input) check_fits(c, "1/tau_m", 1.0 / tau_m);
  check_fits(c, "tau_s", tau_s);
  check_fits(c, "1/tau_s", 1.0 / tau_s);
  LifConfig cfg{};
  cfg.tau_m = tau_m;
  cfg.tau_s = tau_s;
  cfg.threshold = threshold;
  cfg.v_reset = vr;
  cfg.reset = soft ? (after.empty()         ? Reset::Soft
                      : after == "subtract" ? Reset::SubtractAfter
                                            : Reset::NoneAfter)
                   : Reset::Hard;
  cfg.decay_input = decay_input;
  cfg.strict = strict;
  cfg.psc = output == "psc";
  cfg.mem = output == "membrane";
  return cfg;
}

// The learnable decay (§12): none, or one lam per neuron ([N], the compute dtype, on c's device).
inline void check_decay(const std::optional<Tensor>& decay, const Tensor& c) {
  if (!decay.has_value()) return;
  const Tensor& d = *decay;
  const ScalarType want = c.scalar_type() == ScalarType::Double ? ScalarType::Double : ScalarType::Float;
  const int64_t n = c.numel() / c.size(0);
  NA_CHECK(d.dim() == 1 && d.size(0) == n, "na_cuda: `decay` must have shape [N] = [", n,
           "] (one lam per neuron of c); got ", sizes_str(d));
  NA_CHECK(d.scalar_type() == want, "na_cuda: `decay` must have dtype ", want, " (the compute type of ",
           c.scalar_type(), " input); got ", d.scalar_type());
  NA_CHECK(d.device() == c.device(), "na_cuda: `decay` is on ", device_str(d), " but `c` is on ", device_str(c));
}

// ---------------------------------------------------------------------------------------------------------
// Per rule: the op arguments after the neuron's, parsed into the kernel configuration.

// The membrane output's gradient is BPTT's own (STBP); the other rules refuse it with the reason.
inline void check_no_membrane(const LifConfig& lif, const char* rule, const char* why) {
  NA_CHECK(!lif.mem, "na_cuda: output=\"membrane\" is refused by method \"", rule, "\": ", why,
           "; use method=\"stbp\" (BPTT defines it) or output=\"spike\"/\"psc\"");
}

struct NaOp {
  using Rule = NaRule;
  static NaConfig config(const Tensor& c, const LifConfig& lif, const std::string& first_order, int64_t dist_power,
                         double clip, std::optional<int64_t> window) {
    check_no_membrane(lif, "na",
                      "NA measures the loss change of its neighbours on their spike trains, and a loss on u has no "
                      "such neighbourhood");
    NA_CHECK(first_order == "paper" || first_order == "taylor",
             "na_cuda: `first_order` must be \"paper\" or \"taylor\"; got \"", first_order, "\"");
    NA_CHECK(dist_power >= 1 && dist_power % 2 == 1 && dist_power <= 63,
             "na_cuda: `dist_power` must be a positive odd integer <= 63; got ", dist_power);
    NA_CHECK(std::isfinite(clip) && clip > 0.0, "na_cuda: `clip` must be a finite float > 0; got ", clip);
    check_fits(c, "clip", clip);
    NA_CHECK(!window || *window >= 1, "na_cuda: `na_window` must be None (exact NA) or an int >= 1; got ",
             window.value_or(0));
    return NaConfig{first_order == "taylor", static_cast<int>(dist_power), clip, window.value_or(0)};
  }
};

// "rect", "triangle", ...: the names of the surrogate table (core/rules/surrogates.h), for the error message.
inline std::string surrogate_names() {
  std::string out;
  for (int i = 0; i < kNumSurrogates; ++i) out += cat(i ? ", \"" : "\"", kSurrogates[i].name, "\"");
  return out;
}

struct StbpOp {
  using Rule = StbpRule;
  static StbpConfig config(const Tensor& c, const LifConfig&, const std::string& surrogate, double alpha,
                           bool detach_reset) {
    int kind = -1;
    for (int i = 0; i < kNumSurrogates; ++i)
      if (surrogate == kSurrogates[i].name) kind = i;
    NA_CHECK(kind >= 0, "na_cuda: `surrogate` must be one of ", surrogate_names(), "; got \"", surrogate, "\"");
    const double lo = kSurrogates[kind].alpha_min;
    NA_CHECK(std::isfinite(alpha) && alpha > lo, "na_cuda: `surrogate_alpha` of \"", surrogate,
             "\" must be a finite float > ", lo, "; got ", alpha);
    check_fits(c, "surrogate_alpha", alpha);
    check_fits(c, "1/surrogate_alpha**2", 1.0 / (alpha * alpha));
    return StbpConfig{static_cast<Surrogate>(kind), alpha, detach_reset};
  }
};

struct TsslOp {
  using Rule = TsslRule;
  static TsslConfig config(const Tensor&, const LifConfig& lif) {
    NA_CHECK(lif.psc, "na_cuda: method \"tssl\" (TSSL-BP) is defined on PSCs; use output=\"psc\"");
    NA_CHECK(lif.reset == Reset::Hard,
             "na_cuda: method \"tssl\" (TSSL-BP) is defined for a reset to rest; use v_reset=<float> "
             "(a hard reset), not None or a reset_mechanism");
    return TsslConfig{};
  }
};

// [T, ...] viewed as [T, N].
inline int64_t num_neurons(const Tensor& c) { return c.numel() / c.size(0); }

}  // namespace na
