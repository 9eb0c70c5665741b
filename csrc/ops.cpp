// Schemas of the na_cuda operator library, and the build facts of this library. Implementations:
// csrc/cpu/lif_cpu.cpp (CPU, in this library) and csrc/cuda/lif_cuda.cu (CUDA, the library _C_cuda of its own);
// autograd and fake (meta) kernels are registered from Python (na_cuda/ops.py), so torch.compile traces the ops
// as opaque nodes with known output shapes. Built on the stable ABI (csrc/binding.h): no Python module init; the
// library is loaded with torch.ops.load_library (na_cuda/_backend.py), which runs the registrations below.
#include "binding.h"
#include "core/rules/rules.h"

// The neuron's arguments, the same in every op (csrc/op_args.h: neuron_config). `v_reset`: the hard reset value,
// None for the soft reset (v = u - threshold on a spike).
#define NA_NEURON \
  "float tau_m, float tau_s, float threshold, float? v_reset, bool decay_input, bool strict_threshold, str output"
// Trailing optional arguments of every op: `decay`, the learnable leak lam per neuron ([N] in the compute dtype,
// clamped to [0, 1] by the kernels as torch.clamp would, its gradient too; docs/algorithm.md §12), and
// `reset_mechanism`, snnTorch's "subtract" / "none" (the threshold, or nothing, subtracted after the leak; §11). The
// backward ops return dL/dlam per neuron as their second output (an empty tensor without a decay).
#define NA_TRAILING "Tensor? decay=None, str? reset_mechanism=None"

// One forward kernel serves every op below. `lif_forward` is the neuron alone (inference: no autograd); each rule
// has its own op `lif_<rule>` (the forward plus that rule's arguments only, with the rule's backward registered as
// its autograd formula in na_cuda/ops.py) and its backward op `<rule>_backward`.
STABLE_TORCH_LIBRARY(na_cuda, m) {
  m.def("lif_forward(Tensor c, " NA_NEURON ", " NA_TRAILING ") -> Tensor");
#define NA_RULE_SCHEMAS(name, Type, args)                                          \
  m.def("lif_" #name "(Tensor c, " NA_NEURON ", " args NA_TRAILING ") -> Tensor"); \
  m.def(#name "_backward(Tensor grad_out, Tensor c, " NA_NEURON ", " args NA_TRAILING ") -> (Tensor, Tensor)");
  NA_RULES(NA_RULE_SCHEMAS)
#undef NA_RULE_SCHEMAS
}

#define NA_STR2(x) #x
#define NA_STR(x) NA_STR2(x)

// The build facts na_cuda.backends() reports, read with ctypes (a JSON object). NA_TORCH_VERSION and
// NA_TARGET_TORCH are defined by setup.py; the CPU instruction sets compiled in are the isa_*.cpp units.
extern "C" __attribute__((visibility("default"))) const char* na_cuda_build_info(void) {
  return "{\"built_with_torch\": \"" NA_STR(NA_TORCH_VERSION) "\", \"target_torch\": \"" NA_STR(NA_TARGET_TORCH) "\"}";
}

// The surrogate names of the table (csrc/core/rules/surrogates.h), in enum order, comma-separated: a test compares
// them with the Python table (na_cuda/surrogates.py).
#define NA_SURROGATE_NAME(E, name, alpha_min) "," name
extern "C" __attribute__((visibility("default"))) const char* na_cuda_surrogates(void) {
  return NA_SURROGATES(NA_SURROGATE_NAME) + 1;  // past the first comma
}
#undef NA_SURROGATE_NAME
