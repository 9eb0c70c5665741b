"""Conversion gallery (issue 17 item 5): spikingjelly 2.0's zoo architectures, built small, converted with
``na_cuda.nn.convert(method="stbp")`` and compared with spikingjelly in float64.

Each model (reset before the forward, as the converted model always is) gives the same outputs, and the same input
and weight gradients of ``sum(out * w)`` up to float64 rounding; every spikingjelly neuron in it is converted (none
left behind). The zoo's modules import torchvision and h5py (for pretrained weights and the distributed dataset
reader, neither used here); neither loads beside the CPU torch of the test venv, so while the zoo is imported
they get stand-ins (:func:`_zoo_import_stand_ins`) unless the real ones import.

``python tests/test_gallery.py`` prints the table (the "Converting a spikingjelly model" section of docs/convert.md).
"""

from __future__ import annotations

import contextlib
import copy
import sys
import time
import types
from typing import Any, Callable, Iterator

import pytest
import torch
from torch import nn

import na_cuda
from na_cuda.nn import LIF, convert

pytest.importorskip(
    "spikingjelly.activation_based.neuron",
    reason="spikingjelly is not installed (pip install --no-deps spikingjelly==2.0.0 loguru)",
)
from spikingjelly.activation_based import functional, layer, neuron, surrogate  # noqa: E402

pytestmark = pytest.mark.slow
T, B = 2, 2  # the zoo models (time steps, batch)
T_CSNN = 5  # the small CSNN and its neuron variants: more steps, for more resets and leaks


@contextlib.contextmanager
def _zoo_import_stand_ins() -> Iterator[None]:
    """Minimal ``torchvision`` (only ``models.utils.load_state_dict_from_url``, which raises: no pretrained weights
    here) and ``h5py`` (imported, not used, by the zoo's distributed reader) while the zoo imports, where the real
    ones do not import; ``sys.modules`` is restored afterwards (the zoo modules keep their references)."""

    def load_state_dict_from_url(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("tests/test_gallery.py: torchvision stand-in, no pretrained weights")

    stand_ins: dict[str, types.ModuleType] = {}
    for name in ("torchvision", "h5py"):
        try:
            __import__(name)
        except Exception:  # absent, or fails to load beside this torch
            stand_ins[name] = types.ModuleType(name)
    if "torchvision" in stand_ins:
        models, utils = types.ModuleType("torchvision.models"), types.ModuleType("torchvision.models.utils")
        utils.load_state_dict_from_url = load_state_dict_from_url  # type: ignore[attr-defined]
        models.utils = utils  # type: ignore[attr-defined]
        stand_ins["torchvision"].models = models  # type: ignore[attr-defined]
        stand_ins.update({"torchvision.models": models, "torchvision.models.utils": utils})
    saved = {name: sys.modules.get(name) for name in stand_ins}
    sys.modules.update(stand_ins)
    try:
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


with _zoo_import_stand_ins():
    from spikingjelly.activation_based.model import (  # noqa: E402
        ms_resnet,
        sew_resnet,
        spike_driven_transformer,
        spikformer,
        spiking_resnet,
        spiking_vgg,
    )


def _multi_step(net: nn.Module) -> nn.Module:
    functional.set_step_mode(net, "m")
    return net


def _csnn(make_neuron: Callable[[], nn.Module], channels: int = 8) -> nn.Module:
    """The CSNN of spikingjelly's Fashion-MNIST example (examples/conv_fashion_mnist.py), in multi-step mode."""
    return _multi_step(
        nn.Sequential(
            layer.Conv2d(1, channels, kernel_size=3, padding=1, bias=False),
            layer.BatchNorm2d(channels),
            make_neuron(),
            layer.MaxPool2d(2, 2),
            layer.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False),
            layer.BatchNorm2d(channels),
            make_neuron(),
            layer.MaxPool2d(2, 2),
            layer.Flatten(),
            layer.Linear(channels * 7 * 7, channels * 4 * 4, bias=False),
            make_neuron(),
            layer.Linear(channels * 4 * 4, 10, bias=False),
            make_neuron(),
        )
    )


