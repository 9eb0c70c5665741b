"""Which compiled kernels exist, and which implementation a call uses.

`import na_cuda` never fails because of the compiled library: if `na_cuda._C` is missing or does not load, every
op still works through the pure-PyTorch reference (na_cuda.reference), and `backends()` says why.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from types import ModuleType
from typing import Any, Optional

import torch

BUILD_HINT = (
    "build the kernels with `pip install --no-build-isolation .` in the na_cuda source tree "
    "(with a CUDA build of torch and nvcc on PATH for the CUDA kernels)"
)


def _load() -> tuple[Optional[ModuleType], Optional[str]]:
    """Import the compiled library (which registers torch.ops.na_cuda.*), or say in one sentence why not."""
    try:
        from . import _C  # type: ignore[attr-defined]
    except ImportError as exc:
        here = Path(__file__).resolve().parent
        if not any(here.glob("_C.*")):  # e.g. running from a source tree that was never built
            return None, f"na_cuda._C is not built (no compiled library in {here})"
        if "undefined symbol" in str(exc):
            return None, f"na_cuda._C does not fit the running torch {torch.__version__} ({exc}): rebuild it"
        return None, f"{type(exc).__name__}: {exc}"
    built = getattr(_C, "torch_version", None)
    if built is not None and built != torch.__version__:
        # Loading succeeded, but torch's C++ ABI is only stable within one version: refuse rather than crash later.
        return None, f"na_cuda._C was built against torch {built} but torch {torch.__version__} is running: rebuild it"
    return _C, None


_C, _LOAD_ERROR = _load()


class NativeBackendWarning(UserWarning):
    """Emitted once when backend="auto" falls back to the slow pure-PyTorch reference."""


warnings.simplefilter("once", NativeBackendWarning)


def native_loaded() -> bool:
    """True when the compiled operator library is loaded (torch.ops.na_cuda.* exist)."""
    return _C is not None


def native_available(device_type: str) -> bool:
    """True when a compiled kernel exists for this device type ("cpu" or "cuda")."""
    if _C is None:
        return False
    if device_type == "cpu":
        return True
    if device_type == "cuda":
        return bool(_C.with_cuda)
    return False


def _missing_reason(device_type: str) -> str:
    if _C is None:
        return f"the compiled library na_cuda._C did not load ({_LOAD_ERROR})"
    if device_type == "cuda":
        return "na_cuda._C was built without CUDA kernels"
    return f"na_cuda has no kernels for device type {device_type!r}"


def use_native(backend: str, device: torch.device) -> bool:
    """Resolve backend="auto" | "native" | "torch" for a tensor on `device` (validated names)."""
    if backend == "torch":
        return False
    if native_available(device.type):
        return True
    reason = _missing_reason(device.type)
    if backend == "native":
        raise RuntimeError(f'na_cuda: backend="native" has no kernel for {device.type}: {reason}; {BUILD_HINT}')
    warnings.warn(
        f"na_cuda: no native kernel for {device.type} ({reason}); using the pure-PyTorch reference, which is "
        f'much slower. To fix: {BUILD_HINT}. Pass backend="torch" to silence this.',
        NativeBackendWarning,
        stacklevel=4,
    )
    return False


def backends() -> dict[str, Any]:
    """What was compiled and what backend="auto" picks per device.

    Returns a dict with keys: ``native_loaded``, ``load_error``, ``cpu``, ``cuda`` (kernels compiled),
    ``cuda_version`` and ``cuda_archs`` of the build, ``built_with_torch`` and ``cpu_isa`` (``"avx2"`` or
    ``"portable"``) of the build, ``torch_version``, ``torch_cuda`` (the running torch's
    CUDA version), ``gpu_available`` and ``auto`` (device type -> "native" or "torch").
    """
    with_cuda = native_available("cuda")
    return {
        "native_loaded": native_loaded(),
        "load_error": _LOAD_ERROR,
        "cpu": native_available("cpu"),
        "cuda": with_cuda,
        "cuda_version": _C.cuda_version if with_cuda and _C is not None else None,
        "cuda_archs": _C.cuda_archs.split(";") if with_cuda and _C is not None else [],
        "built_with_torch": getattr(_C, "torch_version", None) if _C is not None else None,
        "cpu_isa": getattr(_C, "cpu_isa", None) if _C is not None else None,
        "torch_version": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "gpu_available": torch.cuda.is_available(),
        "auto": {d: ("native" if native_available(d) else "torch") for d in ("cpu", "cuda")},
    }
