"""TSSL-BP's CPU gradients bit for bit against golden SHA-256 hashes (tests/golden/tssl_bits.json), and those of
STBP's exp-based surrogates, which share TSSL-BP's AVX2 vector expf.

The hashes were made with the build before the issue 23 speed work on the TSSL-BP backward (csrc/core/rules/tssl.h,
the vector exp of csrc/cpu/lanes_cpu.h), so they pin that the faster kernel gives the very same bits: the input
gradient (and dL/d decay where the decay is learnable) over T, dtypes, neuron options, firing rates, sizes that
are not whole packs, and non-finite inputs. Every CPU instruction set the build has is checked (a child process
per forced NA_CUDA_CPU_ISA). Regenerate (only with a build whose bits are the reference):

    python tests/test_tssl_bits.py --write
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import assert_golden_bits_under_isa, sha256_of, write_golden_bits

import na_cuda
from na_cuda import _backend

GOLDEN = Path(__file__).parent / "golden" / "tssl_bits.json"
TS = (1, 2, 5, 8, 9, 20, 33, 64)
DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16}


def configs() -> list[dict[str, Any]]:
    """The cases: each T and float type with the default neuron at both rates and the options at one."""
    out: list[dict[str, Any]] = []
    for T in TS:
        for dtype in ("float32", "float64"):
            base = dict(T=T, dtype=dtype, shape=[203], decay_input=False, learn=False, nonfinite=False, tau_m=5.0)
            out += [
                {**base, "rate": 0.03},
                {**base, "rate": 0.15},
                {**base, "rate": 0.15, "decay_input": True, "shape": [3, 37]},
                {**base, "rate": 0.15, "learn": True, "shape": [3, 37]},
                {**base, "rate": 0.03, "learn": True, "decay_input": True, "shape": [61]},
            ]
            if T in (5, 20, 33):
                out.append({**base, "rate": 0.15, "nonfinite": True, "shape": [45]})
                out.append({**base, "rate": 0.15, "nonfinite": True, "learn": True, "shape": [45]})
    for T in (5, 20):
        base = dict(T=T, shape=[203], decay_input=False, learn=False, nonfinite=False, rate=0.15)
        out.append({**base, "dtype": "bfloat16", "tau_m": 5.0})
        out.append({**base, "dtype": "float32", "tau_m": 2.5, "decay_input": True})
        # STBP's exp-based surrogates share the vector expf of the AVX2 packs
        for sur in ("sigmoid", "erf", "piecewise_exp", "q_pseudo_spike"):
            out.append({**base, "dtype": "float32", "tau_m": 5.0, "nonfinite": T == 20, "surrogate": sur})
    return out


def name(cfg: dict[str, Any]) -> str:
    """A readable key of a case."""
    flags = [k for k in ("decay_input", "learn", "nonfinite") if cfg[k]]
    shape = "x".join(map(str, cfg["shape"]))
    rule = f"stbp_{cfg['surrogate']}_" if "surrogate" in cfg else ""
    key = f"{rule}T{cfg['T']}_{cfg['dtype']}_r{cfg['rate']}_m{cfg['tau_m']}_n{shape}"
    return key + "".join("_" + f for f in flags)


def hashes(cfg: dict[str, Any], a: float) -> dict[str, str]:
    """SHA-256 of the case's input gradient (and decay gradient) bytes."""
    T, shape, dtype = cfg["T"], cfg["shape"], DTYPES[cfg["dtype"]]
    g = torch.Generator().manual_seed(1000 + T)
    c = (torch.rand(T, *shape, generator=g, dtype=torch.float64) * a).to(dtype)
    grad = torch.randn(T, *shape, generator=g, dtype=torch.float64).to(dtype)
    if cfg["nonfinite"]:
        flat_c, flat_g = c.view(-1), grad.view(-1)
        n = flat_c.numel()
        flat_c[n // 3] = float("nan")
        flat_c[n // 2] = float("inf")
        flat_c[(2 * n) // 3] = float("-inf")
        flat_g[n // 4] = float("nan")
        flat_g[n - 1] = float("inf")
    x = c.requires_grad_(True)
    kw: dict[str, Any] = {}
    decay = None
    if cfg["learn"]:
        decay = (0.6 + 0.35 * torch.rand(*shape, generator=g, dtype=torch.float64)).to(dtype).requires_grad_(True)
        kw["decay"] = decay
    if "surrogate" in cfg:
        kw.update(method="stbp", surrogate=cfg["surrogate"])
    else:
        kw["method"] = "tssl"
    out = na_cuda.lif(x, output="psc", backend="native", tau_m=cfg["tau_m"], decay_input=cfg["decay_input"], **kw)
    out.backward(grad)
    assert x.grad is not None
    res = {"grad_c": sha256_of(x.grad)}
    if decay is not None:
        assert decay.grad is not None
        res["grad_decay"] = sha256_of(decay.grad)
    return res


def compute_all(levels: dict[str, float]) -> dict[str, dict[str, str]]:
    """Every case's hashes at the recorded input levels."""
    torch.set_num_threads(1)
    return {name(cfg): hashes(cfg, levels[f"{cfg['rate']}_{cfg['T']}"]) for cfg in configs()}


def write() -> None:
    """Record the golden hashes with this interpreter's build."""
    write_golden_bits(
        GOLDEN,
        "SHA-256 of TSSL-BP (and STBP) CPU gradients (tests/test_tssl_bits.py), by the build at `commit`",
        TS,
        compute_all,
    )


def _golden() -> dict[str, Any]:
    return json.loads(GOLDEN.read_text())


def test_configs_match_golden() -> None:
    """The golden file covers exactly the cases of configs()."""
    assert sorted(_golden()["hashes"]) == sorted(name(cfg) for cfg in configs())


@pytest.mark.parametrize("isa", _backend.cpu_isas())
def test_tssl_gradients_bit_identical(isa: str) -> None:
    """Every case's gradient hashes, in a child process that forces the instruction set."""
    assert_golden_bits_under_isa("test_tssl_bits", isa, _golden()["hashes"])


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write()
    else:
        sys.exit(pytest.main([__file__, "-q"]))
