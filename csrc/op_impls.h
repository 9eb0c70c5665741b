// The na_cuda ops written once for every rule and backend: argument checks (op_args.h), then the backend's
// forward or the rule's backward. A backend (csrc/cpu/lif_cpu.cpp, csrc/cuda/lif_cuda.cu) provides
//   static at::Tensor forward(const at::Tensor& c, const std::optional<at::Tensor>& decay, const LifConfig&);
//   template <typename Rule> static std::tuple<at::Tensor, at::Tensor> backward(const at::Tensor& g,
//       const at::Tensor& c, const std::optional<at::Tensor>& decay, const LifConfig&, const typename Rule::Config&);
// (`decay`: the learnable lam per neuron, §11; the second output is dL/dlam per neuron, empty without a decay)
// and registers every op with register_ops<Backend>(m) under its dispatch key.
#pragma once

#include <torch/library.h>

#include "op_args.h"

namespace na {

#define NA_NEURON_PARAMS                                                                                      \
  double tau_m, double tau_s, double threshold, std::optional<double> v_reset, bool decay_input, bool strict, \
      c10::string_view output
// The trailing optional arguments of every op (schemas in csrc/ops.cpp: defaults None, so calls written before
// they existed still work): the learnable decay (§11) and snnTorch's reset after the leak (§10).
#define NA_TRAILING_PARAMS const std::optional<at::Tensor>&decay, std::optional<c10::string_view> reset_mechanism
#define NA_NEURON_ARGS tau_m, tau_s, threshold, v_reset, decay_input, strict, output, reset_mechanism

// lif_forward: the neuron alone (no rule, no autograd: inference).
template <typename Backend>
at::Tensor lif_forward_op(const at::Tensor& c, NA_NEURON_PARAMS, NA_TRAILING_PARAMS) {
  check_input(c, "c");
  check_decay(decay, c);
  return Backend::forward(c, decay, neuron_config(c, NA_NEURON_ARGS));
}

// lif_<rule>: the same forward; the rule's arguments are checked here, where the user wrote them, not only at
// the backward (its autograd formula, na_cuda/ops.py, calls <rule>_backward with the same arguments).
template <typename Backend, typename Op, typename... A>
at::Tensor lif_rule_op(const at::Tensor& c, NA_NEURON_PARAMS, A... rule_args, NA_TRAILING_PARAMS) {
  check_input(c, "c");
  check_decay(decay, c);
  const LifConfig lif = neuron_config(c, NA_NEURON_ARGS);
  (void)Op::config(c, lif, rule_args...);
  return Backend::forward(c, decay, lif);
}

template <typename Backend, typename Op, typename... A>
std::tuple<at::Tensor, at::Tensor> rule_backward_op(const at::Tensor& grad_out, const at::Tensor& c, NA_NEURON_PARAMS,
                                                    A... rule_args, NA_TRAILING_PARAMS) {
  check_input(c, "c");
  check_grad(grad_out, c);
  check_decay(decay, c);
  const LifConfig lif = neuron_config(c, NA_NEURON_ARGS);
  return Backend::template backward<typename Op::Rule>(grad_out, c, decay, lif, Op::config(c, lif, rule_args...));
}

#undef NA_NEURON_PARAMS
#undef NA_TRAILING_PARAMS
#undef NA_NEURON_ARGS

template <typename Backend>
void register_ops(torch::Library& m) {
  using sv = c10::string_view;
  m.impl("lif_forward", &lif_forward_op<Backend>);
  m.impl("lif_na", &lif_rule_op<Backend, NaOp, sv, int64_t, double>);
  m.impl("lif_stbp", &lif_rule_op<Backend, StbpOp, sv, double, bool>);
  m.impl("lif_tssl", &lif_rule_op<Backend, TsslOp>);
  m.impl("na_backward", &rule_backward_op<Backend, NaOp, sv, int64_t, double>);
  m.impl("stbp_backward", &rule_backward_op<Backend, StbpOp, sv, double, bool>);
  m.impl("tssl_backward", &rule_backward_op<Backend, TsslOp>);
}

}  // namespace na
