"""Host emulation of the CUDA kernels (tests/cuda_emu): build with the host C++ compiler, call through ctypes.

`load()` compiles csrc/cuda/lif_kernels.cu for the host (no GPU, no CUDA runtime) against the shim in
tests/cuda_emu/shim, once per source version (cached under the temp dir), and returns an `Emulator` whose
methods mirror the torch binding (csrc/cuda/lif_cuda.cu): same launchers, same workspace planes, on CPU tensors.
float16/bfloat16 use the real cuda_fp16.h/cuda_bf16.h host conversions when the CUDA headers are found
(CUDA_HOME, nvcc's toolkit, /usr/local/cuda); without them only float32/float64 run (`Emulator.real_half`).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Optional

import torch

from na_cuda import surrogates

ROOT = Path(__file__).resolve().parents[1]
EMU = ROOT / "tests" / "cuda_emu"
# The flags torch's CUDAExtension compiles .cu files with, plus the CPU build's -ffp-contract=off (setup.py), so
# the host compiler rounds every operation as the CPU op does.
FLAGS = [
    "-std=c++17",
    "-O1",
    "-ffp-contract=off",
    "-fPIC",
    "-shared",
    "-Wall",
    "-Werror",
    "-D__CUDA_NO_HALF_OPERATORS__",
    "-D__CUDA_NO_HALF_CONVERSIONS__",
    "-D__CUDA_NO_BFLOAT16_CONVERSIONS__",
    "-D__CUDA_NO_HALF2_OPERATORS__",
]
DTYPES = {torch.float16: 0, torch.bfloat16: 1, torch.float32: 2, torch.float64: 3}
RULES = {"na": 0, "stbp": 1, "tssl": 2}
SURROGATES = {name: i for i, name in enumerate(surrogates.SURROGATES)}  # the C++ enum order
FIRST_ORDERS = {"paper": 0, "taylor": 1}
_vp, _i, _i64, _d = ctypes.c_void_p, ctypes.c_int, ctypes.c_int64, ctypes.c_double
# tau_m, tau_s, threshold, has_v_reset, v_reset, decay_input, strict, psc, after (0 / 1 subtract / 2 none), membrane
_NEURON = [_d, _d, _d, _i, _d, _i, _i, _i, _i, _i]
_AFTER = {None: 0, "subtract": 1, "none": 2}
_RULE_ARGS = {"na": [_i, _i, _d, _i64], "stbp": [_i, _d, _i], "tssl": []}
# The ops' rule arguments (after the neuron's) as the ABI takes them.
_ENCODE = {
    "na": lambda first_order, dist_power, clip, window=None: (FIRST_ORDERS[first_order], dist_power, clip, window or 0),
    "stbp": lambda surrogate, alpha, detach: (SURROGATES[surrogate], alpha, int(detach)),
    "tssl": lambda: (),
}


def cuda_include() -> Optional[Path]:
    """The CUDA toolkit's include folder holding cuda_fp16.h, or None."""
    cands = [os.environ.get("CUDA_HOME", "")]
    nvcc = shutil.which("nvcc")
    if nvcc:
        cands.append(str(Path(os.path.realpath(nvcc)).parents[1]))
    cands.append("/usr/local/cuda")
    for c in cands:
        if c and (Path(c) / "include" / "cuda_fp16.h").is_file():
            return Path(c) / "include"
    return None


def _sources() -> list[Path]:
    return sorted(
        [
            *EMU.rglob("*.h"),
            EMU / "emu_abi.cpp",
            *(ROOT / "csrc").rglob("*.h"),
            ROOT / "csrc" / "cuda" / "lif_kernels.cu",
        ]
    )


def build() -> Path:
    """Compile the emulation library (or reuse the cached build of identical sources); returns its path."""
    cxx = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    if cxx is None:
        raise RuntimeError("no host C++ compiler (c++/g++, or CXX)")
    inc = cuda_include()
    flags = FLAGS + [f"-I{EMU / 'shim'}"]
    flags += [f"-DNA_EMU_REAL_HALF={int(inc is not None)}", f"-I{inc if inc else EMU / 'nohalf'}"]
    h = hashlib.sha256(" ".join([cxx, *flags]).encode())
    for p in _sources():
        h.update(p.read_bytes())
    out = Path(tempfile.gettempdir()) / f"na_cuda_emu_{h.hexdigest()[:16]}" / "libna_emu.so"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(f".{os.getpid()}.tmp")
        r = subprocess.run([cxx, *flags, str(EMU / "emu_abi.cpp"), "-o", str(tmp)], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"building the CUDA host emulation failed:\n{r.stderr[-4000:]}")
        os.replace(tmp, out)  # atomic: a concurrent build never loads a half-written library
    return out


def _ptr(t: Optional[torch.Tensor]) -> Optional[int]:
    return None if t is None else t.data_ptr()


