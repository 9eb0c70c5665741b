"""The CUDA kernels, run on the host (tests/_cuda_emu.py), equal the native CPU op bit for bit.

csrc/cuda/lif_kernels.cu is compiled with the host C++ compiler against a shim (tests/cuda_emu/shim) whose
launchers run the grid as a loop, so every kernel and launch decision runs without a GPU; both builds contract no
a*b+c, so the results are identical, not close (docs/development.md, "Tests"). Not shown here: the GPU's own expf
and speed (scripts/gpu_check.sh). Outputs and workspaces start as NaN with a guard past their end; N = 600 is two
full blocks of 256 and a partial one, and a grid capped at one block sends every thread through the grid-stride
loop."""

from __future__ import annotations

import itertools
import math

import _cuda_emu
import pytest
import torch

import na_cuda

pytestmark = pytest.mark.skipif(not na_cuda.backends()["native_loaded"], reason="na_cuda._C is not built")

N = 600
DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]
BITS = {torch.float64: torch.int64, torch.float32: torch.int32, torch.float16: torch.int16, torch.bfloat16: torch.int16}
GRID_CAPS = [0, 1]  # 0: the kernel file's own grid (3 blocks here); 1: one block, grid-stride loop
NA_TS = [1, 5, 8, 9, 16, 17, 32, 33, 50]  # both sides of every on-chip bucket bound (8, 16, 32)
OPS = torch.ops.na_cuda

# Neurons in the ops' argument order (tau_m, tau_s, threshold, v_reset, decay_input, strict, output): the paper's,
# strict firing, spike output, and the options (hard reset to v_reset != 0 with decay_input, soft reset, IF).
NEURONS = {
    "paper": (5.0, 2.0, 1.0, 0.0, False, False, "psc"),
    "strict-spike": (5.0, 2.0, 1.0, 0.0, False, True, "spike"),
    "vreset-decay": (3.0, 2.0, 1.0, -0.3, True, False, "psc"),
    "soft": (4.0, 2.0, 1.0, None, False, False, "psc"),
    "soft-if-spike": (math.inf, 3.0, 1.0, None, False, True, "spike"),
    "if-vreset": (math.inf, 2.0, 0.8, 0.2, False, False, "psc"),
}
RULES = {
    "na": [(f, k, 10.0, None) for f in ("paper", "taylor") for k in (1, 3)],  # na_window None: exact
    "stbp": [
        (s, a, d)
        for s, a in (("rect", 1.0), ("triangle", 1.0), ("sigmoid", 4.0), ("atan", 2.0), ("fast_sigmoid", 25.0))
        for d in (True, False)
    ],
    "tssl": [()],
}


def _supported(rule: str, neuron: tuple) -> bool:
    return rule != "tssl" or (neuron[3] is not None and neuron[6] == "psc")  # TSSL-BP: PSC output, hard reset


@pytest.fixture(scope="module")
def emu() -> _cuda_emu.Emulator:
    if _cuda_emu.shutil.which("c++") is None and _cuda_emu.shutil.which("g++") is None:
        pytest.skip("no host C++ compiler (c++/g++) to build the CUDA host emulation")
    return _cuda_emu.load()  # a build error fails the tests: it is a kernel that does not compile


def _needs_half(emu: _cuda_emu.Emulator, dtype: torch.dtype) -> None:
    if dtype in (torch.float16, torch.bfloat16) and not emu.real_half:
        pytest.skip("CUDA headers (cuda_fp16.h/cuda_bf16.h) not found: set CUDA_HOME to test float16/bfloat16")


