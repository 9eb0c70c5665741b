"""Which compiled kernels exist, and which implementation a call uses (docs/install.md).

Two stable-ABI libraries, loaded with ``torch.ops.load_library``: ``_C.so`` (the op schemas and the CPU kernels,
AVX2 or baseline chosen at load time) and ``_C_cuda.so`` (the CUDA kernels, only under a CUDA torch). Nothing is
loaded that cannot work: the torch version is checked against the build's target (``_build_facts.json``) and the
CUDA major the CUDA library links against torch's, before either is opened. ``import na_cuda`` never fails on
them: what does not load runs on the reference (na_cuda.reference), and ``backends()`` says why.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch

BUILD_HINT = (
    "install the na_cuda wheel for your platform, or build the kernels with `pip install --no-build-isolation .` "
    "in the na_cuda source tree (with a CUDA build of torch and nvcc on PATH for the CUDA kernels)"
)
#: The environment variable that picks the CPU kernels' instruction set: "auto" (default: the best this CPU has),
#: "avx2" or "baseline".
CPU_ISA_ENV = "NA_CUDA_CPU_ISA"
_HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class _Native:
    """What loaded: the CPU library's ctypes handle and build facts, the CUDA library's, and why not where not."""

    cpu: Optional[ctypes.CDLL] = None
    cpu_error: Optional[str] = None
    cuda: Optional[ctypes.CDLL] = None
    cuda_error: Optional[str] = None
    info: dict[str, Any] = field(default_factory=dict)


def _torch_version(v: str) -> tuple[int, int]:
    major, minor = v.split("+")[0].split(".")[:2]
    return int(major), int("".join(ch for ch in minor if ch.isdigit()) or 0)


def _library(stem: str, here: Path = _HERE) -> Optional[Path]:
    """The compiled library ``stem`` in ``here`` (``_C.so``; older builds named ``_C.<abi tag>.so``)."""
    found = sorted(p for p in here.glob(f"{stem}.*so") if p.name.split(".")[0] == stem)
    return found[0] if found else None


def _open(path: Path) -> ctypes.CDLL:
    """Load a library into the dispatcher (runs its op registrations) and return a handle to its C functions."""
    torch.ops.load_library(str(path))
    return ctypes.CDLL(str(path))  # the same dlopen handle: reads the extern "C" build facts


def _load_failure(path: Path, exc: Exception) -> str:
    """Why a library did not load, in the loader's own words: torch.ops.load_library replaces dlerror's message
    ("libcudart.so.13: cannot open shared object file ...") by "Could not load this library: <path>" and chains it."""
    cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
    return f"{path.name} did not load ({type(cause).__name__}: {cause})"


def _needed(path: Path) -> list[str]:
    """The DT_NEEDED entries of an ELF64 shared library (the sonames the dynamic loader will look for), read from
    the file without loading it; [] when it is not an ELF64 file or has no dynamic section."""
    try:
        data = path.read_bytes()
        if data[:4] != b"\x7fELF" or data[4] != 2:  # ELFCLASS64
            return []
        end = "<" if data[5] == 1 else ">"  # ELFDATA2LSB
        (shoff,) = struct.unpack_from(end + "Q", data, 0x28)
        shentsize, shnum = struct.unpack_from(end + "HH", data, 0x3A)
        # Section headers: (name, type, flags, addr, offset, size, link, info, addralign, entsize).
        sections = [struct.unpack_from(end + "IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
        for sec in sections:
            if sec[1] != 6:  # SHT_DYNAMIC; its sh_link is the string table of the names
                continue
            strtab, names = sections[sec[6]][4], []
            for off in range(sec[4], sec[4] + sec[5], 16):
                tag, val = struct.unpack_from(end + "qQ", data, off)
                if tag == 0:  # DT_NULL
                    break
                if tag == 1:  # DT_NEEDED
                    names.append(data[strtab + val : data.index(b"\0", strtab + val)].decode())
            return names
    except (OSError, struct.error, ValueError, IndexError):
        pass
    return []


def _cuda_mismatch(path: Path) -> Optional[str]:
    """Why the CUDA library must not load under this torch, or None: it links the CUDA runtime of its build
    (libcudart.so.N); under a torch of another CUDA major the process would hold two CUDA runtimes (or the loader
    finds none), and a driver too old for N fails at the first launch rather than here."""
    majors = [m.group(1) for n in _needed(path) if (m := re.fullmatch(r"libcudart\.so\.(\d+)", n))]
    have = str(torch.version.cuda).split(".")[0]
    if not majors or majors[0] == have:
        return None
    want = majors[0]
    return (
        f"{path.name} was built for CUDA {want} (it links libcudart.so.{want}) but torch {torch.__version__} is built "
        f"with CUDA {torch.version.cuda}, so it is not loaded: install a CUDA {want} build of torch (cu{want}x), or "
        f"build na_cuda from source against this torch (`pip install --no-build-isolation .` with a CUDA {have} nvcc)"
    )


def _build_facts(here: Path) -> dict[str, Any]:
    """What setup.py wrote next to the libraries at build time (``_build_facts.json``), {} when absent."""
    try:
        facts = json.loads((here / "_build_facts.json").read_text())
    except (OSError, ValueError):
        return {}
    return facts if isinstance(facts, dict) else {}


def _c_str(lib: ctypes.CDLL, name: str) -> str:
    fn = getattr(lib, name)
    fn.restype = ctypes.c_char_p
    return fn().decode()


def _select_cpu_isa(lib: ctypes.CDLL) -> Optional[str]:
    """Apply NA_CUDA_CPU_ISA; return a warning sentence when it cannot be honoured (the kernels then keep the best
    instruction set this CPU runs)."""
    want = os.environ.get(CPU_ISA_ENV, "auto").strip().lower() or "auto"
    if want == "auto":
        return None
    setter = lib.na_cuda_set_cpu_isa
    setter.argtypes, setter.restype = [ctypes.c_char_p], ctypes.c_int
    rc = setter(want.encode())
    if rc == 1:
        return f'{CPU_ISA_ENV}="{want}" is not one of "auto", "avx2", "baseline"; using the default'
    if rc == 2:
        return f'{CPU_ISA_ENV}="{want}": this CPU or this build lacks it; using "{_c_str(lib, "na_cuda_cpu_isa")}"'
    return None


def _load(here: Path = _HERE) -> _Native:
    """Load the compiled libraries in ``here``, or say in one sentence per library why not."""
    cpu_path = _library("_C", here)
    if cpu_path is None:  # e.g. running from a source tree that was never built
        return _Native(cpu_error=f"na_cuda._C is not built (no compiled library in {here})")
    facts = _build_facts(here)
    target = facts.get("target_torch")
    if target is None:
        return _Native(
            cpu_error=f"{cpu_path.name} has no build facts (_build_facts.json in {here}): it comes from an older or "
            "foreign build; reinstall the wheel, or rebuild with `pip install --no-build-isolation .`"
        )
    if _torch_version(torch.__version__) < _torch_version(target):
        # Checked before loading: the stable ABI serves newer torch, never older, and under an older torch the
        # library does not even load (a missing shim symbol), which would hide this reason.
        return _Native(
            cpu_error=f"na_cuda's kernels need torch >= {target} (their stable-ABI target) but torch "
            f"{torch.__version__} is running: upgrade torch, or build na_cuda from source against this one",
            info=facts,
        )
    try:
        cpu = _open(cpu_path)
        info = {**facts, **json.loads(_c_str(cpu, "na_cuda_build_info"))}
    except (OSError, RuntimeError, AttributeError, ValueError) as exc:
        return _Native(cpu_error=_load_failure(cpu_path, exc), info=facts)
    isa_warning = _select_cpu_isa(cpu)
    if isa_warning:
        warnings.warn(f"na_cuda: {isa_warning}", RuntimeWarning, stacklevel=3)
    cuda_path = _library("_C_cuda", here)
    if cuda_path is None:
        return _Native(cpu=cpu, cuda_error="na_cuda was built without CUDA kernels (no _C_cuda library)", info=info)
    if torch.version.cuda is None:
        # It links libtorch_cuda and the CUDA runtime, which a CPU build of torch does not ship.
        return _Native(
            cpu=cpu,
            cuda_error=f"torch {torch.__version__} is a CPU build; the CUDA kernels need a CUDA torch",
            info=info,
        )
    mismatch = _cuda_mismatch(cuda_path)
    if mismatch:
        return _Native(cpu=cpu, cuda_error=mismatch, info=info)
    try:
        cuda = _open(cuda_path)
        info = {**info, **json.loads(_c_str(cuda, "na_cuda_cuda_build_info"))}
    except (OSError, RuntimeError, AttributeError, ValueError) as exc:
        return _Native(cpu=cpu, cuda_error=_load_failure(cuda_path, exc), info=info)
    return _Native(cpu=cpu, cuda=cuda, info=info)


_NATIVE = _load()


class NativeBackendWarning(UserWarning):
    """Emitted once when backend="auto" falls back to the slow pure-PyTorch reference: at import for the CPU and
    CUDA, at the first eager call for another device type. No filter of our own: a user's ``ignore`` holds."""


