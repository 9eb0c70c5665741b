// Schemas of the na_cuda operator library. Implementations: csrc/cpu/lif_cpu.cpp (CPU) and
// csrc/cuda/lif_cuda.cu (CUDA); autograd and fake (meta) kernels are registered from Python
// (na_cuda/ops.py), so torch.compile traces the ops as opaque nodes with known output shapes.
#include <Python.h>
#include <torch/library.h>

// The neuron's arguments, the same in every op (csrc/op_args.h: neuron_config). `v_reset`: the hard reset value,
// None for the soft reset (v = u - threshold on a spike).
#define NA_NEURON \
  "float tau_m, float tau_s, float threshold, float? v_reset, bool decay_input, bool strict_threshold, str output"
// Trailing optional arguments of every op: `decay`, the learnable leak lam per neuron ([N] in the compute dtype;
// docs/algorithm.md §11), and `reset_mechanism`, snnTorch's "subtract" / "none" (the threshold, or nothing,
// subtracted after the leak; §10).
#define NA_TRAILING "Tensor? decay=None, str? reset_mechanism=None"

// The backward ops return dL/dlam per neuron as their second output (an empty tensor without a decay).
// One forward kernel serves every op below. `lif_forward` is the neuron alone (inference: no autograd); each rule
// has its own op `lif_<rule>` (the forward plus that rule's arguments only, with the rule's backward registered as
// its autograd formula in na_cuda/ops.py) and its backward op `<rule>_backward`.
TORCH_LIBRARY(na_cuda, m) {
  m.def("lif_forward(Tensor c, " NA_NEURON ", " NA_TRAILING ") -> Tensor");
  m.def("lif_na(Tensor c, " NA_NEURON ", str first_order, int dist_power, float clip, " NA_TRAILING ") -> Tensor");
  m.def("lif_stbp(Tensor c, " NA_NEURON ", str surrogate, float surrogate_alpha, bool detach_reset, " NA_TRAILING
        ") -> Tensor");
  m.def("lif_tssl(Tensor c, " NA_NEURON ", " NA_TRAILING ") -> Tensor");
  m.def("na_backward(Tensor grad_out, Tensor c, " NA_NEURON
        ", str first_order, int dist_power, float clip, " NA_TRAILING ") -> (Tensor, Tensor)");
  m.def("stbp_backward(Tensor grad_out, Tensor c, " NA_NEURON
        ", str surrogate, float surrogate_alpha, bool detach_reset, " NA_TRAILING ") -> (Tensor, Tensor)");
  m.def("tssl_backward(Tensor grad_out, Tensor c, " NA_NEURON ", " NA_TRAILING ") -> (Tensor, Tensor)");
}

#define NA_STR2(x) #x
#define NA_STR(x) NA_STR2(x)

// `import na_cuda._C` loads this shared library (which runs the registrations above). The module carries the
// build facts that na_cuda.backends() reports; NA_TORCH_VERSION, NA_CPU_ISA, NA_CUDA_ARCHS and NA_CUDA_VERSION
// are defined by setup.py.
extern "C" PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", "na_cuda compiled kernels", -1, nullptr};
  PyObject* mod = PyModule_Create(&module_def);
  if (mod == nullptr) return nullptr;
  // The torch this library was compiled against and the CPU ISA of its kernels (setup.py), checked at import.
  PyModule_AddStringConstant(mod, "torch_version", NA_STR(NA_TORCH_VERSION));
  PyModule_AddStringConstant(mod, "cpu_isa", NA_STR(NA_CPU_ISA));
#ifdef NA_WITH_CUDA
  PyModule_AddIntConstant(mod, "with_cuda", 1);
  PyModule_AddStringConstant(mod, "cuda_version", NA_STR(NA_CUDA_VERSION));
  PyModule_AddStringConstant(mod, "cuda_archs", NA_STR(NA_CUDA_ARCHS));
#else
  PyModule_AddIntConstant(mod, "with_cuda", 0);
  PyModule_AddStringConstant(mod, "cuda_version", "");
  PyModule_AddStringConstant(mod, "cuda_archs", "");
#endif
  return mod;
}
