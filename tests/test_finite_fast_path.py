"""The CPU's guard-free STBP and TSSL-BP loops (csrc/cpu/isa.h, `finite`): a block of 64 neurons whose c, G and
leak are all finite skips the §10 masks (docs/algorithm.md §10). Proof that the skip changes no bit: a non-finite
value in one neuron sends its whole block through the guarded loops, and every other neuron of that block must keep
the bits it had on the fast path; the neuron itself follows §10. A leak outside [0, 1] is clamped by the kernels
(§12), so a finite c keeps beta c finite on either path."""

from __future__ import annotations

import pytest
import torch
from helpers import make_grad, make_input, needs_native

import na_cuda

pytestmark = needs_native

N = 3 * 64 + 5  # three full blocks and a partial one; neuron 67 is in block 1 with 63 neighbours
VICTIM, NEIGHBOUR = 67, 100  # both in block 1


def _bits(x: torch.Tensor) -> torch.Tensor:
    return x.detach().to(torch.float64).view(torch.int64)


def _neuron(reset: str, output: str, decay_input: bool) -> na_cuda.LifParams:
    kw: dict = {"output": output, "decay_input": decay_input}
    if reset == "soft":
        kw["v_reset"] = None
    elif reset in ("subtract", "none"):
        kw.update(v_reset=None, reset_mechanism=reset)
    return na_cuda.LifParams(**kw)


def _backward(c, g, neuron, rule, decay=None):
    out = rule.native_backward(g, c, neuron, decay)
    return out if decay is not None else (out, None)


def _inputs(T: int, dtype: torch.dtype, seed: int):
    c = make_input(T, (N,), dtype=torch.float64, seed=seed).to(dtype)
    return c, make_grad(c, seed=seed + 1)


CASES = [
    (reset, output, decay_input, learn)
    for reset in ("hard", "soft", "subtract", "none")
    for output in ("psc", "spike", "membrane")
    for decay_input in (False, True)
    for learn in (False, True)
    if not (output == "membrane" and reset == "soft" and learn)  # keep the grid small: one combination less
]


# where the non-finite value goes: c or G for every case, the leak only where it is learnable
PLACED = [(w, *case) for case in CASES[::3] for w in ("c", "G", "lam") if w != "lam" or case[3]]


# TSSL-BP: a reset to rest and the PSC output only
TSSL_PLACED = [
    (w, "hard", "psc", di, learn)
    for di in (False, True)
    for learn in (False, True)
    for w in ("c", "G", "lam")
    if w != "lam" or learn
]


@pytest.mark.parametrize("T", [1, 5, 20])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("where,reset,output,decay_input,learn", PLACED)
def test_a_non_finite_neighbour_changes_no_bit(T, dtype, where, reset, output, decay_input, learn):
    _check_neighbour(na_cuda.STBP(), T, dtype, where, reset, output, decay_input, learn)


@pytest.mark.parametrize("T", [1, 5, 20])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("where,reset,output,decay_input,learn", TSSL_PLACED)
def test_tssl_a_non_finite_neighbour_changes_no_bit(T, dtype, where, reset, output, decay_input, learn):
    _check_neighbour(na_cuda.TSSL(), T, dtype, where, reset, output, decay_input, learn)


def _check_neighbour(rule, T, dtype, where, reset, output, decay_input, learn):
    neuron = _neuron(reset, output, decay_input)
    c, g = _inputs(T, dtype, seed=T)
    decay = torch.full((N,), 0.8, dtype=dtype) if learn else None
    fast_c, fast_d = _backward(c, g, neuron, rule, decay)

    c2, g2 = c.clone(), g.clone()
    d2 = None if decay is None else decay.clone()
    t0 = T // 2
    if where == "c":
        c2[t0, VICTIM] = float("nan")
    elif where == "G":
        g2[t0, VICTIM] = float("inf")
    else:
        d2[VICTIM] = float("nan")
    slow_c, slow_d = _backward(c2, g2, neuron, rule, d2)

    others = torch.ones(N, dtype=torch.bool)
    others[VICTIM] = False
    assert torch.equal(_bits(slow_c[:, others]), _bits(fast_c[:, others]))
    if learn:
        assert torch.equal(_bits(slow_d[others]), _bits(fast_d[others]))
    # the victim follows §10: NaN up to t0 for a G, at every step otherwise
    nan_steps = slice(0, t0 + 1) if where == "G" else slice(None)
    assert torch.isnan(slow_c[nan_steps, VICTIM]).all()
    if where == "G":
        assert torch.equal(_bits(slow_c[t0 + 1 :, VICTIM]), _bits(fast_c[t0 + 1 :, VICTIM]))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_storage_takes_the_same_path(dtype):
    """Half and bfloat16 are converted and tested in lif_cpu.cpp, not by the instruction set's copies."""
    neuron, rule = _neuron("hard", "psc", False), na_cuda.STBP()
    c, g = _inputs(8, dtype, seed=3)
    fast, _ = _backward(c, g, neuron, rule)
    c2 = c.clone()
    c2[2, VICTIM] = float("-inf")
    slow, _ = _backward(c2, g, neuron, rule)
    others = torch.arange(N) != VICTIM
    assert torch.equal(_bits(slow[:, others]), _bits(fast[:, others]))
    assert torch.isnan(slow[:, VICTIM]).all()


@pytest.mark.parametrize("lam", [-1.5, 2.5])
def test_a_leak_outside_0_1_is_clamped_on_either_path(lam):
    """The ops clamp a learnable leak to [0, 1] (§12), so beta = 1 - lam stays in [0, 1] and beta c finite with c:
    the neuron's gradient is that of the clamped leak, fast or guarded, and dL/dlam is torch.clamp's 0."""
    neuron, rule = _neuron("hard", "psc", True), na_cuda.STBP()
    c, g = _inputs(6, torch.float32, seed=5)
    c[3, VICTIM] = 3e38  # finite; beta c would overflow to inf if |beta| > 1 reached the loops
    decay = torch.full((N,), 0.8)
    decay[VICTIM] = lam
    alone_c, alone_d = _backward(c, g, neuron, rule, decay)
    clamped_c, _ = _backward(c, g, neuron, rule, decay.clamp(0.0, 1.0))
    c2 = c.clone()
    c2[0, NEIGHBOUR] = float("nan")  # the block runs guarded
    forced_c, forced_d = _backward(c2, g, neuron, rule, decay)
    assert torch.equal(_bits(alone_c[:, VICTIM]), _bits(clamped_c[:, VICTIM]))
    assert torch.equal(_bits(alone_c[:, VICTIM]), _bits(forced_c[:, VICTIM]))
    assert alone_c[:, VICTIM].isfinite().all()
    assert alone_d[VICTIM] == 0 and forced_d[VICTIM] == 0


def test_partial_last_block():
    """The partial block (5 neurons, zero-padded lanes) goes fast or guarded as a whole block does."""
    neuron, rule = _neuron("soft", "spike", False), na_cuda.STBP()
    c, g = _inputs(9, torch.float32, seed=7)
    fast, _ = _backward(c, g, neuron, rule)
    g2 = g.clone()
    g2[8, N - 1] = float("nan")
    slow, _ = _backward(c, g2, neuron, rule)
    assert torch.equal(_bits(slow[:, : N - 1]), _bits(fast[:, : N - 1]))
    assert torch.isnan(slow[:, N - 1]).all()