def native_loaded() -> bool:
    """True when the compiled operator library is loaded (torch.ops.na_cuda.* exist)."""
    return _NATIVE.cpu is not None


def native_available(device_type: str) -> bool:
    """True when a compiled kernel exists for this device type ("cpu" or "cuda")."""
    if device_type == "cpu":
        return _NATIVE.cpu is not None
    if device_type == "cuda":
        return _NATIVE.cuda is not None
    return False


def _missing_reason(device_type: str) -> str:
    if _NATIVE.cpu is None:
        return f"the compiled library did not load: {_NATIVE.cpu_error}"
    if device_type == "cuda":
        return str(_NATIVE.cuda_error)
    return f"na_cuda has no kernels for device type {device_type!r}"


def _fallback_message(device_type: str) -> str:
    return (
        f'na_cuda: no native kernel for {device_type} ({_missing_reason(device_type)}); backend="auto" uses the '
        f'pure-PyTorch reference there, which is much slower. To fix: {BUILD_HINT}. Pass backend="torch" to '
        "silence this."
    )


def _announced_at_import(device_type: str) -> bool:
    """The device types whose fallback import announces: the CPU, and CUDA under a CUDA build of torch."""
    return device_type == "cpu" or (device_type == "cuda" and torch.version.cuda is not None)


