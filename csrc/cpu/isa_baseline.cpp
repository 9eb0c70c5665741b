// The CPU kernels for the baseline instruction set (SSE2 on x86-64: every x86-64 CPU), 4 float lanes a pack.
#define NA_ISA baseline
#define NA_CPU_VECTOR_BYTES 16
#include "isa_kernels.h"

namespace na {
namespace cpu {
NA_CPU_ISA_TABLE(kBaselineKernels, "baseline");
}  // namespace cpu
}  // namespace na
