// Schemas of the na_cuda operator library. Implementations: csrc/cpu/lif_cpu.cpp (CPU) and
// csrc/cuda/lif_cuda.cu (CUDA); autograd and fake (meta) kernels are registered from Python
// (na_cuda/ops.py), so torch.compile traces the ops as opaque nodes with known output shapes.
#include <Python.h>
#include <torch/library.h>

// One forward kernel, four schemas: `lif_forward` carries the neuron's arguments only (no gradient), and each
// training rule has an op of its own, `lif_<rule>(c, <neuron>, <the rule's arguments>)`, whose registered
// autograd (na_cuda/ops.py) calls `<rule>_backward(grad_out, c, <the same arguments>)`. So NA, STBP and TSSL-BP
// share the forward exactly and a schema carries only what its rule uses. TSSL-BP is defined on PSCs: its ops
// take no `output`.
#define NA_NEURON "float tau_m, float tau_s, float threshold, bool strict_threshold"
TORCH_LIBRARY(na_cuda, m) {
  m.def("lif_forward(Tensor c, " NA_NEURON ", str output) -> Tensor");
  m.def("lif_na(Tensor c, " NA_NEURON ", str output, str first_order, int dist_power, float clip) -> Tensor");
  m.def("lif_stbp(Tensor c, " NA_NEURON ", str output, str surrogate, float surrogate_alpha, bool detach_reset) -> Tensor");
  m.def("lif_tssl(Tensor c, " NA_NEURON ") -> Tensor");
  m.def(
      "na_backward(Tensor grad_out, Tensor c, float tau_m, float tau_s, float threshold, bool strict_threshold, "
      "str output, str first_order, int dist_power, float clip) -> Tensor");
  m.def(
      "stbp_backward(Tensor grad_out, Tensor c, float tau_m, float tau_s, float threshold, bool strict_threshold, "
      "str output, str surrogate, float surrogate_alpha, bool detach_reset) -> Tensor");
  m.def(
      "tssl_backward(Tensor grad_out, Tensor c, float tau_m, float tau_s, float threshold, bool strict_threshold) "
      "-> Tensor");
}

#undef NA_NEURON

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
