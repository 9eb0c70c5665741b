"""Shared test helpers: devices, random LIF inputs, and the native/reference callers (via the rule objects)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import na_cuda
from na_cuda.surrogates import SURROGATES

#: The repository root (the ``tests`` package and the scripts) and the directory the imported ``na_cuda`` comes from
#: (the same for a source tree; site-packages when the suite runs against an installed wheel,
#: scripts/installed_tests.sh).
ROOT = Path(__file__).resolve().parents[1]
PACKAGE_PARENT = Path(na_cuda.__file__).resolve().parents[1]


def subprocess_pythonpath() -> str:
    """PYTHONPATH for a test's subprocess: the imported package's directory first (a subprocess imports the same
    na_cuda as this process, never the source tree's in place of an installed wheel), then the repository root,
    then the caller's PYTHONPATH."""
    paths = dict.fromkeys([str(PACKAGE_PARENT), str(ROOT)])
    return os.pathsep.join([*paths, os.environ.get("PYTHONPATH", "")])


# A CUDA test runs only where a GPU and the CUDA kernels exist; elsewhere it is skipped with the reason.
_CUDA_REASON = None
if not torch.cuda.is_available():
    _CUDA_REASON = "no CUDA GPU on this machine"
elif not na_cuda.backends()["cuda"]:
    _CUDA_REASON = "na_cuda was built without CUDA kernels"

DEVICES = [
    "cpu",
    pytest.param(
        "cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(_CUDA_REASON is not None, reason=str(_CUDA_REASON))]
    ),
]

needs_native = pytest.mark.skipif(not na_cuda.backends()["native_loaded"], reason="na_cuda._C is not built")


def make_input(T: int, shape=(64,), *, dtype=torch.float64, device="cpu", seed=0, scale=0.9) -> torch.Tensor:
    """Synaptic input that makes neurons fire at mixed rates (some silent, some bursting), with negative inputs
    (inhibition) too."""
    g = torch.Generator().manual_seed(seed)
    n = 1
    for s in shape:
        n *= s
    rate = torch.rand(n, generator=g) * 2 * scale  # per-neuron mean drive in [0, 1.8] * threshold
    c = rate * torch.rand(T, n, generator=g, dtype=torch.float64) * 1.2
    c = c - 0.3 * torch.rand(T, n, generator=g, dtype=torch.float64) * (torch.rand(n, generator=g) < 0.3)
    return c.reshape(T, *shape).to(dtype=dtype, device=device)


def make_grad(c: torch.Tensor, seed=1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(c.shape, generator=g, dtype=torch.float64).to(dtype=c.dtype, device=c.device)


def _objects(p: dict):
    """The `LifParams` and rule object of the keyword dict `p` (from `params()`)."""
    neuron, rule, _ = na_cuda._validate.build(**p)
    return neuron, rule


def native_forward(c: torch.Tensor, p: dict) -> torch.Tensor:
    """The native forward of `p`'s rule op (``na_cuda::lif_<method>``) through the rule object."""
    neuron, rule = _objects(p)
    return rule.native(c, neuron)


def native_backward(method: str, grad: torch.Tensor, c: torch.Tensor, p: dict) -> torch.Tensor:
    """The native backward op of `method` called directly (the rule object's op call)."""
    neuron, rule = _objects({**p, "method": method})
    return rule.native_backward(grad, c, neuron)


def reference_backward(method: str, grad: torch.Tensor, c: torch.Tensor, p: dict) -> torch.Tensor:
    """The reference gradient of `method` (autograd through the surrogate forward for STBP)."""
    neuron, rule = _objects({**p, "method": method})
    return na_cuda.reference.rule_backward(rule, grad, c, neuron)


def params(**kw) -> dict:
    """Validated neuron parameters with the package defaults, overridden by `kw`."""
    base = dict(
        tau_m=5.0,
        tau_s=2.0,
        threshold=1.0,
        output="psc",
        method="na",
        first_order="paper",
        dist_power=3,
        clip=10.0,
        surrogate="rect",
        surrogate_alpha=None,
        detach_reset=True,
        backend="auto",
    )
    base.update(kw)
    return na_cuda._validate.neuron_params(**base)


_NEURON_OPTIONS = (
    dict(v_reset=-0.5, threshold=0.8),
    dict(v_reset=0.3, decay_input=True, tau_m=2.0),
    dict(v_reset=None),
    dict(v_reset=None, decay_input=True, tau_m=3.0),
    dict(tau_m=float("inf")),
    dict(tau_m=1.0, v_reset=None),
)

_FIRST_SURROGATES = ("rect", "triangle", "sigmoid", "atan", "fast_sigmoid")
# Every backward configuration the native kernels implement.
METHOD_CASES = (
    [
        dict(method="na", output=o, first_order=f, dist_power=k)
        for o in ("psc", "spike")
        for f in ("paper", "taylor")
        for k in (1, 3)
    ]
    + [
        dict(method="stbp", output=o, surrogate=s, detach_reset=d)
        for o in ("psc", "spike")
        for s in _FIRST_SURROGATES
        for d in (True, False)
    ]
    # every other surrogate of the table (na_cuda/surrogates.py), under a hard and a soft reset
    + [
        dict(method="stbp", output=o, surrogate=s, detach_reset=d, v_reset=r)
        for s in SURROGATES
        if s not in _FIRST_SURROGATES
        for o, d, r in (("spike", False, 0.0), ("psc", True, None))
    ]
    + [dict(method="tssl", output="psc")]
    # the neuron options (docs/algorithm.md §9) under every rule: hard reset to v_reset != 0, soft reset, decay_input,
    # the IF neuron (tau_m = inf) and tau_m = 1 (no memory). Kept before the strict block: tests index this tuple.
    + [
        dict(method=m, output="psc", **opt)
        for m in ("na", "stbp", "tssl")
        for opt in _NEURON_OPTIONS
        if not (m == "tssl" and opt.get("v_reset", 0.0) is None)
    ]
    + [
        dict(method="stbp", output="psc", surrogate=s, detach_reset=False, v_reset=None)
        for s in ("atan", "fast_sigmoid")
    ]
    # strict firing (u > threshold, the released code) under every rule
    + [
        dict(method="na", output="psc", first_order="paper", dist_power=3, strict_threshold=True),
        dict(method="stbp", output="psc", surrogate="rect", detach_reset=True, strict_threshold=True),
        dict(method="tssl", output="psc", strict_threshold=True),
    ]
)


def case_id(case: dict) -> str:
    return "-".join(str(v) for v in case.values())


#: The resets of docs/algorithm.md §9 and §11 as keywords of ``na_cuda.lif``.
RESETS = {
    "hard": dict(v_reset=0.0),
    "hard-0.3": dict(v_reset=-0.3),
    "soft": dict(v_reset=None),
    "subtract": dict(v_reset=None, reset_mechanism="subtract"),
    "none": dict(v_reset=None, reset_mechanism="none"),
}


def sha256_of(t: torch.Tensor) -> str:
    """SHA-256 of a tensor's bytes (any dtype, bfloat16 included): the golden-bits tests' fingerprint."""
    import hashlib

    return hashlib.sha256(t.contiguous().view(torch.uint8).numpy().tobytes()).hexdigest()


def write_golden_bits(path, about: str, Ts, compute_all) -> None:
    """Record a golden-bits file (tests/test_na_bits.py, test_tssl_bits.py): the benchmarks' input level per
    (rate, T), the build's commit, and ``compute_all(levels)``'s hashes."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    import na_cuda

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from sections.common import rate_level  # the benchmarks' level for a firing rate

    levels = {f"{r}_{T}": rate_level(r, T) for r in (0.03, 0.15) for T in Ts}
    data = {
        "about": about,
        "commit": subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(na_cuda.__file__).parent, capture_output=True, text=True
        ).stdout.strip(),
        "levels": levels,
        "hashes": compute_all(levels),
    }
    Path(path).write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(data['hashes'])} cases to {path}")


def assert_golden_bits_under_isa(module: str, isa: str, want: dict) -> None:
    """``module``'s ``compute_all`` (a tests/ module with ``_golden()``) in a child process that forces the CPU
    instruction set ``isa``: every case's hashes must equal ``want``."""
    import json
    import subprocess
    import sys

    code = (
        f"import json, sys; sys.path.insert(0, sys.argv[1]); import {module} as t, na_cuda; "
        "assert na_cuda.backends()['cpu_isa'] == sys.argv[2]; "
        "print(json.dumps(t.compute_all(t._golden()['levels'])))"
    )
    env = {**os.environ, "NA_CUDA_CPU_ISA": isa}
    proc = subprocess.run(
        [sys.executable, "-c", code, str(Path(__file__).parent), isa], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    bad = sorted(k for k in want if got.get(k) != want[k])
    assert not bad, f"{len(bad)} of {len(want)} cases differ under {isa}: {bad[:10]}"
