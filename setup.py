"""Build na_cuda's compiled kernels.

Always builds the CPU operator library; adds the CUDA kernels when the installed torch is a CUDA build and nvcc is
found (CUDA_HOME), or when NA_CUDA_FORCE_CUDA=1. NA_CUDA_SKIP_CUDA=1 skips them. Never asks
torch.cuda.is_available(): a machine without a GPU can build the CUDA kernels for one.

Install with `pip install --no-build-isolation .` so the build uses the torch you already have (build isolation
would download a second, possibly different, torch into a throw-away environment). torch is therefore not a
build requirement: an isolated build finds no torch and stops at once with a one-line message saying so, while
`python -m build --sdist` (which compiles nothing) works without torch.

Environment: TORCH_CUDA_ARCH_LIST (default "8.0;9.0+PTX": sm_80 and sm_90 binaries plus PTX that newer GPUs
compile at load time), NVCC_FLAGS (extra nvcc flags), NA_CUDA_CPU_ARCH=portable (no AVX2), CXXFLAGS as usual.
"""
from __future__ import annotations

import glob
import os
import shlex

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

try:
    import torch
    from torch.utils import cpp_extension
except ImportError:  # an isolated build, or no torch installed: fine for an sdist, fatal for a build
    torch = None

ROOT = os.path.dirname(os.path.abspath(__file__))
DEFAULT_CUDA_ARCHS = "8.0;9.0+PTX"
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


def _cuda_archs() -> str:
    """The archs nvcc will target, as "sm_80;sm_90", read from the flags torch's build helper produces."""
    try:
        flags = cpp_extension._get_cuda_arch_flags()  # honours TORCH_CUDA_ARCH_LIST
    except Exception as exc:  # noqa: BLE001 - report, don't fail the build over a report
        return f"unknown ({exc})"
    archs = sorted({f.split("code=")[-1].strip("[]") for f in flags if "code=" in f})
    return ";".join(a.replace(",", ";") for a in archs)


def _cpu_isa() -> str:
    """"avx2" when the CPU kernels are built with AVX2 (this machine has it and NA_CUDA_CPU_ARCH != portable)."""
    if os.environ.get("NA_CUDA_CPU_ARCH", "auto") == "portable":
        return "portable"
    try:
        with open("/proc/cpuinfo") as f:
            return "avx2" if " avx2" in f.read() else "portable"
    except OSError:
        return "portable"


def _cpu_flags() -> list[str]:
    """SIMD flags for the CPU kernels: AVX2 when this machine has it (8 float lanes instead of 4, about 2x).

    Like -march=native for a from-source build; NA_CUDA_CPU_ARCH=portable builds for any x86-64 (SSE2).
    -ffp-contract=off keeps a*b+c as two IEEE operations, so float64 results equal the reference bit for bit.
    """
    flags = ["-ffp-contract=off", "-Wno-psabi"]
    return flags + (["-mavx2"] if _cpu_isa() == "avx2" else [])


def _extension():
    sources = [os.path.join("csrc", "ops.cpp")] + sorted(glob.glob(os.path.join("csrc", "cpu", "*.cpp")))
    # No -std: torch's build helper adds the one its headers need (torch 2.14's ATen refuses anything below c++20).
    cxx = ["-O3", "-fopenmp"] + _cpu_flags()
    reason = ""
    if _flag("NA_CUDA_SKIP_CUDA"):
        with_cuda, reason = False, "NA_CUDA_SKIP_CUDA=1"
    elif _flag("NA_CUDA_FORCE_CUDA"):
        with_cuda, reason = True, "NA_CUDA_FORCE_CUDA=1"
    elif torch.version.cuda is None:
        with_cuda, reason = False, f"torch {torch.__version__} is a CPU build"
    elif cpp_extension.CUDA_HOME is None:
        with_cuda, reason = False, "nvcc not found (set CUDA_HOME)"
    else:
        with_cuda, reason = True, f"torch CUDA {torch.version.cuda}, nvcc at {cpp_extension.CUDA_HOME}"
    # The build facts import checks (na_cuda/_backend.py): the exact torch and the CPU ISA of this build.
    facts = [("NA_TORCH_VERSION", torch.__version__), ("NA_CPU_ISA", _cpu_isa())]

    if not with_cuda:
        print(f"na_cuda: building CPU kernels only ({reason}); CPU flags {' '.join(_cpu_flags())}")
        return cpp_extension.CppExtension(
            "na_cuda._C", sources, define_macros=facts, extra_compile_args={"cxx": cxx}, extra_link_args=["-fopenmp"]
        )

    if not os.environ.get("TORCH_CUDA_ARCH_LIST"):
        # torch would ask the GPU, and without one (a build machine) fail deep inside its arch detection.
        os.environ["TORCH_CUDA_ARCH_LIST"] = DEFAULT_CUDA_ARCHS
        print(f"na_cuda: TORCH_CUDA_ARCH_LIST not set; building for {DEFAULT_CUDA_ARCHS}")
    archs = _cuda_archs()
    sources += sorted(glob.glob(os.path.join("csrc", "cuda", "*.cu")))
    # -fmad=false: no contraction of a*b+c into an FMA, as the CPU build's -ffp-contract=off, so a spike (u vs the
    # threshold) and every fp32/fp64 value without exp() equal the CPU op's bit for bit. Its cost on a GPU is
    # unmeasured (issue 9: a switch only if it costs more than 5 %); NVCC_FLAGS=-fmad=true overrides it.
    nvcc = ["-O3", "-fmad=false", "--expt-relaxed-constexpr", "-lineinfo"] + shlex.split(os.environ.get("NVCC_FLAGS", ""))
    macros = facts + [("NA_WITH_CUDA", None), ("NA_CUDA_VERSION", torch.version.cuda or "unknown"),
                      ("NA_CUDA_ARCHS", archs)]
    print(f"na_cuda: building CPU and CUDA kernels ({reason}; archs {archs})")
    return cpp_extension.CUDAExtension(
        "na_cuda._C",
        sources,
        define_macros=macros,
        extra_compile_args={"cxx": cxx, "nvcc": nvcc},
        extra_link_args=["-fopenmp"],
    )


if torch is None:
    setup(ext_modules=[Extension("na_cuda._C", sources=[])], cmdclass={"build_ext": _NoTorchBuild})
else:
    setup(
        ext_modules=[_extension()],
        cmdclass={"build_ext": cpp_extension.BuildExtension.with_options(use_ninja=True)},
    )
