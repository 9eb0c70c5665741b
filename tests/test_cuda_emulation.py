"""The CUDA kernels, run on the host (tests/_cuda_emu.py), equal the native CPU op bit for bit.

csrc/cuda/lif_kernels.cu is compiled with the host C++ compiler against a small shim (tests/cuda_emu/shim) and
its launchers run the grid as a loop, so every kernel and launch decision (grid size, grid-stride loop, NA's
on-chip buckets T <= 8/16/32 and its workspace path above, the workspace planes) executes without a GPU. Both
backends share the per-neuron code (csrc/core) and the CPU build and the emulation
contract no a*b+c (-ffp-contract=off; the CUDA build uses -fmad=false for the same reason), so the results must
be identical, not close. What this cannot show: the GPU's own expf (STBP sigmoid, TSSL warm-up: a few ulp from
glibc's) and anything about speed; scripts/gpu_check.sh covers those on a GPU.

Outputs and workspaces start as NaN with a NaN guard past their end: a read before a write, or a write out of
bounds, fails the comparison or the guard check. N = 600 is two full blocks of 256 threads and a partial one;
a grid capped at 1 block makes every thread take three neurons through the grid-stride loop.
"""
from __future__ import annotations

import pytest
import torch

import _cuda_emu
from helpers import METHOD_CASES, case_id, make_grad, make_input, native_backward, needs_native, params

pytestmark = needs_native

N = 600
DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]
BITS = {torch.float64: torch.int64, torch.float32: torch.int32, torch.float16: torch.int16,
        torch.bfloat16: torch.int16}
GRID_CAPS = [0, 1]  # 0: the kernel file's own grid (3 blocks here); 1: one block, grid-stride loop
NA_TS = [1, 5, 8, 9, 16, 17, 32, 33, 50]  # both sides of every on-chip bucket bound (8, 16, 32)


@pytest.fixture(scope="module")
def emu() -> _cuda_emu.Emulator:
    if _cuda_emu.shutil.which("c++") is None and _cuda_emu.shutil.which("g++") is None:
        pytest.skip("no host C++ compiler (c++/g++) to build the CUDA host emulation")
    return _cuda_emu.load()  # a build error fails the tests: it is a kernel that does not compile


def _needs_half(emu: _cuda_emu.Emulator, dtype: torch.dtype) -> None:
    if dtype in (torch.float16, torch.bfloat16) and not emu.real_half:
        pytest.skip("CUDA headers (cuda_fp16.h/cuda_bf16.h) not found: set CUDA_HOME to test float16/bfloat16")


def _inputs(T: int, dtype: torch.dtype, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixed firing rates, plus neurons whose u lands exactly on the threshold (H(0), phi(0))."""
    c = make_input(T, (N,), seed=seed)
    c[:, 0] = 1.0  # u[0] == threshold, then a spike at every step
    c[0, 1] = 1.0  # one spike exactly at the threshold, then silence
    c[1:, 1] = 0.0
    return c.to(dtype), make_grad(c, seed=seed + 1).to(dtype)


def _assert_same_bits(got: torch.Tensor, want: torch.Tensor, what: str) -> None:
    assert got.shape == want.shape and got.dtype == want.dtype, what
    a, b = got.view(BITS[got.dtype]), want.view(BITS[want.dtype])
    diff = (a != b).nonzero()
    assert diff.numel() == 0, (f"{what}: {diff.shape[0]} of {a.numel()} elements differ, first at "
                               f"{tuple(diff[0].tolist())}: emulated {got[tuple(diff[0])].item()!r} vs CPU "
                               f"{want[tuple(diff[0])].item()!r}")


def _cpu_forward(c: torch.Tensor, p: dict) -> torch.Tensor:
    return torch.ops.na_cuda.lif_forward(c, p["tau_m"], p["tau_s"], p["threshold"], p["strict_threshold"], p["output"])


def _check_backward(emu: _cuda_emu.Emulator, case: dict, T: int, dtype: torch.dtype) -> None:
    p = params(**case)
    c, g = _inputs(T, dtype, seed=T)
    want = native_backward(p["method"], g, c, p)
    for cap in GRID_CAPS:
        emu.set_max_blocks(cap)
        got = emu.backward(p["method"], g, c, p)
        emu.check_guards()
        assert emu.bad_launches == 0
        assert emu.blocks_run == (cap or 3)
        _assert_same_bits(got, want, f"{case_id(case)} T={T} {dtype} grid cap {cap}")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("T", [1, 5, 33])
def test_forward(emu, T, dtype):
    _needs_half(emu, dtype)
    c, _ = _inputs(T, dtype, seed=T)
    for output in ("psc", "spike"):
        for strict in (False, True):
            p = params(output=output, strict_threshold=strict)
            want = _cpu_forward(c, p)
            for cap in GRID_CAPS:
                emu.set_max_blocks(cap)
                got = emu.forward(c, p)
                emu.check_guards()
                _assert_same_bits(got, want, f"forward {output} strict={strict} T={T} {dtype} grid cap {cap}")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("T", NA_TS)
def test_na_backward(emu, T, dtype):
    _needs_half(emu, dtype)
    for case in METHOD_CASES:
        if case["method"] == "na":
            _check_backward(emu, case, T, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("T", [1, 5, 20])
def test_stbp_tssl_backward(emu, T, dtype):
    _needs_half(emu, dtype)
    for case in METHOD_CASES:
        if case["method"] != "na":
            _check_backward(emu, case, T, dtype)


def test_na_workspace_only_past_the_on_chip_buckets(emu):
    """NA keeps its state in registers up to T = 32 (no workspace), one [T, N] plane above."""
    for dt in range(4):
        assert [emu.lib.na_emu_workspace_planes(1, dt, T) for T in (1, 8, 32, 33, 1000)] == [0, 0, 0, 1, 1]


def test_launch_shapes(emu):
    """N = 0 launches nothing; N = 1 one block; no launch exceeds the GPU's grid/block limits."""
    p = params()
    emu.set_max_blocks(0)
    for n in (0, 1, 257):
        c = make_input(3, (n,), dtype=torch.float32)
        emu.forward(c, p)
        emu.backward("na", c, c, p)
        emu.check_guards()
    assert emu.bad_launches == 0
    assert emu.blocks_run == 2 * (0 + 1 + 2)
