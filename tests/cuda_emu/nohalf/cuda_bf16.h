// See cuda_fp16.h in this folder (it holds both stand-ins, as the real cuda_bf16.h includes cuda_fp16.h).
#pragma once
#include "cuda_fp16.h"
