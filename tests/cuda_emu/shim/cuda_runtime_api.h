// See cuda_runtime.h in this folder: the emulation's runtime API is the same shim.
#pragma once
#include "cuda_runtime.h"
