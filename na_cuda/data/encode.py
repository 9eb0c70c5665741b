"""Input preprocessing of a batch: per-dataset normalisation and the static-image encoding of the released NA code.
See docs/training.md."""

from __future__ import annotations

import math
from typing import Dict, Optional, Tuple

import torch

from .names import canonical_name

# (mean, std) per channel of images in [0, 1].
NORMALIZATION: Dict[str, Optional[Tuple[Tuple[float, ...], Tuple[float, ...]]]] = {
    "mnist": ((0.1307,), (0.3081,)),
    "fashion-mnist": ((0.2860,), (0.3530,)),
    # The released NA code's values (the common CIFAR-10 normalisation; the std is not the dataset's pixel std,
    # about (0.247, 0.243, 0.261), but is what the paper trained with).
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    # The training split's pixel mean and std (values / 16), see digits.py for the split.
    "digits": ((0.3051,), (0.3762,)),
    "nmnist": None,  # event frames: identity
}


def normalize(x: torch.Tensor, name: str) -> torch.Tensor:
    """``(x - mean[c]) / std[c]`` with dataset `name`'s constants (:data:`NORMALIZATION`) over the channel dimension,
    which is dimension -3 (so ``[B, C, H, W]`` and ``[T, B, C, H, W]`` both work); `x` itself for "nmnist"."""
    name = canonical_name(name)
    stats = NORMALIZATION[name]
    if stats is None:
        return x
    if not isinstance(x, torch.Tensor) or x.dim() < 3 or not x.dtype.is_floating_point:
        got = f"{x.dtype} {list(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"na_cuda.data: normalize: `x` must be a float tensor [..., C, H, W]; got {got}")
    mean, std = stats
    if x.shape[-3] != len(mean):
        raise ValueError(
            f"na_cuda.data: normalize: {name} images have {len(mean)} channel(s) at dimension -3; `x` has "
            f"shape {list(x.shape)}"
        )
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    return (x - m) / s


def encode_static(x: torch.Tensor, T: int, tau_s: float) -> torch.Tensor:
    """The released NA code's input for a static image: `x` repeated over T steps and passed through the synaptic
    (PSC) filter, ``a[t] = (1 - 1/tau_s) a[t-1] + x / tau_s`` with ``a[-1] = 0``, i.e.
    ``a[t] = x * (1 - (1 - 1/tau_s) ** (t + 1))``.

    x: [B, C, H, W] (any shape works; time is prepended). Returns [T, *x.shape], same dtype and device.
    """
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise ValueError(f"na_cuda.data: encode_static: `T` must be a positive int; got {T!r}")
    if isinstance(tau_s, bool) or not isinstance(tau_s, (int, float)) or not math.isfinite(tau_s) or tau_s < 1.0:
        raise ValueError(
            f"na_cuda.data: encode_static: `tau_s` must be a float >= 1 (the PSC decay is 1 - 1/tau_s); got {tau_s!r}"
        )
    if not isinstance(x, torch.Tensor) or not x.dtype.is_floating_point:
        raise ValueError(
            f"na_cuda.data: encode_static: `x` must be a float tensor; got "
            f"{x.dtype if isinstance(x, torch.Tensor) else type(x).__name__}"
        )
    kappa = 1.0 - 1.0 / float(tau_s)
    # Built by the recursion itself (in float64) so it is the filter's exact output, not a rounded power formula.
    gain = torch.empty(T, dtype=torch.float64)
    a = 0.0
    for t in range(T):
        a = kappa * a + 1.0 / float(tau_s)
        gain[t] = a
    gain = gain.to(dtype=x.dtype, device=x.device).view(T, *([1] * x.dim()))
    return gain * x.unsqueeze(0)