def _warn_at_import() -> None:
    """Say at import, outside any torch.compile graph, which device types fall back to the reference."""
    for device_type in ("cpu", "cuda"):
        if _announced_at_import(device_type) and not native_available(device_type):
            warnings.warn(_fallback_message(device_type), NativeBackendWarning, stacklevel=3)


def use_native(backend: str, device: torch.device) -> bool:
    """Resolve backend="auto" | "native" | "torch" for a tensor on `device` (validated names)."""
    if backend == "torch":
        return False
    if native_available(device.type):
        return True
    if backend == "native":
        reason = _missing_reason(device.type)
        raise RuntimeError(f'na_cuda: backend="native" has no kernel for {device.type}: {reason}; {BUILD_HINT}')
    # The CPU and CUDA fallbacks were announced at import; others (e.g. meta) are, once, by an eager call, never
    # inside a graph: Dynamo cannot trace warnings.warn (torch 2.9 breaks the graph there).
    if not _announced_at_import(device.type) and not torch.compiler.is_compiling():
        warnings.warn(_fallback_message(device.type), NativeBackendWarning, stacklevel=4)
    return False


_warn_at_import()


def cpu_isa() -> Optional[str]:
    """The instruction set the CPU kernels run now ("avx2" or "baseline"); None without the compiled library."""
    return _c_str(_NATIVE.cpu, "na_cuda_cpu_isa") if _NATIVE.cpu is not None else None


def set_cpu_isa(name: str) -> None:
    """Switch the CPU kernels to ``name`` ("avx2" or "baseline") for the whole process (tests and benchmarks
    compare the two; users set NA_CUDA_CPU_ISA instead). Raises ValueError when unknown or not runnable here."""
    if _NATIVE.cpu is None:
        raise RuntimeError(f"na_cuda: no compiled CPU kernels to switch: {_NATIVE.cpu_error}")
    setter = _NATIVE.cpu.na_cuda_set_cpu_isa
    setter.argtypes, setter.restype = [ctypes.c_char_p], ctypes.c_int
    rc = setter(name.encode())
    if rc:
        raise ValueError(
            f"na_cuda: cpu isa {name!r} "
            + ("is unknown" if rc == 1 else "is not supported by this CPU or build")
            + f"; compiled: {cpu_isas()}"
        )


def cpu_isas() -> list[str]:
    """The CPU instruction sets compiled into the library, best first."""
    return _c_str(_NATIVE.cpu, "na_cuda_cpu_isas").split(",") if _NATIVE.cpu is not None else []


def backends() -> dict[str, Any]:
    """What was compiled and what backend="auto" picks per device.

    Returns a dict with keys: ``native_loaded``, ``load_error`` (why the CPU library did not load, else None),
    ``cpu``, ``cuda`` (kernels loaded), ``cuda_error`` (why not, else None), ``cuda_version`` and ``cuda_archs`` of
    the build, ``built_with_torch`` (the torch whose headers built it) and ``target_torch`` (the oldest torch it
    serves), ``cpu_isa`` (the instruction set the CPU kernels run: ``"avx2"`` or ``"baseline"``) and ``cpu_isas``
    (those compiled in), ``torch_version``, ``torch_cuda`` (the running torch's CUDA version), ``gpu_available``
    and ``auto`` (device type -> "native" or "torch").
    """
    info = _NATIVE.info
    with_cuda = native_available("cuda")
    return {
        "native_loaded": native_loaded(),
        "load_error": _NATIVE.cpu_error,
        "cpu": native_available("cpu"),
        "cuda": with_cuda,
        "cuda_error": None if with_cuda else _missing_reason("cuda"),
        "cuda_version": info.get("cuda_version") if with_cuda else None,
        "cuda_archs": info.get("cuda_archs", "").split(";") if with_cuda else [],
        "built_with_torch": info.get("built_with_torch"),
        "target_torch": info.get("target_torch"),
        "cpu_isa": cpu_isa(),
        "cpu_isas": cpu_isas(),
        "torch_version": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "gpu_available": torch.cuda.is_available(),
        "auto": {d: ("native" if native_available(d) else "torch") for d in ("cpu", "cuda")},
    }
