// The training rules, written once: X(name, Type, "schema arguments") names the rule's op arguments after the
// neuron's (each ends with ", "), its Type##Rule and Type##Config (csrc/core/rules/<name>.h) and its Type##Op
// (csrc/op_args.h). The list makes the op schemas (csrc/ops.cpp), their registration (csrc/op_impls.h), the CPU
// block-kernel table (csrc/cpu/isa.h, isa_kernels.h, lif_cpu.cpp) and the CUDA instantiations
// (csrc/cuda/lif_kernels.h/.cu). Recipe: docs/development.md, "Add a rule".
#pragma once

#include "na.h"
#include "stbp.h"
#include "tssl.h"

#define NA_RULES(X)                                                               \
  X(na, Na, "str first_order, int dist_power, float clip, int? na_window=None, ") \
  X(stbp, Stbp, "str surrogate, float surrogate_alpha, bool detach_reset, ")      \
  X(tssl, Tssl, "")
