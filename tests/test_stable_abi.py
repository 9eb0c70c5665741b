"""The compiled libraries on the LibTorch stable ABI: registration per dispatch key, runtime CPU dispatch
(AVX2 against the baseline kernels, bit for bit), NA_CUDA_CPU_ISA, the string-argument leak of the torch 2.13
headers (csrc/binding.h), and what the library reports about itself."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

import na_cuda
from na_cuda import _backend
from tests.helpers import METHOD_CASES, case_id, make_grad, make_input, native_backward, native_forward, needs_native
from tests.helpers import params as mk_params

OPS = ("lif_forward", "lif_na", "lif_stbp", "lif_tssl", "na_backward", "stbp_backward", "tssl_backward")


@needs_native
def test_every_op_has_cpu_and_meta_kernels_and_cuda_where_loaded():
    keys = ["CPU", "Meta"] + (["CUDA"] if na_cuda.backends()["cuda"] else [])
    for op in OPS:
        for key in keys:
            assert torch._C._dispatch_has_kernel_for_dispatch_key(f"na_cuda::{op}", key), (op, key)


@needs_native
def test_backends_reports_the_stable_abi_build():
    info = na_cuda.backends()
    assert info["target_torch"] == "2.10"
    assert info["built_with_torch"]  # the headers it was compiled with: any torch >= 2.10 runs it
    assert info["cpu_isa"] in info["cpu_isas"] and "baseline" in info["cpu_isas"]
    if not info["cuda"]:
        assert info["cuda_error"]


def _isa_pairs() -> list[str]:
    return [isa for isa in _backend.cpu_isas() if isa != "baseline"]


@needs_native
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("case", METHOD_CASES, ids=case_id)
def test_cpu_isas_are_bit_identical(case, dtype):
    """The AVX2 kernels and the baseline kernels compute each lane with the same IEEE operations in the same order
    (no FMA contraction: -ffp-contract=off, and the AVX2 unit enables no FMA), so outputs and gradients agree bit
    for bit, not within a tolerance. T = 37 crosses no pack boundary the same way for 8 and 4 lanes (70 neurons)."""
    if not _isa_pairs():
        pytest.skip("only the baseline CPU kernels are compiled or runnable here")
    p = mk_params(**case)
    c = make_input(37, (70,), dtype=dtype, seed=3)
    g = make_grad(c, seed=4)
    before = _backend.cpu_isa()
    try:
        results = {}
        for isa in ["baseline"] + _isa_pairs():
            _backend.set_cpu_isa(isa)
            results[isa] = (native_forward(c, p), native_backward(p["method"], g, c, p))
    finally:
        _backend.set_cpu_isa(before)
    base = results.pop("baseline")
    for isa, got in results.items():
        for a, b in zip(got, base):
            assert torch.equal(_bits(a), _bits(b)), isa


def _bits(t: torch.Tensor) -> torch.Tensor:
    """The raw bits (so NaN payloads and -0.0 count)."""
    return t.contiguous().view({8: torch.int64, 4: torch.int32, 2: torch.int16}[t.element_size()])


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env={**os.environ, **env}
    )


@needs_native
def test_env_forces_the_baseline_and_rejects_unknown_names():
    out = _run("import na_cuda; print(na_cuda.backends()['cpu_isa'])", NA_CUDA_CPU_ISA="baseline")
    assert out.returncode == 0 and out.stdout.strip() == "baseline", out.stderr
    out = _run("import na_cuda; print(na_cuda.backends()['cpu_isa'])", NA_CUDA_CPU_ISA="sse9")
    assert out.returncode == 0, out.stderr
    assert 'NA_CUDA_CPU_ISA="sse9" is not one of "auto", "avx2", "baseline"' in out.stderr
    assert out.stdout.strip() == _backend.cpu_isas()[0]  # the best one stays


@needs_native
def test_set_cpu_isa_rejects_unknown():
    with pytest.raises(ValueError, match="unknown"):
        _backend.set_cpu_isa("avx512")


@needs_native
@pytest.mark.slow
def test_string_arguments_do_not_leak():
    """10^6 calls of an op with two `str` arguments. The torch 2.13 headers' own unboxing (TORCH_BOX) allocates a
    std::string per `str` argument per call and never frees it: ~50 MB here. NA_BOX frees it."""
    code = (
        "import resource, torch, na_cuda\n"
        "op = torch.ops.na_cuda.lif_stbp.default\n"
        "c = torch.zeros(1, 1)\n"
        "def calls(n):\n"
        "    for _ in range(n):\n"
        "        op(c, 5.0, 2.0, 1.0, 0.0, False, False, 'psc', 'rect', 1.0, True)\n"
        "def rss():\n"
        "    return int(open('/proc/self/statm').read().split()[1]) * resource.getpagesize()\n"
        "calls(20000)\n"
        "r0 = rss()\n"
        "calls(1000000)\n"
        "print((rss() - r0) / 2**20)\n"
    )
    out = _run(code)
    assert out.returncode == 0, out.stderr
    grew_mib = float(out.stdout.strip().splitlines()[-1])
    assert grew_mib < 8.0, f"RSS grew by {grew_mib:.1f} MiB over 10^6 calls"


@needs_native
def test_import_refuses_a_library_for_a_newer_torch():
    """The stable ABI serves torch versions from its target on, never older: under an older torch the library is
    refused at import with the fix, and the reference backend keeps working."""
    code = (
        "import warnings, torch\n"
        "torch.__version__ = '2.9.1'\n"
        "import na_cuda\n"
        "info = na_cuda.backends()\n"
        "assert not info['native_loaded'] and info['auto']['cpu'] == 'torch', info\n"
        "print(info['load_error'])\n"
        "with warnings.catch_warnings():\n"
        "    warnings.simplefilter('ignore')\n"
        "    na_cuda.lif(torch.rand(3, 2))\n"
    )
    out = _run(code)
    assert out.returncode == 0, out.stderr
    assert "need torch >= 2.10" in out.stdout and "2.9.1 is running" in out.stdout, out.stdout
