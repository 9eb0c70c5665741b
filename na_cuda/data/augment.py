"""Data augmentation on the training device, vectorised over the batch (no torchvision, no per-sample Python).

Every op is ``aug(x, generator)`` on a float batch ``[B, C, H, W]``, one draw per sample from the generator;
:func:`augmentation` returns a dataset's pipeline (docs/training.md, "Augmentation (na_cuda.data.augment)").
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import torch
import torch.nn.functional as F

from .names import canonical_name

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]

# ITU-R BT.601 luma, as torchvision's rgb_to_grayscale.
_LUMA = (0.299, 0.587, 0.114)


def _check(x: torch.Tensor, generator: torch.Generator, op: str) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or not x.dtype.is_floating_point:
        got = f"{x.dtype} {list(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"na_cuda.data: {op}: `x` must be a float batch [B, C, H, W]; got {got}")
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"na_cuda.data: {op}: `generator` must be a torch.Generator; got {type(generator).__name__}")
    if generator.device.type != x.device.type:
        raise ValueError(
            f"na_cuda.data: {op}: the generator is on {generator.device} but `x` is on {x.device}; create "
            f"it with torch.Generator(device=x.device)"
        )


def _uniform(n: int, lo: float, hi: float, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=generator, device=device)


# ------------------------------------------------------------------------------------------------------ functional
def random_crop(
    x: torch.Tensor, generator: torch.Generator, *, padding: int, size: Optional[int] = None
) -> torch.Tensor:
    """Zero-pad each side by `padding`, then crop a `size` x `size` window (default: the input size) at a uniformly
    random offset per sample (torchvision's RandomCrop(size, padding))."""
    _check(x, generator, "random_crop")
    if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
        raise ValueError(f"na_cuda.data: random_crop: `padding` must be an int >= 0; got {padding!r}")
    B, C, H, W = x.shape
    sh, sw = (H, W) if size is None else (int(size), int(size))
    if sh > H + 2 * padding or sw > W + 2 * padding or sh < 1 or sw < 1:
        raise ValueError(
            f"na_cuda.data: random_crop: `size` {size} does not fit the padded image "
            f"{H + 2 * padding}x{W + 2 * padding}"
        )
    dev = x.device
    top = torch.randint(0, H + 2 * padding - sh + 1, (B,), generator=generator, device=dev)
    left = torch.randint(0, W + 2 * padding - sw + 1, (B,), generator=generator, device=dev)
    xp = F.pad(x, (padding, padding, padding, padding)) if padding else x
    rows = top[:, None] + torch.arange(sh, device=dev)  # [B, sh]
    cols = left[:, None] + torch.arange(sw, device=dev)  # [B, sw]
    b = torch.arange(B, device=dev)[:, None, None]
    out = xp[b, :, rows[:, :, None], cols[:, None, :]]  # advanced indices first: [B, sh, sw, C]
    return out.permute(0, 3, 1, 2).contiguous()


def random_rotation(
    x: torch.Tensor, generator: torch.Generator, *, degrees: float, mode: str = "nearest"
) -> torch.Tensor:
    """Rotate each sample about its centre by an angle uniform in [-degrees, degrees], filling with 0
    (torchvision's RandomRotation(degrees); nearest-neighbour sampling, its default)."""
    _check(x, generator, "random_rotation")
    if mode not in ("nearest", "bilinear"):
        raise ValueError(f"na_cuda.data: random_rotation: `mode` must be 'nearest' or 'bilinear'; got {mode!r}")
    B, C, H, W = x.shape
    angle = _uniform(B, -float(degrees), float(degrees), generator, x.device) * (math.pi / 180.0)
    return rotate(x, angle, mode=mode)


def rotate(x: torch.Tensor, angle: torch.Tensor, *, mode: str = "nearest") -> torch.Tensor:
    """Rotate sample b of `x` by ``angle[b]`` radians about the image centre (counter-clockwise as displayed, y down),
    filling with 0; pixel-exact for angle 0."""
    B, C, H, W = x.shape
    angle = angle.to(device=x.device, dtype=x.dtype)
    c, s = torch.cos(angle), torch.sin(angle)
    z = torch.zeros_like(c)
    # Output pixel -> input pixel, in the normalised coordinates of affine_grid ((-1, 1) across each side; the factors
    # H/W and W/H keep the rotation rigid for non-square images).
    theta = torch.stack([torch.stack([c, -s * (H / W), z], -1), torch.stack([s * (W / H), c, z], -1)], -2)
    grid = F.affine_grid(theta, [B, C, H, W], align_corners=False)
    return F.grid_sample(x, grid, mode=mode, padding_mode="zeros", align_corners=False)


def _gray(x: torch.Tensor) -> torch.Tensor:
    if x.shape[1] == 3:
        w = torch.tensor(_LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return (x * w).sum(1, keepdim=True)
    return x.mean(1, keepdim=True)


def color_jitter(
    x: torch.Tensor,
    generator: torch.Generator,
    *,
    brightness: float = 0.0,
    contrast: float = 0.0,
    saturation: float = 0.0,
    hue: float = 0.0,
) -> torch.Tensor:
    """Per-sample random brightness, contrast, saturation (factors uniform in [1 - v, 1 + v]) and hue (a shift uniform
    in [-hue, hue] turns), applied in that order, each clamped to [0, 1] (torchvision's ColorJitter formulas;
    torchvision draws the order at random). Saturation and hue act on RGB (C = 3) only. The hue shift is a rotation of
    the chroma plane in YIQ space, a cheap stand-in for torchvision's HSV hue shift (close, not identical)."""
    _check(x, generator, "color_jitter")
    for name, v, hi in (
        ("brightness", brightness, 1.0),
        ("contrast", contrast, 1.0),
        ("saturation", saturation, 1.0),
        ("hue", hue, 0.5),
    ):
        if not 0.0 <= float(v) <= hi:
            raise ValueError(f"na_cuda.data: color_jitter: `{name}` must be in [0, {hi}]; got {v!r}")
    B, dev = x.shape[0], x.device
    if brightness:
        f = _uniform(B, 1 - brightness, 1 + brightness, generator, dev).to(x.dtype).view(B, 1, 1, 1)
        x = (x * f).clamp(0.0, 1.0)
    if contrast:
        f = _uniform(B, 1 - contrast, 1 + contrast, generator, dev).to(x.dtype).view(B, 1, 1, 1)
        m = _gray(x).mean(dim=(1, 2, 3), keepdim=True)
        x = (f * x + (1 - f) * m).clamp(0.0, 1.0)
    if saturation and x.shape[1] == 3:
        f = _uniform(B, 1 - saturation, 1 + saturation, generator, dev).to(x.dtype).view(B, 1, 1, 1)
        x = (f * x + (1 - f) * _gray(x)).clamp(0.0, 1.0)
    if hue and x.shape[1] == 3:
        a = _uniform(B, -hue, hue, generator, dev).to(x.dtype) * (2 * math.pi)
        x = _hue_rotate(x, a)
    return x


def _hue_rotate(x: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    to_yiq = torch.tensor(
        [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], dtype=x.dtype, device=x.device
    )
    from_yiq = torch.linalg.inv(to_yiq)
    c, s = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(c), torch.zeros_like(c)
    rot = torch.stack(
        [torch.stack([one, zero, zero], -1), torch.stack([zero, c, -s], -1), torch.stack([zero, s, c], -1)], -2
    )  # [B, 3, 3]
    m = from_yiq @ rot @ to_yiq  # [B, 3, 3]
    return torch.einsum("bij,bjhw->bihw", m, x).clamp(0.0, 1.0)


def random_horizontal_flip(x: torch.Tensor, generator: torch.Generator, *, p: float = 0.5) -> torch.Tensor:
    """Mirror each sample left-right with probability `p`."""
    _check(x, generator, "random_horizontal_flip")
    if not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"na_cuda.data: random_horizontal_flip: `p` must be in [0, 1]; got {p!r}")
    flip = torch.rand(x.shape[0], generator=generator, device=x.device) < p
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)


# ------------------------------------------------------------------------------------------------------ callables
class _Op:
    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class RandomCrop(_Op):
    """Callable form of :func:`random_crop`."""

    def __init__(self, size: Optional[int] = None, padding: int = 0) -> None:
        self.size, self.padding = size, padding

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return random_crop(x, generator, padding=self.padding, size=self.size)


class RandomRotation(_Op):
    """Callable form of :func:`random_rotation`."""

    def __init__(self, degrees: float, mode: str = "nearest") -> None:
        self.degrees, self.mode = degrees, mode

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return random_rotation(x, generator, degrees=self.degrees, mode=self.mode)


class ColorJitter(_Op):
    """Callable form of :func:`color_jitter`."""

    def __init__(
        self, brightness: float = 0.0, contrast: float = 0.0, saturation: float = 0.0, hue: float = 0.0
    ) -> None:
        self.brightness, self.contrast, self.saturation, self.hue = brightness, contrast, saturation, hue

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return color_jitter(
            x, generator, brightness=self.brightness, contrast=self.contrast, saturation=self.saturation, hue=self.hue
        )


class RandomHorizontalFlip(_Op):
    """Callable form of :func:`random_horizontal_flip`."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return random_horizontal_flip(x, generator, p=self.p)


class Identity(_Op):
    """No augmentation (returns `x` itself)."""

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return x


class Compose(_Op):
    """Apply `ops` in order."""

    def __init__(self, *ops: Augment) -> None:
        self.ops = list(ops)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        for op in self.ops:
            x = op(x, generator)
        return x

    def __repr__(self) -> str:
        return f"Compose({', '.join(map(repr, self.ops))})"


def augmentation(name: str) -> Augment:
    """The training augmentation of dataset `name` (see the module docstring), as ``aug(x, generator) -> x``."""
    name = canonical_name(name)
    if name in ("mnist", "fashion-mnist"):
        return Compose(RandomCrop(28, padding=4), RandomRotation(15))
    if name == "cifar10":
        return Compose(
            RandomCrop(32, padding=4),
            ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3),
            RandomHorizontalFlip(0.5),
        )
    if name == "digits":
        return Compose(RandomCrop(8, padding=1))
    return Identity()
