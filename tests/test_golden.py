"""na_cuda against golden values recorded from the authors' released code (``tests/golden/``, issue 11 item 2).

The numbers come from ``scripts/released_golden.py`` on the released NA and TSSL-BP code (commits and hashes in
``tests/golden/released_golden.json``); every available backend is checked. Tolerances, relative to the largest
golden value: float64 1e-12; float32 1e-5 (one layer, three layers) and 2e-5 (the MNIST step), the float32
rounding of two operation orders (docs/results.md, "Fidelity to the released code"). TF32 is off on CUDA."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import torch
from helpers import _CUDA_REASON, needs_native
from torch import nn

import na_cuda
from na_cuda import data, train
from na_cuda.nn import LIF, SeqToANN, enable_grad_rescale

GOLDEN_DIR = Path(__file__).parent / "golden"
DTYPES = {"f64": torch.float64, "f32": torch.float32}
TOL_F64 = 1e-12
TOL_F32_OP = 1e-5
TOL_F32_NET = 2e-5
RELEASED_NA = dict(method="na", clip=5.0, strict_threshold=True)  # functions/na.py: clamp(., -5, 5), mem > threshold

_cuda = [pytest.mark.cuda, pytest.mark.skipif(_CUDA_REASON is not None, reason=str(_CUDA_REASON))]
BACKENDS = [
    pytest.param(("torch", "cpu"), id="torch-cpu"),
    pytest.param(("native", "cpu"), id="native-cpu", marks=needs_native),
    pytest.param(("torch", "cuda"), id="torch-cuda", marks=_cuda),
    pytest.param(("native", "cuda"), id="native-cuda", marks=_cuda),
]
# golden key prefix -> na_cuda.lif arguments (tau_s 2, threshold 1 for all)
NEURON_CASES = {
    **{f"na_T{T}": dict(RELEASED_NA, tau_m=5.0) for T in (5, 10, 20)},
    **{
        f"tssl_T{T}_m{m}": dict(method="tssl", strict_threshold=True, tau_m=float(m))
        for T, m in ((5, 4), (10, 4), (20, 4), (5, 5))
    },
}
NET_LAYERS = ("conv_1", "conv_2", "FC_1", "output")  # the released layer names of the weight layers, in order


@pytest.fixture(scope="module")
def golden() -> dict:
    with np.load(GOLDEN_DIR / "released_golden.npz") as z:
        return {k: z[k] for k in z.files}


def tol(tag: str, f32: float) -> float:
    return TOL_F64 if tag == "f64" else f32


def rel_err(actual: torch.Tensor, expected: np.ndarray) -> float:
    """max |actual - expected| / max |expected|."""
    e = torch.from_numpy(np.asarray(expected, dtype=np.float64))
    a = actual.detach().to("cpu", torch.float64)
    assert a.shape == e.shape, f"shape {tuple(a.shape)} != golden {tuple(e.shape)}"
    return ((a - e).abs().max() / e.abs().max().clamp_min(1e-300)).item()


def tensor(x: np.ndarray, dtype: torch.dtype, device: str) -> torch.Tensor:
    return torch.from_numpy(np.asarray(x)).to(device=device, dtype=dtype)


@contextlib.contextmanager
def no_tf32() -> Iterator[None]:
    """CUDA convs and matmuls in true float32 (TF32 would add ~1e-3 errors unrelated to na_cuda)."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def test_golden_file_records_its_source():
    meta = json.loads((GOLDEN_DIR / "released_golden.json").read_text())
    assert meta["released"]["na"]["commit"] == "0fd263ba076dc04b05fb68e13dff00d45134f72c"
    assert meta["released"]["tssl"]["commit"] == "ffaac71d3344172980f048d98b123e40c5420401"
    assert "scripts/released_golden.py" in meta["command"]
    assert (GOLDEN_DIR / "released_golden.npz").stat().st_size < 2_000_000


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("tag", DTYPES)
@pytest.mark.parametrize("case", NEURON_CASES)
def test_neuron_matches_released(golden, backend, tag, case):
    """(a) One NA layer (released functions/na.py; grad_c before its layer-wise rescale) and (c) the released
    TSSL-BP neuron (functions/tsslbp.py at the head: partial_u gated by the spike): forward PSC and grad_c."""
    name, device = backend
    dtype = DTYPES[tag]
    c = tensor(golden[f"{case}_c"], dtype, device).requires_grad_(True)
    y = na_cuda.lif(c, tau_s=2.0, threshold=1.0, backend=name, **NEURON_CASES[case])
    y.backward(tensor(golden[f"{case}_grad_out"], dtype, device))
    assert rel_err(y, golden[f"{case}_{tag}_psc"]) <= tol(tag, TOL_F32_OP)
    err = rel_err(c.grad, golden[f"{case}_{tag}_grad_c"])
    assert err <= tol(tag, TOL_F32_OP), f"grad_c differs from the released backward by {err:.2e} (relative)"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("tag", DTYPES)
