// The na_cuda ops written once for every rule and backend: argument checks (op_args.h), then the backend's
// forward or the rule's backward. A backend (csrc/cpu/lif_cpu.cpp, csrc/cuda/lif_cuda.cu) provides
//   static Tensor forward(const Tensor& c, const std::optional<Tensor>& decay, const LifConfig&);
//   template <typename Rule> static std::tuple<Tensor, Tensor> backward(const Tensor& g, const Tensor& c,
//       const std::optional<Tensor>& decay, const LifConfig&, const typename Rule::Config&);
// (`decay`: the learnable lam per neuron, §12; the second output is dL/dlam per neuron, empty without a decay)
// and registers every op with register_ops<Backend>(m) under its dispatch key. The op functions take their
// arguments by value in schema order (`str` as std::string): that is what NA_BOX (csrc/binding.h) unboxes.
#pragma once

#include "op_args.h"

namespace na {

#define NA_NEURON_PARAMS                                                                                      \
  double tau_m, double tau_s, double threshold, std::optional<double> v_reset, bool decay_input, bool strict, \
      std::string output
// The trailing optional arguments of every op (schemas in csrc/ops.cpp: defaults None, so calls written before
// they existed still work): the learnable decay (§12) and snnTorch's reset after the leak (§11).
#define NA_TRAILING_PARAMS std::optional<Tensor> decay, std::optional<std::string> reset_mechanism
#define NA_NEURON_ARGS tau_m, tau_s, threshold, v_reset, decay_input, strict, output, reset_mechanism

// lif_forward: the neuron alone (no rule, no autograd: inference).
template <typename Backend>
Tensor lif_forward_op(Tensor c, NA_NEURON_PARAMS, NA_TRAILING_PARAMS) {
  check_input(c, "c");
  check_decay(decay, c);
  return Backend::forward(c, decay, neuron_config(c, NA_NEURON_ARGS));
}

// lif_<rule>: the same forward; the rule's arguments are checked here, where the user wrote them, not only at
// the backward (its autograd formula, na_cuda/ops.py, calls <rule>_backward with the same arguments).
template <typename Backend, typename Op, typename... A>
Tensor lif_rule_op(Tensor c, NA_NEURON_PARAMS, A... rule_args, NA_TRAILING_PARAMS) {
  check_input(c, "c");
  check_decay(decay, c);
  const LifConfig lif = neuron_config(c, NA_NEURON_ARGS);
  (void)Op::config(c, lif, rule_args...);
  return Backend::forward(c, decay, lif);
}

template <typename Backend, typename Op, typename... A>
std::tuple<Tensor, Tensor> rule_backward_op(Tensor grad_out, Tensor c, NA_NEURON_PARAMS, A... rule_args,
                                            NA_TRAILING_PARAMS) {
  check_input(c, "c");
  check_grad(grad_out, c);
  check_decay(decay, c);
  const LifConfig lif = neuron_config(c, NA_NEURON_ARGS);
  return Backend::template backward<typename Op::Rule>(grad_out, c, decay, lif, Op::config(c, lif, rule_args...));
}

#undef NA_NEURON_PARAMS
#undef NA_TRAILING_PARAMS
#undef NA_NEURON_ARGS

// The op functions of rule `Op` for `Backend`, with the rule's arguments as Op::config declares them (after
// the input and the neuron), taken by value.
template <typename Backend, typename Op, typename F = decltype(&Op::config)>
struct RuleOps;
template <typename Backend, typename Op, typename R, typename... A>
struct RuleOps<Backend, Op, R (*)(const Tensor&, const LifConfig&, A...)> {
  static constexpr auto forward = &lif_rule_op<Backend, Op, std::decay_t<A>...>;
  static constexpr auto backward = &rule_backward_op<Backend, Op, std::decay_t<A>...>;
};

template <typename Backend>
void register_ops(torch::stable::detail::StableLibrary& m) {
  m.impl("lif_forward", NA_BOX((lif_forward_op<Backend>)));
#define NA_RULE_IMPLS(name, Type, args)                                \
  m.impl("lif_" #name, NA_BOX((RuleOps<Backend, Type##Op>::forward))); \
  m.impl(#name "_backward", NA_BOX((RuleOps<Backend, Type##Op>::backward)));
  NA_RULES(NA_RULE_IMPLS)
#undef NA_RULE_IMPLS
}

}  // namespace na