class Emulator:
    """The CUDA launchers of csrc/cuda/lif_kernels.h run on the host, on contiguous CPU tensors.

    Outputs and workspaces are allocated with `guard` extra elements and filled with NaN, so a read before a
    write shows up as NaN in the result and a write out of bounds as a changed guard (`check_guards`).
    """

    guard = 64

    def __init__(self, path: Path) -> None:
        lib = ctypes.CDLL(str(path))
        lib.na_emu_forward.argtypes = [_i, _vp, _vp, _vp, _i64, _i64, *_NEURON]
        for rule, extra in _RULE_ARGS.items():
            getattr(lib, f"na_emu_{rule}_backward").argtypes = [
                _i,
                _vp,
                _vp,
                _vp,
                _vp,
                _vp,
                _vp,
                _i64,
                _i64,
                *_NEURON,
                *extra,
            ]
        lib.na_emu_set_max_blocks.argtypes = [_i64]
        lib.na_emu_workspace_planes.argtypes = [_i, _i, _i64]
        lib.na_emu_blocks_run.restype = _i64
        lib.na_emu_bad_launches.restype = _i64
        self.lib = lib
        self.real_half = bool(lib.na_emu_real_half())
        self._guarded: list[torch.Tensor] = []

    def set_max_blocks(self, blocks: int) -> None:
        """Cap the emulated grid at `blocks` (0: the kernel file's own grid) and reset the launch counters."""
        self.lib.na_emu_set_max_blocks(blocks)

    @property
    def blocks_run(self) -> int:
        return self.lib.na_emu_blocks_run()

    @property
    def bad_launches(self) -> int:
        return self.lib.na_emu_bad_launches()

    def _nan(self, n: int, dtype: torch.dtype) -> torch.Tensor:
        buf = torch.full((n + self.guard,), float("nan"), dtype=dtype)
        self._guarded.append(buf)
        return buf

    def check_guards(self) -> None:
        """Assert that no launch wrote past the end of an output or workspace, then forget the buffers."""
        for buf in self._guarded:
            assert torch.isnan(buf[-self.guard :]).all(), "a kernel wrote past the end of its buffer"
        self._guarded.clear()

    def workspace_planes(self, rule: str, dtype: torch.dtype, T: int) -> int:
        return self.lib.na_emu_workspace_planes(RULES[rule], DTYPES[dtype], T)

    def _out(self, c: torch.Tensor, rule: Optional[str]):
        T, N = c.shape[0], c[0].numel()
        out = self._nan(T * N, c.dtype)
        planes = self.workspace_planes(rule, c.dtype, T) if rule else 0
        acc = torch.float64 if c.dtype == torch.float64 else torch.float32
        ws = self._nan(planes * T * N, acc) if planes else None
        return out, ws, T, N

    @staticmethod
    def _neuron(args: tuple) -> tuple:
        """The ops' neuron arguments (tau_m, tau_s, threshold, v_reset, decay_input, strict, output), optionally
        followed by reset_mechanism, for the ABI."""
        tau_m, tau_s, threshold, v_reset, decay_input, strict, output = args[:7]
        mechanism = args[7] if len(args) > 7 else None
        return (
            tau_m,
            tau_s,
            threshold,
            int(v_reset is not None),
            0.0 if v_reset is None else v_reset,
            int(decay_input),
            int(strict),
            int(output == "psc"),
            _AFTER[mechanism],
            int(output == "membrane"),
        )

    def forward(self, c: torch.Tensor, neuron: tuple, decay: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The LIF forward; `neuron`: the ops' neuron arguments (as torch.ops.na_cuda.lif_forward takes them, then
        optionally reset_mechanism); `decay`: the learnable leak per neuron ([N], compute dtype) or None."""
        c = c.contiguous()
        out, _, T, N = self._out(c, None)
        self.lib.na_emu_forward(DTYPES[c.dtype], _ptr(c), _ptr(decay), _ptr(out), T, N, *self._neuron(neuron))
        return out[: T * N].view(c.shape)

    def backward(
        self,
        rule: str,
        g: torch.Tensor,
        c: torch.Tensor,
        neuron: tuple,
        rule_args: tuple,
        decay: Optional[torch.Tensor] = None,
    ) -> Any:
        """grad_c of `rule`, with the arguments torch.ops.na_cuda.<rule>_backward takes after (g, c); with a
        `decay`, (grad_c, dL/dlam per neuron)."""
        c, g = c.contiguous(), g.contiguous()
        grad, ws, T, N = self._out(c, rule)
        gdecay = None if decay is None else self._nan(N, decay.dtype)
        extra = _ENCODE[rule](*rule_args)
        getattr(self.lib, f"na_emu_{rule}_backward")(
            DTYPES[c.dtype],
            _ptr(g),
            _ptr(c),
            _ptr(decay),
            _ptr(grad),
            _ptr(gdecay),
            _ptr(ws),
            T,
            N,
            *self._neuron(neuron),
            *extra,
        )
        out = grad[: T * N].view(c.shape)
        return out if gdecay is None else (out, gdecay[:N])


def load() -> Emulator:
    return Emulator(build())
