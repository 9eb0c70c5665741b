"""Build na_cuda's compiled kernels on the LibTorch stable ABI.

Two libraries, both built against torch's stable C shim (csrc/binding.h) with TORCH_TARGET_VERSION 2.10 and the
CPython limited API, so one build serves every torch >= 2.10 and every CPython >= 3.10:
  na_cuda/_C.so       the op schemas and the CPU kernels, with AVX2 and baseline kernels side by side (the CPU
                      picks at load time; csrc/cpu/isa_*.cpp); always built;
  na_cuda/_C_cuda.so  the CUDA kernels, a library of their own (it needs libtorch_cuda and the CUDA runtime, so a
                      CPU torch never loads it); built when the installed torch is a CUDA build and nvcc is found
                      (CUDA_HOME), or when NA_CUDA_FORCE_CUDA=1; NA_CUDA_SKIP_CUDA=1 skips it. Never asks
                      torch.cuda.is_available(): a machine without a GPU builds the CUDA kernels for one.

Install with `pip install --no-build-isolation .` so the build uses the torch you already have. torch is not a
build requirement: an isolated build finds no torch and stops at once with a one-line message saying so, while
`python -m build --sdist` (which compiles nothing) works without torch.

Environment: TORCH_CUDA_ARCH_LIST (default "8.0;9.0+PTX": sm_80 and sm_90 binaries plus PTX that newer GPUs
compile at load time), NVCC_FLAGS (extra nvcc flags), CXXFLAGS as usual.
"""

from __future__ import annotations

import json
import os
import platform
import shlex

import setuptools
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

try:
    import torch
    from torch.utils import cpp_extension
except ImportError:  # an isolated build, or no torch installed: fine for an sdist, fatal for a build
    torch = None

ROOT = os.path.dirname(os.path.abspath(__file__))
# pyproject.toml's SPDX `license = "MIT"` (PEP 639) is read by setup() below: setuptools < 77 rejects it there with a
# schema dump. A build without isolation uses the environment's setuptools (a fresh Python 3.10 venv has 65), so say
# so first, in one line.
MIN_SETUPTOOLS = 77
if int(setuptools.__version__.split(".")[0]) < MIN_SETUPTOOLS:
    raise SystemExit(
        f"na_cuda: setuptools {setuptools.__version__} is too old to read pyproject.toml (its SPDX license needs "
        f'setuptools >= {MIN_SETUPTOOLS}): pip install "setuptools>={MIN_SETUPTOOLS}", then build again'
    )
DEFAULT_CUDA_ARCHS = "8.0;9.0+PTX"
# The oldest torch whose stable ABI has everything the bindings use (parallel_for, get_num_threads, contiguous,
# new_empty with a dtype, std::string arguments, const/mutable_data_ptr). 2.9 lacks them. Encoding of
# torch/csrc/stable/version.h: major << 56 | minor << 48.
TARGET_TORCH = (2, 10)
TARGET_VERSION_MACRO = f"0x{(TARGET_TORCH[0] << 56) | (TARGET_TORCH[1] << 48):016x}"
# The CPython floor of the wheel tag (cp310-abi3): the libraries use no Python C API at all; torch builds limited-API
# extensions for 3.10 (its -DPy_LIMITED_API), the oldest CPython torch 2.10 supports.
LIMITED_API = "cp310"
NO_TORCH = (
    "na_cuda: no torch in the build environment. The kernels must be compiled against the torch you run with: "
    "install torch first (e.g. `pip install torch==2.13.0`), then `pip install --no-build-isolation .`"
)


class _NoTorchBuild(build_ext):
    """Stands in for torch's BuildExtension when torch is missing: stops with NO_TORCH instead of a traceback."""

    def run(self) -> None:
        raise SystemExit(NO_TORCH)


def _flag(name: str) -> bool:
    return os.environ.get(name, "0").lower() in ("1", "true", "yes", "on")


def _torch_version() -> tuple[int, int]:
    major, minor = torch.__version__.split("+")[0].split(".")[:2]
    return int(major), int(minor)


def _cuda_archs() -> str:
    """The archs nvcc will target, as "sm_80;sm_90;compute_90", read from the flags torch's build helper produces."""
    try:
        flags = cpp_extension._get_cuda_arch_flags()  # honours TORCH_CUDA_ARCH_LIST
    except Exception as exc:  # noqa: BLE001 - report, don't fail the build over a report
        return f"unknown ({exc})"
    archs = sorted({f.split("code=")[-1].strip("[]") for f in flags if "code=" in f})
    return ";".join(a.replace(",", ";") for a in archs)


def _has_cudart(home: str) -> bool:
    return any(os.path.exists(os.path.join(home, d, "libcudart.so")) for d in ("lib64", "lib"))


def _cuda_home() -> str | None:
    """The CUDA toolkit to build with: torch's choice (CUDA_HOME, else the parent of the `nvcc` on PATH), unless that
    holds no libcudart to link (a wrapper script on PATH, e.g. /usr/local/bin/nvcc), then /usr/local/cuda."""
    home = cpp_extension.CUDA_HOME
    if home is None or os.environ.get("CUDA_HOME") or _has_cudart(home):
        return home
    for candidate in ("/usr/local/cuda",):
        if _has_cudart(candidate) and os.path.exists(os.path.join(candidate, "bin", "nvcc")):
            print(f"na_cuda: {home} holds no libcudart.so; using the CUDA toolkit at {candidate} (set CUDA_HOME)")
            cpp_extension.CUDA_HOME = candidate  # what torch's build helper reads for nvcc and the library paths
            return candidate
    return home