@pytest.mark.parametrize("case", ["stack", "stack_small"])
def test_rescaled_stack_matches_released(golden, backend, tag, case):
    """(b) Three linear + NA layers with the released layer-wise rescale (update_norm, means rounded to 3
    decimals; ``stack_small`` makes the output layer's rounded mean 0)."""
    name, device = backend
    dtype = DTYPES[tag]
    modules: list[nn.Module] = []
    for i in range(3):
        w = tensor(golden[f"stack_w{i}"], dtype, device)
        linear = nn.Linear(w.shape[1], w.shape[0], bias=False).to(device=device, dtype=dtype)
        with torch.no_grad():
            linear.weight.copy_(w)
        modules += [SeqToANN(linear), LIF(tau_m=5.0, tau_s=2.0, backend=name, **RELEASED_NA)]
    net = nn.Sequential(*modules)
    enable_grad_rescale(net, round_decimals=3)
    x = tensor(golden["stack_x"], dtype, device).requires_grad_(True)
    r = golden["stack_r"] * (1e-4 if case == "stack_small" else 1.0)
    with no_tf32():
        y = net(x)
        (y * tensor(r, dtype, device)).sum().backward()
    assert rel_err(y, golden[f"{case}_{tag}_out"]) <= tol(tag, TOL_F32_OP)
    errors = {"x": rel_err(x.grad, golden[f"{case}_{tag}_grad_x"])}
    for i in range(3):
        errors[f"w{i}"] = rel_err(modules[2 * i].module.weight.grad, golden[f"{case}_{tag}_grad_w{i}"])
    assert max(errors.values()) <= tol(tag, TOL_F32_OP), f"relative errors per gradient: {errors}"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("tag", DTYPES)
def test_mnist_training_step_matches_released(golden, backend, tag):
    """(d) One step of the released MNIST network (Networks/MNIST_CNN.yaml) with ``fidelity="released"``: the
    loss, the output PSCs and every weight gradient before clip_grad_norm_ (and the norm that clips them)."""
    name, device = backend
    dtype = DTYPES[tag]
    cfg = train.make_config("mnist", fidelity="released", backend=name)
    net = train.model_from_config(cfg, (1, 28, 28)).to(device=device, dtype=dtype)
    layers = net.weight_layers()
    assert len(layers) == len(NET_LAYERS)
    for layer, key in zip(layers, NET_LAYERS):
        with torch.no_grad():
            layer.weight.copy_(tensor(golden[f"net_w_{key}"], dtype, device))
    # the released input: ToTensor (x / 255), Normalize, the image repeated over T and PSC-filtered (cnns.py)
    x = tensor(golden["net_images"], dtype, device) / 255
    x = data.encode_static(data.normalize(x, "mnist"), cfg.T, cfg.tau_s)
    labels = torch.from_numpy(golden["net_labels"]).to(device)
    with no_tf32():
        out = net(x)
        loss = train.loss_sum(cfg, out, labels)
        loss.backward()
    assert rel_err(out, golden[f"net_{tag}_out"]) <= tol(tag, TOL_F32_OP)
    assert rel_err(loss, golden[f"net_{tag}_loss"]) <= tol(tag, TOL_F32_OP)
    # FC_1's released gradient is stored as its factors: dL/dW = sum_{t,b} grad_c x^T
    expected = {key: golden[f"net_{tag}_grad_{key}"] for key in ("conv_1", "conv_2", "output")}
    expected["FC_1"] = np.einsum(
        "tbi,tbj->ij",
        golden[f"net_{tag}_grad_c_FC_1"].astype(np.float64),
        golden[f"net_{tag}_x_FC_1"].astype(np.float64),
    )
    errors = {key: rel_err(layer.weight.grad, expected[key]) for layer, key in zip(layers, NET_LAYERS)}
    assert max(errors.values()) <= tol(tag, TOL_F32_NET), f"relative errors per weight gradient: {errors}"
    norm = torch.sqrt(sum(layer.weight.grad.double().pow(2).sum() for layer in layers))
    assert rel_err(norm, golden[f"net_{tag}_grad_norm"]) <= tol(tag, TOL_F32_NET)