def _inputs(T: int, dtype: torch.dtype, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixed firing rates (silent to bursting, some inhibition), plus neurons whose u lands exactly on the
    threshold of the paper's neuron (H(0), phi(0))."""
    g = torch.Generator().manual_seed(seed)
    rate = torch.rand(N, generator=g, dtype=torch.float64) * 1.8
    c = rate * torch.rand(T, N, generator=g, dtype=torch.float64) * 1.2
    c = c - 0.3 * torch.rand(T, N, generator=g, dtype=torch.float64) * (torch.rand(N, generator=g) < 0.3)
    c[:, 0] = 1.0  # u[0] == threshold, then a spike at every step
    c[0, 1] = 1.0  # one spike exactly at the threshold, then silence
    c[1:, 1] = 0.0
    grad = torch.randn(T, N, generator=g, dtype=torch.float64)
    return c.to(dtype), grad.to(dtype)


def _assert_same_bits(got: torch.Tensor, want: torch.Tensor, what: str) -> None:
    assert got.shape == want.shape and got.dtype == want.dtype, what
    a, b = got.view(BITS[got.dtype]), want.view(BITS[want.dtype])
    diff = (a != b).nonzero()
    assert diff.numel() == 0, (
        f"{what}: {diff.shape[0]} of {a.numel()} elements differ, first at "
        f"{tuple(diff[0].tolist())}: emulated {got[tuple(diff[0])].item()!r} vs CPU "
        f"{want[tuple(diff[0])].item()!r}"
    )


def _non_finite(c: torch.Tensor, g: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``c`` and ``g`` with NaN/+-inf in a few neurons' input and others' gradient (docs/algorithm.md §10)."""
    c, g = c.clone(), g.clone()
    gen = torch.Generator().manual_seed(seed)
    T = c.shape[0]
    for x in (c, g):
        for j, v in enumerate((math.inf, -math.inf, math.nan) * 8):
            x[torch.randint(T, (1,), generator=gen).item(), 3 + 7 * j + (x is g)] = v
    return c, g


def _sparse_inputs(T: int, dtype: torch.dtype, seed: int, dense: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs drawn for about 3 % (or, `dense`, 15 %) firing of the paper's neuron, a third of the neurons with
    inhibition too: the long neighbour runs that NA's exit rules (docs/algorithm.md §3.7) end early."""
    g = torch.Generator().manual_seed(seed)
    level = (0.29 + 0.08 * torch.rand(N, generator=g, dtype=torch.float64)) * (1.9 if dense else 1.0)
    c = level * torch.rand(T, N, generator=g, dtype=torch.float64)
    c = c - 0.2 * torch.rand(T, N, generator=g, dtype=torch.float64) * (torch.rand(N, generator=g) < 0.3)
    return c.to(dtype), torch.randn(T, N, generator=g, dtype=torch.float64).to(dtype)


def _check_backward(
    emu: _cuda_emu.Emulator,
    rule: str,
    T: int,
    dtype: torch.dtype,
    non_finite: bool = False,
    inputs: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> None:
    c, g = _inputs(T, dtype, seed=T) if inputs is None else inputs
    if non_finite:
        c, g = _non_finite(c, g, seed=T)
    for (name, neuron), args in itertools.product(NEURONS.items(), RULES[rule]):
        if not _supported(rule, neuron):
            continue
        want, _ = getattr(OPS, f"{rule}_backward")(g, c, *neuron, *args)
        for cap in GRID_CAPS:
            emu.set_max_blocks(cap)
            got = emu.backward(rule, g, c, neuron, args)
            emu.check_guards()
            assert emu.bad_launches == 0
            assert emu.blocks_run == (cap or 3)
            _assert_same_bits(got, want, f"{rule}{args} {name} T={T} {dtype} grid cap {cap}")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("T", [1, 5, 33])
def test_forward(emu, T, dtype):
    _needs_half(emu, dtype)
    c, _ = _inputs(T, dtype, seed=T)
    for name, neuron in NEURONS.items():
        want = OPS.lif_forward(c, *neuron)
        for cap in GRID_CAPS:
            emu.set_max_blocks(cap)
            got = emu.forward(c, neuron)
            emu.check_guards()
            _assert_same_bits(got, want, f"forward {name} T={T} {dtype} grid cap {cap}")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("T", NA_TS)
def test_na_backward(emu, T, dtype):
    _needs_half(emu, dtype)
    _check_backward(emu, "na", T, dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("dense", [False, True], ids=["3%", "15%"])
@pytest.mark.parametrize("T", [31, 300])
def test_na_backward_long_windows(emu, T, dense, dtype):
    """Sparse and dense firing over long windows (on chip and the workspace path with its Q plane)."""
    _check_backward(emu, "na", T, dtype, inputs=_sparse_inputs(T, dtype, seed=T + dense, dense=dense))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("T", [5, 31, 300])
def test_na_window(emu, T, dtype):
    """na_window (docs/algorithm.md §3.8) on chip (T <= 32) and on the workspace path, every neuron and reset."""
    c, g = _sparse_inputs(T, dtype, seed=T + 7, dense=False)
    for (name, neuron), window in itertools.product(NEURONS.items(), (1, 3, 8, 30)):
        args = ("paper", 3, 10.0, window)
        want, _ = OPS.na_backward(g, c, *neuron, *args)
        got = emu.backward("na", g, c, neuron, args)
        emu.check_guards()
        _assert_same_bits(got, want, f"na_window={window} {name} T={T} {dtype}")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("T", [1, 5, 20])
@pytest.mark.parametrize("rule", ["stbp", "tssl"])
def test_stbp_tssl_backward(emu, rule, T, dtype):
    _needs_half(emu, dtype)
    _check_backward(emu, rule, T, dtype)


# snnTorch's resets after the leak (docs/algorithm.md §11) and the membrane output, with and without a learnable decay
# (§12): (neuron args + reset_mechanism, rules). The CUDA path re-simulates the original in NA's runs (the CPU packs
# read u back), so this is the only check of that code under the new reset.
AFTER_NEURONS = {
    "subtract-strict-spike": (5.0, 2.0, 1.0, None, False, True, "spike", "subtract"),
    "subtract-decay-psc": (3.0, 2.0, 0.9, None, True, False, "psc", "subtract"),
    "none-spike": (4.0, 2.0, 1.0, None, False, False, "spike", "none"),
    "subtract-membrane": (4.0, 2.0, 1.0, None, False, True, "membrane", "subtract"),
    "hard-membrane": (4.0, 2.0, 1.0, -0.2, True, False, "membrane", None),
}


@pytest.mark.parametrize("learn", [False, True], ids=["fixed", "decay"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("T", [1, 5, 9, 17, 33])
def test_after_leak_and_decay(emu, T, dtype, learn):
    c, g = _inputs(T, dtype, seed=T + 100)
    decay = torch.linspace(0.05, 1.0, N, dtype=dtype) if learn else None
    for name, neuron in itertools.chain(AFTER_NEURONS.items(), NEURONS.items() if learn else ()):
        mech = neuron[7] if len(neuron) > 7 else None
        want = OPS.lif_forward(c, *neuron[:7], decay, mech)
        for rule, args in (("na", RULES["na"][1]), ("stbp", RULES["stbp"][6]), ("tssl", ())):
            if rule == "tssl" and not (_supported(rule, neuron) and mech is None):
                continue
            if rule == "na" and neuron[6] == "membrane":
                continue
            if learn and math.isinf(neuron[0]) and neuron[4]:
                continue
            gwant, dwant = getattr(OPS, f"{rule}_backward")(g, c, *neuron[:7], *args, decay, mech)
            for cap in GRID_CAPS:
                emu.set_max_blocks(cap)
                what = f"{rule} {name} T={T} {dtype} cap {cap} decay={learn}"
                _assert_same_bits(emu.forward(c, neuron, decay), want, "forward " + what)
                got = emu.backward(rule, g, c, neuron, args, decay)
                if learn:
                    got, dgot = got
                    _assert_same_bits(dgot, dwant, "dL/dlam " + what)
                emu.check_guards()
                _assert_same_bits(got, gwant, what)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("T", [5, 33])
@pytest.mark.parametrize("rule", ["na", "stbp", "tssl"])
def test_non_finite_backward(emu, rule, T, dtype):
    """The non-finite semantics of §10 are in csrc/core, so the CUDA kernels give the CPU op's bits (NaN included)."""
    _check_backward(emu, rule, T, dtype, non_finite=True)


def test_workspace_planes(emu):
    """NA keeps its state in registers up to T = 32 (no workspace), two [T, N] planes above (u/X and the merge
    flags Q of docs/algorithm.md §3.7); STBP's u and TSSL's
    u live in the gradient output where the storage type is the compute type."""
    for dt in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        assert [emu.workspace_planes("na", dt, T) for T in (1, 8, 32, 33, 1000)] == [0, 0, 0, 2, 2]
        alias = dt in (torch.float32, torch.float64)
        assert emu.workspace_planes("stbp", dt, 5) == (0 if alias else 1)
        assert emu.workspace_planes("tssl", dt, 5) == (1 if alias else 2)


def test_launch_shapes(emu):
    """N = 0 launches nothing; N = 1 one block; no launch exceeds the GPU's grid/block limits."""
    neuron = NEURONS["paper"]
    emu.set_max_blocks(0)
    for n in (0, 1, 257):
        c = torch.rand(3, n)
        emu.forward(c, neuron)
        emu.backward("na", c, c, neuron, RULES["na"][0])
        emu.check_guards()
    assert emu.bad_launches == 0
    assert emu.blocks_run == 2 * (0 + 1 + 2)