def _vgg11_bn() -> nn.Module:
    """spiking_vgg11_bn with its 4096-wide classifier cut to 64 (built on the meta device, then materialised: the
    full classifier would be 120 M parameters); the convolutional part is the zoo's."""
    with torch.device("meta"):
        net = spiking_vgg.spiking_vgg11_bn(spiking_neuron=neuron.LIFNode, surrogate_function=surrogate.ATan())
        for i, (fan_in, fan_out) in zip((0, 3, 6), ((512 * 7 * 7, 64), (64, 64), (64, 10))):
            net.classifier[i] = layer.Linear(fan_in, fan_out)
    net = net.to_empty(device="cpu")
    net._initialize_weights()
    for m in net.modules():
        if hasattr(m, "reset_running_stats"):
            m.reset_running_stats()
    for i in (0, 3, 6):  # torch's default init: the zoo's N(0, 0.01) is for 4096 inputs, not 64
        net.classifier[i].reset_parameters()
    return _multi_step(net)


def _lif(**kw: Any) -> Callable[[], nn.Module]:
    return lambda: neuron.LIFNode(step_mode="m", **kw)


def _images(channels: int, size: int, sequence: bool = True, steps: int = T) -> torch.Tensor:
    shape = (steps, B, channels, size, size) if sequence else (B, channels, size, size)
    return torch.rand(*shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 3.0


#: name -> (build the spikingjelly model, its input)
GALLERY: dict[str, tuple[Callable[[], nn.Module], Callable[[], torch.Tensor]]] = {
    "spiking_resnet18 (LIFNode, ATan)": (
        lambda: _multi_step(
            spiking_resnet.spiking_resnet18(
                spiking_neuron=neuron.LIFNode, surrogate_function=surrogate.ATan(), detach_reset=True, num_classes=10
            )
        ),
        lambda: _images(3, 32),
    ),
    "sew_resnet18 ADD (LIFNode)": (
        lambda: _multi_step(
            sew_resnet.sew_resnet18(
                spiking_neuron=neuron.LIFNode, surrogate_function=surrogate.ATan(), num_classes=10, cnf="ADD"
            )
        ),
        lambda: _images(3, 32),
    ),
    "sew_resnet18 ADD (IFNode)": (
        lambda: _multi_step(
            sew_resnet.sew_resnet18(
                spiking_neuron=neuron.IFNode, surrogate_function=surrogate.ATan(), num_classes=10, cnf="ADD"
            )
        ),
        lambda: _images(3, 32),
    ),
    "spiking_vgg11_bn (classifier 64 wide)": (_vgg11_bn, lambda: _images(3, 32)),
    "Fashion-MNIST CSNN (IFNode, ATan)": (
        lambda: _csnn(lambda: neuron.IFNode(surrogate_function=surrogate.ATan())),
        lambda: _images(1, 28, steps=T_CSNN),
    ),
    "ms_resnet18": (lambda: ms_resnet.ms_resnet18(T=T, num_classes=10), lambda: _images(3, 32, sequence=False)),
    "Spikformer (spikformer_ti blocks; dim 32, depth 1)": (
        lambda: spikformer.Spikformer(
            T=T, img_size_h=32, img_size_w=32, patch_size=4, num_classes=10, embed_dims=32, num_heads=2, depths=1
        ),
        lambda: _images(3, 32, sequence=False),
    ),
    "SpikeDrivenTransformer (sdt blocks; dim 32, depth 1)": (
        lambda: spike_driven_transformer.SpikeDrivenTransformer(
            T=T, num_classes=10, embed_dims=32, num_heads=2, depths=1
        ),
        lambda: _images(3, 32, sequence=False),
    ),
    "CSNN LIFNode soft reset": (lambda: _csnn(_lif(v_reset=None)), lambda: _images(1, 28, steps=T_CSNN)),
    "CSNN LIFNode decay_input=False": (lambda: _csnn(_lif(decay_input=False)), lambda: _images(1, 28, steps=T_CSNN)),
    "CSNN LIFNode tau=3.5, v_threshold=0.6": (
        lambda: _csnn(_lif(tau=3.5, v_threshold=0.6)),
        lambda: _images(1, 28, steps=T_CSNN),
    ),
    "CSNN LIFNode Sigmoid, reset not detached": (
        lambda: _csnn(_lif(surrogate_function=surrogate.Sigmoid(alpha=3.0), detach_reset=False)),
        lambda: _images(1, 28, steps=T_CSNN),
    ),
    "CSNN LIFNode PiecewiseQuadratic": (
        lambda: _csnn(_lif(surrogate_function=surrogate.PiecewiseQuadratic(alpha=0.8), detach_reset=True)),
        lambda: _images(1, 28, steps=T_CSNN),
    ),
}


def _drive(model: nn.Module) -> None:
    """Scale the BatchNorm weights by 3 and the Linear weights by 8, so that every neuron layer fires: with their
    default initialisation most of the deep layers stay silent over T = 2 steps, and a silent layer would leave its
    dynamics unchecked. Not MS-ResNet: its own initialisation fires, and its Rect(alpha=2) surrogate (non-zero only
    within 0.25 of the threshold) would see no gradient in a driven network."""
    if isinstance(model, ms_resnet.MSResNet):
        return
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.weight is not None:
                m.weight.mul_(3.0)
            elif isinstance(m, nn.Linear):
                m.weight.mul_(8.0)


def _is_sj_neuron(m: nn.Module) -> bool:
    return isinstance(m, (neuron.BaseNode, neuron.SimpleBaseNode))


def _run(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """Output, d(sum(out * w))/dx and every weight gradient, from a reset model (Dropout masks from one seed)."""
    functional.reset_net(model)
    model.zero_grad()
    torch.manual_seed(0)
    x = x.clone().requires_grad_(True)
    out = model(x)
    w = torch.linspace(-1.0, 1.0, out.numel(), dtype=out.dtype).view_as(out)
    (out * w).sum().backward()
    return out.detach(), x.grad, [p.grad for p in model.parameters() if p.grad is not None]


def gallery_row(name: str) -> dict[str, Any]:
    """Build, convert and compare one model; its row of the table."""
    build, make_input = GALLERY[name]
    torch.manual_seed(0)
    model = build().double().train()
    _drive(model)
    sources = sum(_is_sj_neuron(m) for m in model.modules())
    start = time.perf_counter()
    converted, report = convert(copy.deepcopy(model), method="stbp", return_report=True)
    rates: list[float] = []
    for m in converted.modules():
        if isinstance(m, LIF):
            m.register_forward_hook(lambda module, args, out: rates.append(out.detach().mean().item()))
    x = make_input()
    (o1, gx1, gw1), (o2, gx2, gw2) = _run(model, x), _run(converted, x)
    gw_max = max(g.abs().max().item() for g in gw1)
    return dict(
        model=name,
        neurons=sources,
        converted=len(report.converted),
        left=sum(_is_sj_neuron(m) for m in converted.modules()),
        lifs=sum(isinstance(m, LIF) for m in converted.modules()),
        out_diff=(o1 - o2).abs().max().item(),
        out_mean=o1.abs().mean().item(),
        rates=(min(rates), max(rates)),
        same_params=len(gw1) == len(gw2),
        grad_nonzero=gx1.abs().max().item() > 0 and gw_max > 0,
        grad_x=(gx1 - gx2).abs().max().item() / gx1.abs().max().item(),
        grad_w=max((a - b).abs().max().item() for a, b in zip(gw1, gw2)) / gw_max,
        seconds=time.perf_counter() - start,
    )


@pytest.mark.parametrize("name", list(GALLERY))
def test_zoo_model_converts_exactly(name):
    row = gallery_row(name)
    print(_format([row]))
    assert row["neurons"] > 0 and row["converted"] == row["neurons"] == row["lifs"] and row["left"] == 0
    assert row["out_diff"] == 0.0 and row["out_mean"] > 0.0
    assert 0.0 < row["rates"][0] and row["rates"][1] < 1.0, "every neuron layer should fire, none saturate"
    assert row["same_params"] and row["grad_nonzero"]
    assert row["grad_x"] <= 1e-12 and row["grad_w"] <= 1e-12


def _format(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| model | neurons converted | firing rates | max abs output diff | max input-grad diff (rel.) | max "
        "weight-grad diff (rel.) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| {r['model']} | {r['converted']}/{r['neurons']} | {r['rates'][0]:.2f}-{r['rates'][1]:.2f} | "
        f"{r['out_diff']:.0e} | {r['grad_x']:.1e} | "
        f"{r['grad_w']:.1e} |"
        for r in rows
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    start = time.perf_counter()
    print(_format([gallery_row(name) for name in GALLERY]))
    print(f"({time.perf_counter() - start:.1f} s, torch {torch.__version__}, na_cuda {na_cuda.__version__})")