def _cxx_flags() -> list[str]:
    """-ffp-contract=off keeps a*b+c as two IEEE operations, so float64 results equal the reference bit for bit and
    the AVX2 and baseline kernels equal each other; -fvisibility=hidden exports only the extern "C" build facts;
    -Werror=switch makes a switch over an enum without a case for one of its values (a surrogate, a reset) an error."""
    return ["-O3", "-ffp-contract=off", "-fvisibility=hidden", "-Wno-psabi", "-Werror=switch"]


def _common(macros: list[tuple[str, str | None]]) -> dict:
    facts = [
        ("TORCH_TARGET_VERSION", TARGET_VERSION_MACRO),
        ("NA_TORCH_VERSION", torch.__version__),
        ("NA_TARGET_TORCH", ".".join(map(str, TARGET_TORCH))),
    ]
    return {"define_macros": facts + macros, "py_limited_api": True}


def _cpu_extension():
    sources = ["csrc/ops.cpp", "csrc/cpu/lif_cpu.cpp", "csrc/cpu/isa_baseline.cpp"]
    isas = ["baseline"]
    if platform.machine().lower() in ("x86_64", "amd64"):
        sources.append("csrc/cpu/isa_avx2.cpp")  # its own target pragma: any x86-64 compiler builds it
        isas.insert(0, "avx2")
    print(f"na_cuda: building the CPU library (CPU kernels: {', '.join(isas)}, chosen at load time)")
    return cpp_extension.CppExtension("na_cuda._C", sources, extra_compile_args={"cxx": _cxx_flags()}, **_common([]))


def _cuda_extension():
    """The CUDA library, or None with the reason printed."""
    if _flag("NA_CUDA_SKIP_CUDA"):
        with_cuda, reason = False, "NA_CUDA_SKIP_CUDA=1"
    elif _flag("NA_CUDA_FORCE_CUDA"):
        with_cuda, reason = True, "NA_CUDA_FORCE_CUDA=1"
    elif torch.version.cuda is None:
        with_cuda, reason = False, f"torch {torch.__version__} is a CPU build"
    elif _cuda_home() is None:
        with_cuda, reason = False, "nvcc not found (set CUDA_HOME)"
    else:
        with_cuda, reason = True, f"torch CUDA {torch.version.cuda}, CUDA toolkit at {cpp_extension.CUDA_HOME}"
    if not with_cuda:
        print(f"na_cuda: not building the CUDA library ({reason})")
        return None
    if not os.environ.get("TORCH_CUDA_ARCH_LIST"):
        # torch would ask the GPU, and without one (a build machine) fail deep inside its arch detection.
        os.environ["TORCH_CUDA_ARCH_LIST"] = DEFAULT_CUDA_ARCHS
        print(f"na_cuda: TORCH_CUDA_ARCH_LIST not set; building for {DEFAULT_CUDA_ARCHS}")
    archs = _cuda_archs()
    if "compute_" not in archs:
        print(
            f"na_cuda: warning: TORCH_CUDA_ARCH_LIST embeds no PTX ({archs}): GPUs newer than these get no kernel; "
            'add +PTX to the last arch, e.g. "8.0;9.0+PTX"'
        )
    # -fmad=false: no contraction of a*b+c into an FMA, as the CPU build's -ffp-contract=off, so a spike (u vs the
    # threshold) and every fp32/fp64 value without exp() equal the CPU op's bit for bit. Its cost on a GPU is
    # unmeasured (issue 9: a switch only if it costs more than 5 %); NVCC_FLAGS=-fmad=true overrides it.
    nvcc = ["-O3", "-fmad=false", "--expt-relaxed-constexpr", "-lineinfo"]
    nvcc += ["-Xcompiler", "-fvisibility=hidden", "-Xcompiler", "-Werror=switch"]
    nvcc += shlex.split(os.environ.get("NVCC_FLAGS", ""))
    macros = [("USE_CUDA", "1"), ("NA_CUDA_VERSION", torch.version.cuda or "unknown"), ("NA_CUDA_ARCHS", archs)]
    print(f"na_cuda: building the CUDA library ({reason}; archs {archs})")
    return cpp_extension.CUDAExtension(
        "na_cuda._C_cuda",
        ["csrc/cuda/lif_cuda.cu", "csrc/cuda/lif_kernels.cu"],
        extra_compile_args={"cxx": _cxx_flags(), "nvcc": nvcc},
        **_common(macros),
    )


def _extensions() -> list:
    if _torch_version() < TARGET_TORCH:
        raise SystemExit(
            f"na_cuda: torch {torch.__version__} is too old to build against: the kernels use the LibTorch stable "
            f"ABI of torch >= {'.'.join(map(str, TARGET_TORCH))}. Upgrade torch (e.g. `pip install torch==2.13.0`)."
        )
    return [e for e in (_cpu_extension(), _cuda_extension()) if e is not None]


if torch is None:
    setup(ext_modules=[Extension("na_cuda._C", sources=[])], cmdclass={"build_ext": _NoTorchBuild})
else:

    class _BuildWithFacts(cpp_extension.BuildExtension.with_options(use_ninja=True, no_python_abi_suffix=True)):
        """torch's build, plus na_cuda/_build_facts.json beside the libraries: what na_cuda/_backend.py must know
        before it loads one (a library built for torch >= 2.10 does not even load under 2.9, hiding the reason)."""

        def run(self) -> None:
            super().run()
            facts = {"target_torch": ".".join(map(str, TARGET_TORCH)), "built_with_torch": torch.__version__}
            path = os.path.join(os.path.dirname(self.get_ext_fullpath("na_cuda._C")), "_build_facts.json")
            with open(path, "w") as f:
                json.dump(facts, f)

    setup(
        ext_modules=_extensions(),
        cmdclass={"build_ext": _BuildWithFacts},
        options={"bdist_wheel": {"py_limited_api": LIMITED_API}},
    )
