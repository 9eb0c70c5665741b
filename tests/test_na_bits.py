"""NA's CPU gradients bit for bit against golden SHA-256 hashes (tests/golden/na_bits.json).

The hashes were made with the build before the issue 23 speed work on the NA backward (csrc/core/rules/na.h, the
CPU block kernels of csrc/cpu), so they pin that the faster kernel gives the very same bits: the input gradient
(and dL/d decay where the decay is learnable) over T, dtypes, firing rates, every reset, first_order, dist_power,
clip, strict_threshold, output spike/psc, decay_input, v_reset, na_window, sizes that are not whole packs, and
non-finite inputs. Every CPU instruction set the build has is checked (a child process per forced
NA_CUDA_CPU_ISA). Regenerate (only with a build whose bits are the reference):

    python tests/test_na_bits.py --write
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

GOLDEN = Path(__file__).parent / "golden" / "na_bits.json"
TS = (1, 2, 5, 8, 9, 20, 33, 64)
DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16}

# The neuron and rule options of a case besides the defaults (tau_m 5, hard reset to 0, "paper", dist_power 3,
# clip 10, psc output, no window).
OPTIONS: dict[str, dict[str, Any]] = {
    "default": {},
    "soft": {"v_reset": None},
    "subtract": {"v_reset": None, "reset_mechanism": "subtract"},
    "none": {"v_reset": None, "reset_mechanism": "none"},
    "taylor": {"first_order": "taylor"},
    "k1_clip2": {"dist_power": 1, "clip": 2.0},
    "strict": {"strict_threshold": True, "tau_m": float("inf")},  # TIES: exact threshold ties
    "ties": {"tau_m": float("inf")},
    "spike": {"output": "spike"},
    "decay_input": {"decay_input": True},
    "vreset": {"v_reset": -0.25, "threshold": 0.8},
    "window3": {"na_window": 3},
    "soft_window4": {"v_reset": None, "na_window": 4},
    "soft_taylor_spike": {"v_reset": None, "first_order": "taylor", "output": "spike"},
    "subtract_strict": {
        "v_reset": None,
        "reset_mechanism": "subtract",
        "strict_threshold": True,
        "tau_m": float("inf"),
    },
}
# the option sets whose inputs are rounded to multiples of 1/8, and lam = 1 (IF): u is exact, so u == threshold happens
TIES = ("strict", "ties", "subtract_strict")
# only at some T (configs())
EXTRA_OPTIONS: dict[str, dict[str, Any]] = {"if": {"tau_m": float("inf")}}


def configs() -> list[dict[str, Any]]:
    """The cases: each T and float type with every option set at both rates, plus learnable decay, non-finite
    inputs, bfloat16 and the IF neuron at some."""
    out: list[dict[str, Any]] = []
    for T in TS:
        for dtype in ("float32", "float64"):
            base = dict(T=T, dtype=dtype, shape=[203], learn=False, nonfinite=False, opts="default")
            for opts in OPTIONS:
                for rate in (0.03, 0.15):
                    out.append({**base, "opts": opts, "rate": rate})
            for opts in ("default", "soft", "subtract", "decay_input"):
                out.append({**base, "opts": opts, "rate": 0.15, "learn": True, "shape": [3, 37]})
            out.append({**base, "rate": 0.03, "learn": True, "opts": "decay_input", "shape": [61]})
            if T in (5, 20, 33):
                for opts in ("default", "soft", "subtract"):
                    out.append({**base, "opts": opts, "rate": 0.15, "nonfinite": True, "shape": [45]})
                    out.append({**base, "opts": opts, "rate": 0.15, "nonfinite": True, "learn": True, "shape": [45]})
    for T in (5, 20, 64):
        base = dict(T=T, shape=[203], learn=False, nonfinite=False, rate=0.15)
        out.append({**base, "dtype": "bfloat16", "opts": "default"})
        out.append({**base, "dtype": "bfloat16", "opts": "soft"})
        out.append({**base, "dtype": "float32", "opts": "default", "shape": [5]})
        out.append({**base, "dtype": "float32", "opts": "if"})
    return out


def name(cfg: dict[str, Any]) -> str:
    """A readable key of a case."""
    flags = [k for k in ("learn", "nonfinite") if cfg[k]]
    shape = "x".join(map(str, cfg["shape"]))
    key = f"T{cfg['T']}_{cfg['dtype']}_r{cfg['rate']}_{cfg['opts']}_n{shape}"
    return key + "".join("_" + f for f in flags)


def hashes(cfg: dict[str, Any], a: float) -> dict[str, str]:
    """SHA-256 of the case's input gradient (and decay gradient) bytes."""
    T, shape, dtype = cfg["T"], cfg["shape"], DTYPES[cfg["dtype"]]
    g = torch.Generator().manual_seed(2000 + T)
    c = (torch.rand(T, *shape, generator=g, dtype=torch.float64) * a).to(dtype)
    grad = torch.randn(T, *shape, generator=g, dtype=torch.float64).to(dtype)
    if cfg["opts"] in TIES:
        c = torch.round(c * 8) / 8
    if cfg["nonfinite"]:
        flat_c, flat_g = c.view(-1), grad.view(-1)
        n = flat_c.numel()
        flat_c[n // 3] = float("nan")
        flat_c[n // 2] = float("inf")
        flat_c[(2 * n) // 3] = float("-inf")
        flat_g[n // 4] = float("nan")
        flat_g[n - 1] = float("inf")
    x = c.requires_grad_(True)
    kw: dict[str, Any] = {"tau_m": 5.0, **{**OPTIONS, **EXTRA_OPTIONS}[cfg["opts"]]}
    decay = None
    if cfg["learn"]:
        decay = (0.6 + 0.35 * torch.rand(*shape, generator=g, dtype=torch.float64)).to(dtype).requires_grad_(True)
        kw["decay"] = decay
    kw.setdefault("output", "psc")
    out = na_cuda.lif(x, method="na", backend="native", **kw)
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
        GOLDEN, "SHA-256 of NA CPU gradients (tests/test_na_bits.py), by the build at `commit`", TS, compute_all
    )


def _golden() -> dict[str, Any]:
    return json.loads(GOLDEN.read_text())


def test_configs_match_golden() -> None:
    """The golden file covers exactly the cases of configs()."""
    assert sorted(_golden()["hashes"]) == sorted(name(cfg) for cfg in configs())


def test_options_change_the_gradient() -> None:
    """Every option set gives other bits than its neighbour without it at T >= 5 (a guard against options that
    silently do nothing, which would make the golden hashes pin less than they seem)."""
    h = _golden()["hashes"]
    pairs = [(o, "default") for o in OPTIONS if o not in ("default", "ties", "strict")]
    pairs += [("strict", "ties")]
    for T in (5, 20, 64):
        for a, b in pairs:
            ka, kb = (f"T{T}_float32_r0.15_{o}_n203" for o in (a, b))
            assert h[ka]["grad_c"] != h[kb]["grad_c"], (ka, kb)


@pytest.mark.parametrize("isa", _backend.cpu_isas())
def test_na_gradients_bit_identical(isa: str) -> None:
    """Every case's gradient hashes, in a child process that forces the instruction set."""
    assert_golden_bits_under_isa("test_na_bits", isa, _golden()["hashes"])


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write()
    else:
        sys.exit(pytest.main([__file__, "-q"]))
