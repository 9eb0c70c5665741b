"""Spiking CNNs of the NA paper, built from an architecture string (spec §8).

Tokens separated by ``-``: ``15C5`` (conv, 15 channels, 5x5, then a LIF), ``P2`` (2x2 sum pooling scaled by
``pool_scale``), ``300`` (fully connected, then a LIF), ``D0.2`` (dropout shared over time); the last token is the
output layer. Every LIF outputs PSCs; predictions are the argmax of the time-summed output PSCs. The choices taken
from the authors' released code (pooling, padding, initialisation, dropout, weight clamp): docs/training.md,
"Networks (na_cuda.models)".
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from .nn import LIF, SeqToANN, enable_grad_rescale

__all__ = [
    "ARCHITECTURES",
    "Layer",
    "parse_architecture",
    "SumPool2d",
    "TimeDropout",
    "SpikingNet",
    "build_model",
]

#: The paper's networks (section 4) and the small demo network, by name.
ARCHITECTURES: dict[str, str] = {
    "mnist": "15C5-P2-40C5-P2-300-10",
    "nmnist": "12C5-P2-64C5-P2-10",
    "alexnet": "96C3-256C3-P2-384C3-P2-384C3-256C3-1024-1024-10",
    "cifarnet": "128C3-256C3-P2-512C3-P2-1024C3-512C3-1024-512-10",
    "digits": "16C3-P2-32-10",
}

_CONV = re.compile(r"^(\d+)C(\d+)$")
_POOL = re.compile(r"^P(\d+)$")
_FC = re.compile(r"^(\d+)$")
_DROP = re.compile(r"^D(0?\.\d+|0|1)$")


@dataclass(frozen=True)
class Layer:
    """One parsed token: ``kind`` is "conv" (``size`` channels, ``kernel``), "pool" (``kernel``), "fc"
    (``size`` outputs) or "dropout" (``p``)."""

    kind: str
    size: int = 0
    kernel: int = 0
    p: float = 0.0


def parse_architecture(arch: str) -> list[Layer]:
    """Parse ``"15C5-P2-40C5-P2-300-10"`` into layers; raises ``ValueError`` naming a bad token.

    The string must contain at least one weight layer and end with a fully connected layer (the output layer).
    """
    if not isinstance(arch, str) or not arch.strip():
        raise ValueError(f"na_cuda: `arch` must be a non-empty string like '15C5-P2-40C5-P2-300-10'; got {arch!r}")
    layers: list[Layer] = []
    for token in arch.strip().split("-"):
        token = token.strip()
        if m := _CONV.match(token):
            channels, kernel = int(m.group(1)), int(m.group(2))
            if channels < 1 or kernel < 1:
                raise ValueError(f"na_cuda: `arch` token {token!r}: channels and kernel size must be >= 1")
            layers.append(Layer("conv", size=channels, kernel=kernel))
        elif m := _POOL.match(token):
            kernel = int(m.group(1))
            if kernel < 1:
                raise ValueError(f"na_cuda: `arch` token {token!r}: pooling size must be >= 1")
            layers.append(Layer("pool", kernel=kernel))
        elif m := _FC.match(token):
            size = int(m.group(1))
            if size < 1:
                raise ValueError(f"na_cuda: `arch` token {token!r}: a layer needs >= 1 neuron")
            layers.append(Layer("fc", size=size))
        elif m := _DROP.match(token):
            p = float(m.group(1))
            if not 0.0 <= p < 1.0:
                raise ValueError(f"na_cuda: `arch` token {token!r}: dropout p must lie in [0, 1)")
            layers.append(Layer("dropout", p=p))
        else:
            raise ValueError(
                f"na_cuda: `arch` token {token!r} in {arch!r} is not understood; use <channels>C<kernel> (conv), "
                "P<size> (sum pooling), <neurons> (fully connected) or D<p> (dropout), e.g. '15C5-P2-40C5-P2-300-10'"
            )
    if not layers or layers[-1].kind != "fc":
        raise ValueError(
            f"na_cuda: `arch` {arch!r} must end with a fully connected output layer (one neuron per class), "
            "e.g. '...-300-10'"
        )
    seen_fc = False
    for layer in layers:
        if layer.kind == "fc":
            seen_fc = True
        elif seen_fc and layer.kind in ("conv", "pool"):
            raise ValueError(
                f"na_cuda: `arch` {arch!r}: conv and pooling layers must come before the fully connected ones"
            )
    return layers


class SumPool2d(nn.Module):
    """``scale * sum`` over non-overlapping ``kernel x kernel`` windows of ``[N, C, H, W]`` (the released
    ``PoolLayer``: a fixed conv with all weights ``theta = 1.1`` and stride = kernel). No parameters."""

    def __init__(self, kernel: int = 2, scale: float = 1.1) -> None:
        super().__init__()
        self.kernel = int(kernel)
        self.scale = float(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, self.kernel, self.kernel, divisor_override=1) * self.scale

    def extra_repr(self) -> str:
        return f"kernel={self.kernel}, scale={self.scale}"


class TimeDropout(nn.Module):
    """Dropout on ``[T, B, ...]`` with one mask per sample and feature element shared by all ``T`` steps
    (a dropped neuron is silent for the whole window), scaled by ``1 / (1 - p)`` in training; identity in eval.
    Uses the global torch RNG (saved in checkpoints by ``na_cuda.train``)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"na_cuda: dropout `p` must lie in [0, 1); got {p}")
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.empty((1,) + tuple(x.shape[1:]), dtype=x.dtype, device=x.device).bernoulli_(1.0 - self.p)
        return x * keep / (1.0 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class SpikingNet(nn.Sequential):
    """A spiking network ``[T, B, *input_shape] -> [T, B, num_classes]`` (time first): the output layer's PSCs.

    Built by ``build_model``. ``shapes`` lists ``(layer, per-sample output shape)`` for every layer,
    ``clamp_weights_`` clamps every conv/linear weight in place (the released ``weight_clipper``).
    """

    def __init__(
        self,
        layers: Sequence[nn.Module],
        *,
        arch: str,
        input_shape: tuple[int, ...],
        num_classes: int,
        shapes: list[tuple[str, tuple[int, ...]]],
    ) -> None:
        super().__init__(*layers)
        self.arch = arch
        self.input_shape = tuple(input_shape)
        self.num_classes = int(num_classes)
        self.shapes = list(shapes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"na_cuda: SpikingNet input must be a torch.Tensor; got {type(x).__name__}")
        if x.dim() != 2 + len(self.input_shape) or tuple(x.shape[2:]) != self.input_shape:
            raise ValueError(
                f"na_cuda: SpikingNet ({self.arch}) expects input [T, B, {', '.join(map(str, self.input_shape))}] "
                f"(time first); got shape {tuple(x.shape)}"
            )
        return super().forward(x)

    def weight_layers(self) -> list[Union[nn.Conv2d, nn.Linear]]:
        """The conv and linear layers, in order."""
        return [m for m in self.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]

    @torch.no_grad()
    def clamp_weights_(self, bound: float = 4.0) -> None:
        """Clamp every conv/linear weight to ``[-bound, bound]`` in place."""
        for m in self.weight_layers():
            m.weight.clamp_(-bound, bound)

    def describe(self) -> str:
        """One line per layer with its per-sample output shape."""
        width = max(len(name) for name, _ in self.shapes)
        lines = [f"{self.arch}: input {tuple(self.input_shape)}"]
        lines += [f"  {name:<{width}}  -> {shape}" for name, shape in self.shapes]
        return "\n".join(lines)


def build_model(
    arch: str,
    input_shape: Sequence[int],
    *,
    method: str = "na",
    padding: Union[int, Sequence[int]] = 0,
    conv_weight_scale: float = 1.0,
    linear_weight_scale: float = 1.0,
    pool_scale: float = 1.1,
    dropout: float = 0.0,
    grad_rescale: bool = False,
    rescale_round: Optional[int] = None,
    **neuron: Any,
) -> SpikingNet:
    """Build the spiking network described by ``arch`` (see the module docstring) for inputs ``input_shape``.

    Args:
        arch: architecture string, e.g. ``"15C5-P2-40C5-P2-300-10"`` (or a key of ``ARCHITECTURES``).
        input_shape: per-sample input shape without ``T, B``: ``(C, H, W)`` (conv nets) or ``(features,)`` /
            ``(C, H, W)`` (fully connected nets flatten it).
        method: training rule of every LIF: ``"na"``, ``"stbp"`` or ``"tssl"``.
        padding: zero padding of the convs: one int for all or one per conv layer.
        conv_weight_scale, linear_weight_scale: multipliers of the initial weights (released ``weight_scale``).
        pool_scale: the pooling's ``theta`` (1.1 in the released code).
        dropout: ``p`` of a ``TimeDropout`` inserted before every weight layer except the first (after every
            hidden layer, after its pooling), as in the released CIFAR-10 config; 0 = none. ``D<p>`` tokens in
            ``arch`` place dropout explicitly instead.
        grad_rescale: attach the released code's layer-wise NA gradient rescaling
            (``na_cuda.nn.enable_grad_rescale``; ``method="na"`` only).
        rescale_round: ``round_decimals`` of that rescaling (3 = the released code; None = exact).
        **neuron: keyword arguments of ``na_cuda.nn.LIF`` (``tau_m``, ``tau_s``, ``threshold``, ``first_order``,
            ``dist_power``, ``clip``, ``na_window``, ``surrogate``, ``surrogate_alpha``, ``detach_reset``,
            ``backend``, ``strict_threshold``);
            ``output`` is fixed to ``"psc"``.

    Returns:
        ``SpikingNet`` mapping ``[T, B, *input_shape]`` to the output PSCs ``[T, B, classes]``. Initialised
        with the global torch RNG (seed it for reproducible weights).
    """
    arch = ARCHITECTURES.get(arch, arch) if isinstance(arch, str) else arch
    layers = parse_architecture(arch)
    if "output" in neuron:
        raise ValueError("na_cuda: build_model fixes the neurons' `output` to 'psc' (the next layer integrates PSCs)")
    if "method" in neuron:
        raise TypeError("na_cuda: pass `method` once")
    try:
        input_shape = tuple(int(s) for s in input_shape)
    except TypeError:
        raise TypeError(
            f"na_cuda: `input_shape` must be a sequence of ints like (1, 28, 28); got {input_shape!r}"
        ) from None
    if not input_shape or min(input_shape) < 1:
        raise ValueError(f"na_cuda: `input_shape` must be a non-empty shape of positive sizes; got {input_shape!r}")
    n_conv = sum(layer.kind == "conv" for layer in layers)
    if n_conv and len(input_shape) != 3:
        raise ValueError(f"na_cuda: conv layers need `input_shape` (C, H, W); got {input_shape!r}")
    if isinstance(padding, bool):
        raise TypeError(f"na_cuda: `padding` must be an int or one int per conv layer; got {padding!r}")
    if isinstance(padding, int):
        pads = [padding] * n_conv
    else:
        pads = [int(p) for p in padding]
        if len(pads) != n_conv:
            raise ValueError(f"na_cuda: `padding` has {len(pads)} entries but `arch` {arch!r} has {n_conv} conv layers")
    if any(p < 0 for p in pads):
        raise ValueError(f"na_cuda: `padding` must be >= 0; got {padding!r}")
    for name, value in (
        ("conv_weight_scale", conv_weight_scale),
        ("linear_weight_scale", linear_weight_scale),
        ("pool_scale", pool_scale),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise ValueError(f"na_cuda: `{name}` must be a finite number > 0; got {value!r}")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
        raise ValueError(f"na_cuda: `dropout` must lie in [0, 1); got {dropout!r}")
    explicit_dropout = any(layer.kind == "dropout" for layer in layers)
    if explicit_dropout and dropout > 0:
        raise ValueError("na_cuda: give dropout either as D<p> tokens in `arch` or as `dropout`, not both")

    def lif() -> LIF:
        return LIF(output="psc", method=method, **neuron)

    modules: list[nn.Module] = []
    shapes: list[tuple[str, tuple[int, ...]]] = []
    shape = input_shape  # per-sample shape of the current activations
    conv_index = 0
    weight_layers = 0
    flat = len(shape) == 1
    for layer in layers:
        if layer.kind in ("conv", "fc") and dropout > 0 and weight_layers > 0:
            modules.append(TimeDropout(dropout))
            shapes.append((f"D{dropout:g}", shape))
        if layer.kind == "conv":
            c, h, w = shape
            pad = pads[conv_index]
            conv_index += 1
            out_h, out_w = h + 2 * pad - layer.kernel + 1, w + 2 * pad - layer.kernel + 1
            if out_h < 1 or out_w < 1:
                raise ValueError(
                    f"na_cuda: `arch` {arch!r}: conv {layer.size}C{layer.kernel} (padding {pad}) does not fit its "
                    f"input {shape}"
                )
            conv = nn.Conv2d(c, layer.size, layer.kernel, padding=pad, bias=False)
            with torch.no_grad():
                nn.init.kaiming_uniform_(conv.weight, a=math.sqrt(5))  # nn.Conv default, as the released code
                conv.weight.mul_(conv_weight_scale)
            modules += [SeqToANN(conv), lif()]
            shape = (layer.size, out_h, out_w)
            shapes.append((f"{layer.size}C{layer.kernel} p{pad} + LIF", shape))
            weight_layers += 1
        elif layer.kind == "pool":
            c, h, w = shape
            if h < layer.kernel or w < layer.kernel:
                raise ValueError(f"na_cuda: `arch` {arch!r}: pooling P{layer.kernel} does not fit its input {shape}")
            modules.append(SeqToANN(SumPool2d(layer.kernel, pool_scale)))
            shape = (c, h // layer.kernel, w // layer.kernel)
            shapes.append((f"P{layer.kernel} (x{pool_scale:g})", shape))
        elif layer.kind == "dropout":
            if layer.p > 0:
                modules.append(TimeDropout(layer.p))
            shapes.append((f"D{layer.p:g}", shape))
        else:  # fc
            fan_in = math.prod(shape)
            linear = nn.Linear(fan_in, layer.size, bias=False)
            with torch.no_grad():
                nn.init.kaiming_normal_(linear.weight)
                linear.weight.mul_(linear_weight_scale)
            modules += [SeqToANN(linear) if flat else SeqToANN(nn.Flatten(), linear), lif()]
            flat = True
            shape = (layer.size,)
            shapes.append((f"{layer.size} + LIF", shape))
            weight_layers += 1
    net = SpikingNet(modules, arch=arch, input_shape=input_shape, num_classes=shape[0], shapes=shapes)
    if grad_rescale:
        enable_grad_rescale(net, rescale_round)  # raises when the net has no NA layer (grad rescale is NA's, §4)
    return net
